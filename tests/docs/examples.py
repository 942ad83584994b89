"""The shell examples of docs/ and README.md, run as a user would and compared with the page.

Conventions (docs/contributing.md says the same for writers):

- A ```console block holds `$ command` lines, each followed by the output it prints. The
  commands run in order in one fresh project per page (config/, templates/ and
  config/sample_leads.csv copied from the repository, a SQLite database under data/),
  so later blocks see what earlier ones did, as a reader following the page would.
  `leadops ...` runs in-process through typer's CliRunner (fast); anything else runs in
  bash in the project folder. `$ echo $?` prints the previous command's exit code; any
  other command must exit 0 unless the next line is `$ echo $?`.
- A ```bash block is a list of commands: each line (comments dropped) runs as above and
  must exit 0; its output is not compared.
- A code block with a title (```csv title="crm-export.csv"```) is a file the reader
  saves: it is written to that path in the project before the next command runs.
- docs/reference/ is generated from the code (scripts/docs_reference.py) and checked by
  tests/docs/test_reference.py, so its examples (each command's `--help` example) are not
  run here.
- A block preceded by `<!-- not-run: REASON -->` is not run (a real provider, a public
  URL, a Prefect server...). The test lists each such block with its reason.

Output is compared after normalising what changes from run to run: the project folder's
path (shown as `.`), durations (`1.23 s`, `45 ms` become `N s`), trailing spaces, and
rows of `...` in the page, which stand for any number of lines.

    .venv/bin/python -m tests.docs.examples            # check every page
    .venv/bin/python -m tests.docs.examples --write docs/guides/marketing.md
                                                       # rewrite its outputs from a run
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 120  # terminal columns for rich tables, the same when writing and checking
SECRET = "docs-examples-secret-key-0123456789"


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    title: str | None
    body: list[str]
    skip: str | None  # the not-run reason
    end: int  # line of the closing fence

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


FENCE = re.compile(r"^(\s*)(`{3,})\s*([\w+-]*)\s*(.*)$")
SHELL = {"console", "bash", "sh", "shell"}


def pages() -> list[Path]:
    """README.md and docs/, less docs/reference: generated from the code and checked by
    tests/docs/test_reference.py; its examples are the commands' own `--help` examples."""
    generated = ROOT / "docs" / "reference"
    docs = [p for p in sorted((ROOT / "docs").rglob("*.md")) if generated not in p.parents]
    return [ROOT / "README.md", *docs]


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence, lang, rest = match.groups()
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index][len(indent) :] if lines[index].startswith(indent) else "")
            index += 1
        previous = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        skip = re.match(r"<!--\s*not-run:\s*(.*?)\s*-->", previous)
        title = re.search(r'title="([^"]+)"', rest)
        found.append(
            Block(
                page=page,
                line=start + 1,
                lang=lang.lower(),
                title=title.group(1) if title else None,
                body=body,
                skip=skip.group(1) if skip else None,
                end=index + 1,
            )
        )
        index += 1
    return found


def shell_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.lang in SHELL or (b.title and not b.skip)]


def steps(block: Block) -> list[Step]:
    if block.lang != "console":
        commands = []
        for raw in block.body:
            line = raw.split(" #")[0].strip() if not raw.lstrip().startswith("#") else ""
            if line:
                commands.append(Step(line))
        return commands
    result: list[Step] = []
    for line in block.body:
        if line.startswith("$ "):
            result.append(Step(line[2:].strip()))
        elif result:
            result[-1].expected.append(line)
    return result


