"""Unit tests for leadops.cli.output.safe_cell (CSV injection)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadops.cli.output import safe_cell


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
