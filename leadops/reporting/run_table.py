"""What flows publish about a run: the per-run table, the work due, log set-up, and which
errors are worth a task retry. No Prefect here; flows/ turn these into artifacts."""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.delivery.dispatch import DispatchReport
from leadops.models import TOUCHES, TouchStatus

RUN_COLUMNS = (
    "campaign",
    "step",
    "channel",
    "planned",
    "sent",
    "held",
    "skipped",
    "failed",
    "ambiguous",
)


def _reasons(counter: Counter[str]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counter.items())) or "-"


def run_rows(
    planned: Counter[tuple[str, str, str]], dispatch: DispatchReport
) -> list[dict[str, Any]]:
    """One row per campaign, step and channel touched by this run: planned, sent, held by
    reason, skipped by reason, failed and ambiguous."""
    keys = set(planned) | {key[:3] for key in dispatch.outcomes}
    rows = []
    for campaign, step, channel in sorted(keys):
        held: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        plain: Counter[str] = Counter()
        for (c, s, ch, outcome), n in dispatch.outcomes.items():
            if (c, s, ch) != (campaign, step, channel):
                continue
            kind, _, reason = outcome.partition(":")
            if kind == "held":
                held[reason] += n
            elif kind == "skipped":
                skipped[reason] += n
            else:
                plain[kind] += n
        rows.append(
            {
                "campaign": campaign,
                "step": step,
                "channel": channel,
                "planned": planned.get((campaign, step, channel), 0),
                "sent": plain["sent"],
                "held": _reasons(held),
                "skipped": _reasons(skipped),
                "failed": plain["failed"],
                "ambiguous": plain["ambiguous"],
            }
        )
    return rows


def count_due(engine: Engine, now: datetime) -> int:
    """Touches the dispatcher would pick up at `now` (for a progress bar)."""
    t = TOUCHES.c
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(TOUCHES)
                .where(t.status == TouchStatus.PENDING, t.not_before <= now)
            ).scalar_one()
        )


def enable_library_logs(level: int = logging.INFO) -> None:
    """Let leadops' own INFO lines through (Prefect forwards the `leadops` logger to the
    run's logs when PREFECT_LOGGING_EXTRA_LOGGERS=leadops)."""
    logging.getLogger("leadops").setLevel(level)


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sqlite3.OperationalError,
)


def is_transient(exc: BaseException | None) -> bool:
    """Worth retrying: the database or network was briefly unavailable (locked SQLite
    database, dropped PostgreSQL connection, timeout). Bugs and bad config are not."""
    return isinstance(exc, TRANSIENT_ERRORS)
