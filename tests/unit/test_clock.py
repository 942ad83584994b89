"""Unit tests for leadops.core.clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from leadops.core.clock import SimulatedClock, SystemClock, clock_for, ensure_utc, parse_instant


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T09:00Z", datetime(2026, 11, 23, 9, tzinfo=UTC)),
        ("2026-11-23T09:00z", datetime(2026, 11, 23, 9, tzinfo=UTC)),
        (" 2026-11-23T09:00:00+05:30 ", datetime(2026, 11, 23, 3, 30, tzinfo=UTC)),
        ("2026-11-23T09:00", datetime(2026, 11, 23, 9, tzinfo=UTC)),
        ("2026-11-23", datetime(2026, 11, 23, tzinfo=UTC)),
    ],
)
def test_parse_instant(text: str, expected: datetime) -> None:
    value = parse_instant(text)
    assert value == expected
    assert value.tzinfo == UTC


@pytest.mark.parametrize("text", ["", "tomorrow", "2026-13-01T00:00Z"])
def test_parse_instant_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_instant(text)


def test_ensure_utc_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        ensure_utc(datetime(2026, 1, 1))


def test_ensure_utc_converts() -> None:
    value = ensure_utc(datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5))))
    assert value == datetime(2026, 1, 1, 17, tzinfo=UTC)
    assert value.tzinfo == UTC


def test_simulated_clock_moves_forward_only() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    clock = SimulatedClock(start)
    assert clock.now() == start
    assert clock.advance(timedelta(hours=2)) == start + timedelta(hours=2)
    clock.set(start + timedelta(hours=2))  # standing still is fine
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(start)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(timedelta(seconds=-1))
    assert clock.now() == start + timedelta(hours=2)


def test_simulated_clock_refuses_naive() -> None:
    with pytest.raises(ValueError):
        SimulatedClock(datetime(2026, 3, 1))
    clock = SimulatedClock(datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(ValueError):
        clock.set(datetime(2026, 3, 2))


def test_clock_for() -> None:
    assert isinstance(clock_for(None), SystemClock)
    fixed = clock_for("2026-03-01T10:00Z")
    assert fixed.now() == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert clock_for(datetime(2026, 3, 1, tzinfo=UTC)).now() == datetime(2026, 3, 1, tzinfo=UTC)
    assert SystemClock().now().tzinfo is not None
