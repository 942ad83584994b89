"""Unit tests for leadops.cli.output: safe_cell (CSV injection) and table widths."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from rich.console import Console

from leadops.cli.output import Format, emit, safe_cell


@pytest.mark.parametrize(
    "value",
    [
        "=cmd|' /C calc'!A0",
        "=1+1",
        "+1 555 0100",
        "-2+3",
        "@SUM(A1:A2)",
        "\t=1",
        "\r=1",
        -5,
    ],
)
def test_formula_prefixes_are_neutralised(value: object) -> None:
    cell = safe_cell(value)
    assert cell == "'" + str(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello", "hello"),
        ("a=b", "a=b"),
        (42, "42"),
        (None, ""),
        ("", ""),
        (datetime(2026, 3, 1, tzinfo=UTC), "2026-03-01T00:00:00+00:00"),
    ],
)
def test_plain_values_unchanged(value: object, expected: str) -> None:
    assert safe_cell(value) == expected


def _table(console: Console) -> str:
    emit(
        [{"campaign": "re-engage-the-quiet-ones", "hold_reason": "waiting_for_consent " * 3}],
        ["campaign", "hold_reason"],
        Format.TABLE,
        console=console,
    )
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_table_on_a_narrow_terminal_folds_long_values_never_cuts_them() -> None:
    out = _table(Console(file=io.StringIO(), width=30, force_terminal=True, color_system=None))
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 30
    assert "re-engage" in out.replace(" ", "")


def test_a_piped_table_is_as_wide_as_its_widest_row() -> None:
    out = _table(Console(file=io.StringIO(), width=30))
    assert "…" not in out
    assert "re-engage-the-quiet-ones" in out
    assert ("waiting_for_consent " * 3).strip() in out
