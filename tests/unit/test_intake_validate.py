"""Unit tests for intake normalisation: the cached email path agrees with email-validator."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from leadops.intake.merge import stage_after_merge
from leadops.intake.validate import country_code, normalise_email

EMAILS = [
    "a@b.io",
    "Ann@Example.COM",
    "x.y+z@sub.domain.co.uk",
    "a..b@x.io",
    ".a@x.io",
    "a@x",
    "a@-x.io",
    "a@x..io",
    "maria.lopez@@lopez.example",
    "a@localhost",
    "a@x.test",
    "a@xn--bcher-kva.example",
    "a@bücher.example",
    "a@[1.2.3.4]",
    "ü@x.io",
    "a" * 65 + "@x.io",
    "a@" + "b" * 250 + ".io",
    "a@x.io.",
    "a b@x.io",
    "a@x_y.io",
    "=cmd|' /C calc'!A0@x.io",
]


@pytest.mark.parametrize("address", EMAILS)
def test_normalise_email_agrees_with_email_validator(address: str) -> None:
    try:
        expected: str | None = validate_email(
            address, check_deliverability=False
        ).normalized.lower()
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = normalise_email(address)
    except ValueError:
        got = None
    assert got == expected


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        ("sql", "lead", "sql"),
        ("lead", "customer", "customer"),
        ("customer", "unsubscribed", "unsubscribed"),
        ("unsubscribed", "customer", "unsubscribed"),
        ("subscriber", "recycled", "recycled"),
    ],
)
def test_stage_only_moves_forward_and_unsubscribed_wins(
    current: str, incoming: str, expected: str
) -> None:
    assert stage_after_merge(current, incoming) == expected


def test_country_codes_and_names() -> None:
    assert country_code("de") == "DE"
    assert country_code("Germany") == "DE"
    assert country_code("united kingdom") == "GB"
    assert country_code("Deutschland") is None
