"""The stuck-work detector: work that should have moved and did not.

The detector is a list of checks (`CHECKS`). Each check counts its items with one query
and fetches a few examples, and says what an operator should do. A check that needs a
table this database does not have is reported as unavailable, so checks for later tables
(escalations past their SLA, for instance) plug in by appending to the list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.models import LEADS, QUARANTINE, TOUCHES, QuarantineStatus, TouchStatus
from leadops.policy import Reason

SAMPLE_SIZE = 5
# Holds the contact policy schedules on purpose: a touch waiting for its lead's send
# window or under a frequency cap is moving, not stuck, while its not_before is ahead.
POLICY_HOLDS = (Reason.OUTSIDE_SEND_WINDOW, Reason.FREQUENCY_CAP)


@dataclass(frozen=True)
class StuckContext:
    now: datetime
    stuck_after: timedelta  # a due touch older than this and not sent is stuck
    lookback: timedelta  # failures newer than this are reported


@dataclass(frozen=True)
class StuckCheck:
    key: str
    title: str
    action: str  # what an operator should do about it
    tables: tuple[str, ...]
    count: Callable[[Connection, StuckContext], int]
    sample: Callable[[Connection, StuckContext], list[dict[str, Any]]]


@dataclass
class Finding:
    check: StuckCheck
    count: int | None  # None: the check needs tables this database does not have
    sample: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StuckReport:
    now: datetime
    threshold: int
    findings: list[Finding]

    @property
    def total(self) -> int:
        return sum(f.count or 0 for f in self.findings)

    @property
    def over_threshold(self) -> bool:
        return self.total > self.threshold

    @property
    def unavailable(self) -> list[Finding]:
        return [f for f in self.findings if f.count is None]


# -- checks ----------------------------------------------------------------------------------


def _overdue_where(ctx: StuckContext) -> Any:
    t = TOUCHES.c
    scheduled_hold = sa.and_(
        t.hold_reason.in_([str(r) for r in POLICY_HOLDS]), t.not_before > ctx.now
    )
    return sa.and_(
        t.status.in_([TouchStatus.PENDING, TouchStatus.CLAIMED, TouchStatus.SENDING]),
        t.due_at < ctx.now - ctx.stuck_after,
        sa.not_(scheduled_hold),
    )


def _touch_sample(where: Any) -> Callable[[Connection, StuckContext], list[dict[str, Any]]]:
    def sample(conn: Connection, ctx: StuckContext) -> list[dict[str, Any]]:
        t = TOUCHES.c
        rows = conn.execute(
            sa.select(
                t.id,
                t.lead_id,
                LEADS.c.email,
                t.campaign,
                t.step,
                t.channel,
                t.status,
                t.due_at,
                t.hold_reason,
                t.error,
            )
            .select_from(TOUCHES.join(LEADS, LEADS.c.id == t.lead_id))
            .where(where(ctx))
            .order_by(t.due_at, t.id)
            .limit(SAMPLE_SIZE)
        ).mappings()
        return [dict(row) for row in rows]

    return sample


def _touch_count(where: Any) -> Callable[[Connection, StuckContext], int]:
    def count(conn: Connection, ctx: StuckContext) -> int:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(TOUCHES).where(where(ctx))
            ).scalar_one()
        )

    return count


def _failed_where(ctx: StuckContext) -> Any:
    t = TOUCHES.c
    return sa.and_(t.status == TouchStatus.FAILED, t.updated_at >= ctx.now - ctx.lookback)


def _ambiguous_where(ctx: StuckContext) -> Any:
    return TOUCHES.c.status == TouchStatus.AMBIGUOUS


def _quarantine_count(conn: Connection, ctx: StuckContext) -> int:
    q = QUARANTINE.c
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(QUARANTINE)
            .where(q.status == QuarantineStatus.OPEN)
        ).scalar_one()
    )


def _quarantine_sample(conn: Connection, ctx: StuckContext) -> list[dict[str, Any]]:
    q = QUARANTINE.c
    rows = conn.execute(
        sa.select(q.id, q.source, q.source_ref, q.reasons, q.created_at)
        .where(q.status == QuarantineStatus.OPEN)
        .order_by(q.id)
        .limit(SAMPLE_SIZE)
    ).mappings()
    return [dict(row) for row in rows]


CHECKS: list[StuckCheck] = [
    StuckCheck(
        key="overdue_touches",
        title="messages due over a day ago and not sent",
        action="is the hourly nurture deployment running? `leadops outbox list --status pending` "
        "shows each touch's hold reason (render_error: fix the template; provider_retry: "
        "check the provider)",
        tables=("touches",),
        count=_touch_count(_overdue_where),
        sample=_touch_sample(_overdue_where),
    ),
    StuckCheck(
        key="failed_touches",
        title="messages failed in the lookback window",
        action="`leadops outbox list --status failed` shows each error (bad address, "
        "rejected template, retries exhausted)",
        tables=("touches",),
        count=_touch_count(_failed_where),
        sample=_touch_sample(_failed_where),
    ),
    StuckCheck(
        key="ambiguous_touches",
        title="messages whose delivery is unknown (never re-sent automatically)",
        action="check the provider's log for each; `leadops outbox list --status ambiguous`",
        tables=("touches",),
        count=_touch_count(_ambiguous_where),
        sample=_touch_sample(_ambiguous_where),
    ),
    StuckCheck(
        key="open_quarantine",
        title="quarantined intake records waiting for a decision",
        action="`leadops quarantine list` shows each record's reasons; fix the source data "
        "and import again",
        tables=("quarantine",),
        count=_quarantine_count,
        sample=_quarantine_sample,
    ),
]

# Checks for records this branch of the schema does not have yet, with the table each
# needs; shown as unavailable until a check for them is added to CHECKS.
PLANNED_CHECKS: list[tuple[str, str]] = [
    ("escalations past their SLA", "needs the escalation records"),
]


def detect(
    engine: Engine,
    now: datetime,
    *,
    threshold: int,
    stuck_after: timedelta,
    lookback: timedelta,
    checks: list[StuckCheck] | None = None,
) -> StuckReport:
    """Run every check; the report is over threshold when the total count exceeds it."""
    ctx = StuckContext(now=now, stuck_after=stuck_after, lookback=lookback)
    present = set(sa.inspect(engine).get_table_names())
    findings = []
    with engine.connect() as conn:
        for check in checks if checks is not None else CHECKS:
            if not set(check.tables) <= present:
                findings.append(Finding(check, None))
                continue
            count = check.count(conn, ctx)
            findings.append(Finding(check, count, check.sample(conn, ctx) if count else []))
    return StuckReport(now=now, threshold=threshold, findings=findings)


def finding_rows(report: StuckReport) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "check": f.check.key,
            "count": "n/a" if f.count is None else f.count,
            "what": f.check.title,
            "action": f.check.action if f.count else "-",
        }
        for f in report.findings
    ]
    rows += [
        {"check": title, "count": "n/a", "what": reason, "action": "-"}
        for title, reason in PLANNED_CHECKS
    ]
    return rows


class StuckWorkError(RuntimeError):
    """Raised by the report flow so a run with too much stuck work ends Failed."""

    def __init__(self, report: StuckReport) -> None:
        parts = ", ".join(f"{f.check.key} {f.count}" for f in report.findings if f.count)
        super().__init__(
            f"{report.total} stuck item(s) ({parts}), above the threshold of {report.threshold}"
        )
        self.report = report
