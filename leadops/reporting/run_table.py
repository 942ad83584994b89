"""What flows publish about a run: the per-run table and the work due. No Prefect here;
flows/ turn these into artifacts."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.delivery.outcomes import DispatchReport
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
