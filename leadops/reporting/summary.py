"""What was sent, held and skipped, per campaign, step and channel (from the touches table)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.delivery.policy import legend
from leadops.models import SENT_TOUCH_STATUSES, TOUCHES, TouchStatus


@dataclass
class StepSummary:
    campaign: str
    step: str
    channel: str
    sent: int = 0
    waiting: int = 0
    failed: int = 0
    ambiguous: int = 0
    held: Counter[str] = field(default_factory=Counter)  # pending with a reason
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def held_text(self) -> str:
        return ", ".join(f"{reason} {n}" for reason, n in sorted(self.held.items())) or "-"

    @property
    def skipped_text(self) -> str:
        return ", ".join(f"{reason} {n}" for reason, n in sorted(self.skipped.items())) or "-"


def touch_summary(engine: Engine, *, since: datetime | None = None) -> list[StepSummary]:
    """One row per campaign, step and channel, ordered by campaign and step day."""
    t = TOUCHES.c
    query = select(
        t.campaign, t.step, t.step_day, t.channel, t.status, t.hold_reason, func.count()
    ).group_by(t.campaign, t.step, t.step_day, t.channel, t.status, t.hold_reason)
    if since is not None:
        query = query.where(t.created_at >= since)
    rows: dict[tuple[str, int, str, str], StepSummary] = {}
    with Session(engine) as session:
        for campaign, step, day, channel, status, reason, count in session.execute(query).all():
            row = rows.setdefault(
                (campaign, day, step, channel), StepSummary(campaign, step, channel)
            )
            if status in SENT_TOUCH_STATUSES:
                row.sent += count
            elif status == TouchStatus.FAILED:
                row.failed += count
            elif status == TouchStatus.AMBIGUOUS:
                row.ambiguous += count
            elif status == TouchStatus.SKIPPED:
                row.skipped[reason or "unknown"] += count
            elif status == TouchStatus.DEAD_LETTER:  # set aside until retried
                row.held[TouchStatus.DEAD_LETTER.value] += count
            elif reason:
                row.held[reason] += count
            else:
                row.waiting += count
    return [rows[key] for key in sorted(rows)]


SUMMARY_COLUMNS = (
    "campaign",
    "step",
    "channel",
    "sent",
    "waiting",
    "held",
    "skipped",
    "failed",
    "ambiguous",
)


def summary_rows(summaries: list[StepSummary]) -> list[dict[str, object]]:
    """Rows for a table (CLI, Prefect artifact): one per campaign, step and channel."""
    return [
        {
            "campaign": s.campaign,
            "step": s.step,
            "channel": s.channel,
            "sent": s.sent,
            "waiting": s.waiting,
            "held": s.held_text,
            "skipped": s.skipped_text,
            "failed": s.failed,
            "ambiguous": s.ambiguous,
        }
        for s in summaries
    ]


def summary_legend(summaries: list[StepSummary]) -> list[dict[str, str]]:
    """The legend (code, meaning) of the hold and skip reasons the summary shows."""
    return legend(code for s in summaries for code in (*s.held, *s.skipped))


def legend_markdown(rows: list[dict[str, str]]) -> str:
    """The legend as Markdown lines (for a Prefect artifact's description)."""
    return "\n".join(f"- `{row['code']}`: {row['meaning']}" for row in rows)