def normalise(text: str, project: Path) -> list[str]:
    text = text.replace(str(project.resolve()), ".").replace(str(project), ".")
    text = re.sub(r"\b\d+(\.\d+)? ?(ms|s)\b", "N s", text)
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """`...` alone on a line stands for any number of lines (none included)."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head.strip() == "...":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0] == head and matches(rest, actual[1:])


@contextmanager
def project() -> Iterator[Path]:
    """A fresh leadops project, as tests/e2e set one up: config, templates, no database."""
    saved_env = dict(os.environ)
    saved_cwd = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="leadops-docs-") as tmp:
        home = Path(tmp) / "project"
        home.mkdir()
        for name in ("config", "templates"):
            shutil.copytree(ROOT / name, home / name)
        for key in list(os.environ):
            if key.startswith("LEADOPS_"):
                del os.environ[key]
        os.environ.update(
            {
                "LEADOPS_CONFIG_FILE": str(home / "config" / "leadops.toml"),
                "LEADOPS_SECRET_KEY": SECRET,
                # rich reads COLUMNS when it sizes a table (TERM=dumb would force 80)
                "COLUMNS": str(WIDTH),
                "NO_COLOR": "1",
            }
        )
        os.chdir(home)
        try:
            yield home
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (the runner's, during an invoke)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # type: ignore[no-untyped-def]
        pass


def _fix_console_width() -> None:
    """A rich Console made at import keeps the width it saw then (COLUMNS, or the terminal
    of whatever imported it first, e.g. a pytest worker): give every such console of the
    CLI the example width, so the output does not depend on what ran before."""
    from rich.console import Console

    for name, module in list(sys.modules.items()):
        if name.startswith("leadops.") and module is not None:
            for value in list(vars(module).values()):
                if isinstance(value, Console):
                    value.width = WIDTH


def run_leadops(args: list[str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from leadops.cli import app
    from leadops.core.settings import get_settings

    # The terminal's log lines, as `leadops` (leadops.cli.main) sets them up.
    handler = _Stderr()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    _fix_console_width()
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, args, prog_name="leadops", env={"COLUMNS": str(WIDTH)})
    finally:
        root.removeHandler(handler)
    output = result.output
    code = result.exit_code
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        # what `leadops` (leadops.cli.main) prints for a mistake the user can fix
        output += "error: " + " ".join(str(exc).split()) + "\n"
        code = 1
    get_settings.cache_clear()
    return code, output


def run(command: str, home: Path, last_code: int) -> tuple[int, str]:
    if command.strip() == "echo $?":
        return 0, f"{last_code}\n"
    first, _, rest = command.partition("|")
    words = shlex.split(first)
    if words and words[0] == "leadops" and not re.search(r"[<>;&]", first):
        code, output = run_leadops(words[1:])
        if not rest.strip():
            return code, output
        piped = subprocess.run(
            rest, shell=True, input=output, capture_output=True, text=True, cwd=home
        )
        return piped.returncode, piped.stdout + piped.stderr
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=home)
    return done.returncode, done.stdout + done.stderr


@dataclass
class Outcome:
    block: Block
    step: Step
    code: int
    actual: list[str]
    problem: str | None


def run_page(page: Path) -> Iterator[Outcome]:
    with project() as home:
        for block in shell_blocks(page):
            if block.skip:
                continue
            if block.title and block.lang not in SHELL:
                target = home / block.title
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("\n".join(block.body) + "\n", encoding="utf-8")
                continue
            all_steps = steps(block)
            last = 0
            for index, step in enumerate(all_steps):
                code, output = run(step.command, home, last)
                actual = normalise(output, home)
                next_is_exit_check = (
                    index + 1 < len(all_steps) and all_steps[index + 1].command == "echo $?"
                )
                problem = None
                if code != 0 and not next_is_exit_check:
                    problem = f"exit code {code}"
                elif block.lang == "console" and not matches(
                    [line.rstrip() for line in step.expected], actual
                ):
                    problem = "output differs"
                last = code
                yield Outcome(block, step, code, actual, problem)


def failures(page: Path) -> list[str]:
    messages = []
    for outcome in run_page(page):
        if outcome.problem:
            shown = "\n".join("    " + line for line in outcome.actual[:40])
            messages.append(
                f"{outcome.block.where}: `$ {outcome.step.command}`: {outcome.problem}\n"
                f"  expected:\n"
                + "\n".join("    " + line for line in outcome.step.expected[:40])
                + f"\n  got:\n{shown}"
            )
    return messages


def write(page: Path) -> None:
    """Replace the outputs of each console block that no longer matches with what its
    commands print now (blocks that match keep their `...` lines)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    outputs: dict[int, list[tuple[str, list[str]]]] = {}
    stale: set[int] = set()
    for outcome in run_page(page):
        if outcome.block.lang == "console":
            outputs.setdefault(outcome.block.line, []).append(
                (outcome.step.command, outcome.actual)
            )
            if outcome.problem:
                stale.add(outcome.block.line)
        if outcome.problem and outcome.problem.startswith("exit"):
            print(f"{outcome.block.where}: `{outcome.step.command}`: {outcome.problem}")
    for block in sorted(blocks(page), key=lambda b: -b.line):
        if block.line not in stale:
            continue
        indent = FENCE.match(lines[block.line - 1]).group(1)  # type: ignore[union-attr]
        body = []
        for command, actual in outputs[block.line]:
            body.append(f"{indent}$ {command}")
            body.extend(f"{indent}{line}" if line else "" for line in actual)
        lines[block.line : block.end - 1] = body
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"]:
        for name in argv[1:]:
            write(Path(name).resolve())
        return 0
    bad = [message for page in pages() for message in failures(page)]
    print("\n\n".join(bad) or "every example matches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
