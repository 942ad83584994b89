"""The shape of the code: packages say what they own, modules and functions stay small, and
the import contract in pyproject.toml really fails on an upward import or a cycle."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "leadops"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    """Every module of leadops/ but the test doubles and the migration scripts."""
    skip = {PACKAGE / "testing", PACKAGE / "migrations"}
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if not any(part in path.parents for part in skip)
    ]


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _sources()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_over_80_lines() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def test_every_package_opens_with_what_it_owns() -> None:
    silent = [
        str(init.relative_to(ROOT))
        for init in sorted(PACKAGE.rglob("__init__.py"))
        if "migrations" not in init.parts and not ast.get_docstring(ast.parse(init.read_text()))
    ]
    assert silent == []


def _lint_imports(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """Run the project's import contract on a copy of the code with `line` added to `module`."""
    for folder in ("leadops", "flows"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / (module.replace(".", "/") + ".py")
    target.write_text(target.read_text() + f"\n{line}\n")
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache", "--config", "pyproject.toml"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contract_holds_on_the_code_as_it_is(tmp_path: Path) -> None:
    result = _lint_imports(tmp_path, "leadops.core.clock", "")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "message"),
    [
        (
            "leadops.core.clock",
            "import leadops.delivery.policy  # noqa",
            "leadops.core is not allowed to import leadops.delivery",
        ),
        (
            "leadops.nurture.planner",
            "def _later() -> None:\n    import leadops.nurture.tick  # noqa",
            "No cycles are allowed in leadops.nurture",
        ),
    ],
    ids=["upward import", "cycle behind a function-level import"],
)
def test_the_import_contract_fails_on_an_upward_import_or_a_cycle(
    tmp_path: Path, module: str, line: str, message: str
) -> None:
    result = _lint_imports(tmp_path, module, line)
    assert result.returncode != 0
    assert message in result.stdout
