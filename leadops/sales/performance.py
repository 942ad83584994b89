"""Performance-weighted round-robin: each rep's weight follows how fast they acknowledge
and how often they win, over a window (routing.yaml `performance:`). Pure, no database:
leadops.sales.loads reads the figures, leadops.sales.routing applies the factors.

A rep's factor is the geometric mean of two ratios against the team (the reps with
enough sample): speed = team median acknowledgement minutes / the rep's, and win = the
rep's win rate / the team's. A ratio moves only with at least `min_sample`
acknowledgements (speed) or closed escalations (win); below it, it stays 1. The factor is
clamped to [min_factor, max_factor] and multiplies the rep's configured weight.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class PerformanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    window_days: int = Field(default=90, ge=7, le=730)
    # acknowledgements (speed) and closed won/lost escalations (win rate) a rep needs in
    # the window before that part of their weight moves
    min_sample: int = Field(default=10, ge=1, le=10_000)
    min_factor: float = Field(default=0.5, gt=0, le=1)  # the bounds of the factor
    max_factor: float = Field(default=2.0, ge=1, le=10)


@dataclass(frozen=True)
class RepRecord:
    """A rep's record over the window: minutes from assignment to acknowledgement of each
    escalation they acknowledged, and their won and lost escalations."""

    ack_minutes: Sequence[float] = ()
    won: int = 0
    lost: int = 0

    @property
    def closed(self) -> int:
        return self.won + self.lost


@dataclass(frozen=True)
class Factor:
    """How a rep's weight is scaled, and why (worded for the assignment audit)."""

    factor: float
    speed: float | None  # None: too few acknowledgements (or no team reference)
    win: float | None  # None: too few closed escalations (or the team won nothing)
    note: str


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def factors(records: Mapping[str, RepRecord], config: PerformanceConfig) -> dict[str, Factor]:
    """The weight factor of each rep in `records` (deterministic given the records)."""
    n = config.min_sample
    timed = {k: r for k, r in records.items() if len(r.ack_minutes) >= n}
    decided = {k: r for k, r in records.items() if r.closed >= n}
    team_ack = _median([m for r in timed.values() for m in r.ack_minutes])
    won = sum(r.won for r in decided.values())
    closed = sum(r.closed for r in decided.values())
    team_win = won / closed if closed else None
    result: dict[str, Factor] = {}
    for key, record in sorted(records.items()):
        speed = win = None
        parts: list[str] = []
        rep_ack = _median(record.ack_minutes)
        if key in timed and team_ack is not None and rep_ack is not None:
            speed = team_ack / max(rep_ack, 0.5)  # half a minute: no division by ~0
            parts.append(f"ack {rep_ack:.0f} min vs team {team_ack:.0f}")
        else:
            parts.append(f"{len(record.ack_minutes)}/{n} acks")
        if key in decided and team_win:
            win = (record.won / record.closed) / team_win
            parts.append(f"won {record.won}/{record.closed} vs team {100 * team_win:.0f}%")
        else:
            parts.append(f"{record.closed}/{n} closed")
        raw = math.sqrt((1.0 if speed is None else speed) * (1.0 if win is None else win))
        factor = min(config.max_factor, max(config.min_factor, raw))
        bound = " (bound)" if factor != raw else ""
        result[key] = Factor(factor, speed, win, f"x{factor:.2f}{bound}: {', '.join(parts)}")
    return result
