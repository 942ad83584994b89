"""What a dispatch run reports, and how the outcomes of touches are written.

Outcomes are written in bulk, only for rows their dispatcher still owns (its claim token).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine

from leadops.core.bulk import bulk_update
from leadops.core.clock import Clock
from leadops.models import LEADS, TOUCHES, Channel

MAX_TRANSIENT_ATTEMPTS = 8
RENDER_RETRY = timedelta(hours=1)


class ClaimedTouch(NamedTuple):
    """The columns of a claimed touch the dispatcher works with."""

    id: int
    lead_id: int
    campaign_version_id: int
    campaign: str
    step: str
    channel: str
    attempts: int


CLAIMED_COLUMNS = ClaimedTouch._fields


@dataclass
class DispatchReport:
    sent: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    held: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    ambiguous: int = 0
    dead_letters: int = 0  # touches set aside: their decision or composition raised
    recovered: int = 0
    errors: list[str] = field(default_factory=list)
    # (campaign, step, channel, outcome): outcome is sent, failed, ambiguous,
    # held:<reason> or skipped:<reason>; the per-run table of the nurture flow.
    outcomes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    # Messages sent by each dispatcher process, when several ran (run_workers).
    worker_sent: list[int] = field(default_factory=list)

    def count(self, touch: ClaimedTouch, outcome: str) -> None:
        self.outcomes[(touch.campaign, touch.step, touch.channel, outcome)] += 1

    @property
    def sent_total(self) -> int:
        return sum(self.sent.values())

    def merge(self, other: DispatchReport) -> None:
        self.sent.update(other.sent)
        self.held.update(other.held)
        self.skipped.update(other.skipped)
        self.failed += other.failed
        self.ambiguous += other.ambiguous
        self.dead_letters += other.dead_letters
        self.recovered += other.recovered
        self.errors.extend(other.errors)
        self.outcomes.update(other.outcomes)
        self.worker_sent.extend(other.worker_sent)


def log_summary(logger: logging.Logger, now: datetime, report: DispatchReport) -> None:
    """The one line a dispatch run logs when it is done."""
    logger.info(
        "dispatched %s: %d sent, %d held (%s), %d skipped, %d failed, %d ambiguous, "
        "%d set aside as dead letters, %d recovered from a stopped run",
        now.isoformat(),
        report.sent_total,
        sum(report.held.values()),
        ", ".join(f"{reason} {n}" for reason, n in sorted(report.held.items())) or "-",
        sum(report.skipped.values()),
        report.failed,
        report.ambiguous,
        report.dead_letters,
        report.recovered,
    )


def retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    """Exponential backoff from 30 s, capped at an hour; a provider's Retry-After wins."""
    if retry_after is not None:
        return timedelta(seconds=max(1.0, retry_after))
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


def touch_row(touch: ClaimedTouch, **values: Any) -> dict[str, Any]:
    return {"id": touch.id, **values}


@contextmanager
def transaction(engine: Engine, conn: Connection | None) -> Iterator[Connection]:
    """A transaction on `conn` (the one it is in, if any), or on a connection of its own
    when None."""
    if conn is None:
        with engine.begin() as own:
            yield own
    elif conn.in_transaction():
        yield conn
    else:
        with conn.begin():
            yield conn


def write_outcomes(
    engine: Engine,
    clock: Clock,
    token: str,
    outcomes: list[dict[str, Any]],
    conn: Connection | None = None,
) -> None:
    """Write outcomes in one transaction (on `conn`, else a connection of its own), only
    for rows the dispatcher holding `token` still owns."""
    if not outcomes:
        return
    now = clock.now()
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for outcome in outcomes:
        groups[tuple(sorted(outcome))].append(outcome)
    with transaction(engine, conn) as conn:
        for columns, rows in groups.items():
            # Values shared by the whole group are bound once, the rest per row.
            shared = {
                name: rows[0][name]
                for name in columns
                if name != "id" and all(row[name] == rows[0][name] for row in rows)
            }
            bulk_update(
                conn,
                TOUCHES,
                [{k: v for k, v in row.items() if k not in shared} for row in rows],
                shared={"claim_token": None, "lease_until": None, "updated_at": now, **shared},
                where=[TOUCHES.c.claim_token == token],
            )


def suppress_channel(
    engine: Engine,
    clock: Clock,
    lead_id: int,
    channel: str,
    reason: str,
    conn: Connection | None = None,
) -> None:
    """Suppress the lead's address on this channel (a provider said it cannot receive)."""
    now = clock.now()
    column = "email" if channel == Channel.EMAIL else "whatsapp"
    with transaction(engine, conn) as conn:
        conn.execute(
            update(LEADS)
            .where(LEADS.c.id == lead_id)
            .values(
                {
                    f"{column}_suppressed_at": now,
                    f"{column}_suppression_reason": reason[:100],
                    "updated_at": now,
                }
            )
        )
