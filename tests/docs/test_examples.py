"""Every shell example of docs/ and README.md runs and prints what the page shows.

The conventions are in tests/docs/examples.py and docs/contributing.md. Blocks marked
`<!-- not-run: REASON -->` are reported as skipped with their reason (`-ra` lists them).
"""

from __future__ import annotations

import pytest

from tests.docs import examples

RUNNABLE = [
    page
    for page in examples.pages()
    if any(not b.skip for b in examples.shell_blocks(page) if b.lang in examples.SHELL)
]
NOT_RUN = [b for page in examples.pages() for b in examples.shell_blocks(page) if b.skip]


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(examples.ROOT)))
def test_examples_run_and_print_what_the_page_shows(page) -> None:  # type: ignore[no-untyped-def]
    problems = examples.failures(page)
    assert not problems, (
        f"{len(problems)} example(s) in {page.relative_to(examples.ROOT)} no longer match "
        "(fix the command, or if the new output is right: "
        f"`.venv/bin/python -m tests.docs.examples --write {page.relative_to(examples.ROOT)}`)"
        "\n\n" + "\n\n".join(problems)
    )


@pytest.mark.parametrize("block", NOT_RUN, ids=lambda b: b.where)
def test_examples_that_cannot_run_offline_say_why(block) -> None:  # type: ignore[no-untyped-def]
    assert len(block.skip) >= 10, f"{block.where}: a not-run marker needs its reason"
    pytest.skip(f"not run: {block.where}: {block.skip}")


def test_the_runner_compares_output_and_exit_codes() -> None:
    assert examples.matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert not examples.matches(["a", "d"], ["a", "b", "d"])
    assert examples.normalise(
        "took 1.25 s in /tmp/x/project\n\n", examples.Path("/tmp/x/project")
    ) == ["took N s in ."]
