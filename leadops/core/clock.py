"""The one source of "now".

Every function that needs the current time takes a Clock (or a `now` computed from one),
so a 30-day campaign can be simulated by advancing a SimulatedClock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that stands still until told to move; used by `--now`, simulations and tests."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        when = ensure_utc(when)
        if when < self._now:
            raise ValueError(f"a simulated clock cannot go back from {self._now} to {when}")
        self._now = when

    def advance(self, delta: timedelta) -> datetime:
        self.set(self._now + delta)
        return self._now


def ensure_utc(value: datetime) -> datetime:
    """Return `value` in UTC; refuse naive datetimes instead of guessing their zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no timezone")
    return value.astimezone(UTC)


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant such as 2026-11-23T09:00Z; a missing zone means UTC."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def clock_for(now: str | datetime | None) -> Clock:
    """A fixed clock at `now`, or the system clock when `now` is None."""
    if now is None:
        return SystemClock()
    if isinstance(now, str):
        now = parse_instant(now)
    return SimulatedClock(now)


def known_timezone(value: str) -> str:
    """`value` when it names an IANA time zone; ValueError otherwise (for config validators)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA timezone {value!r}") from exc
    return value
