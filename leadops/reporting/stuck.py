"""The stuck-work detector: work that should have moved and did not.

The detector is a list of checks (`CHECKS`). Each check counts its items with one query
and fetches a few examples, and says what an operator should do. A check that needs a
table this database does not have is reported as unavailable. An informational check
(`counts=False`) is shown with its count but never adds to the stuck total.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.delivery.policy import Reason
from leadops.models import (
    AWAITING_ACK_STATUSES,
    DEAD_LETTERS,
    ESCALATION_NOTIFICATIONS,
    ESCALATIONS,
    INBOX,
    LEADS,
    QUARANTINE,
    QUARANTINED_FILES,
    TOUCHES,
    WEBHOOK_REJECTIONS,
    DeadLetterStatus,
    InboxStatus,
    NotificationStatus,
    QuarantineStatus,
    TouchStatus,
)

SAMPLE_SIZE = 5
# Inbox events the rescore run (every 5 minutes, or every minute through the escalate
# flow) has not applied after this long mean the run is not running.
INBOX_PENDING_AFTER = timedelta(hours=1)
# Holds the contact policy schedules on purpose: a touch waiting for its lead's send
# window or under a frequency cap is moving, not stuck, while its not_before is ahead.
POLICY_HOLDS = (Reason.OUTSIDE_SEND_WINDOW, Reason.FREQUENCY_CAP)


@dataclass(frozen=True)
class StuckContext:
    now: datetime
    stuck_after: timedelta  # a due touch older than this and not sent is stuck
    lookback: timedelta  # failures newer than this are reported


CountFn = Callable[[Connection, StuckContext], int]
SampleFn = Callable[[Connection, StuckContext], list[dict[str, Any]]]


@dataclass(frozen=True)
class StuckCheck:
    key: str
    title: str
    action: str  # what an operator should do about it
    tables: tuple[str, ...]
    count: CountFn
    sample: SampleFn
    counts: bool = True  # False: informational, never part of the stuck total


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
        return sum(f.count or 0 for f in self.findings if f.check.counts)

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


def _touch_sample(where: Any) -> SampleFn:
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


def _touch_count(where: Any) -> CountFn:
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


def _open_too_long(table: sa.Table, *columns: str) -> tuple[CountFn, SampleFn]:
    """Count and sample of a quarantine table's open items older than stuck-after.

    An item fresh from an import is waiting for a decision, not stuck: it becomes stuck
    work once it has waited longer than the stuck-after setting, like an overdue touch."""

    def where(ctx: StuckContext) -> Any:
        c = table.c
        return sa.and_(c.status == QuarantineStatus.OPEN, c.created_at < ctx.now - ctx.stuck_after)

    def count(conn: Connection, ctx: StuckContext) -> int:
        return _count(conn, table, where(ctx))

    def sample(conn: Connection, ctx: StuckContext) -> list[dict[str, Any]]:
        query = sa.select(*(table.c[name] for name in columns)).where(where(ctx))
        return _rows(conn, query.order_by(table.c.id))

    return count, sample


_quarantine_count, _quarantine_sample = _open_too_long(
    QUARANTINE, "id", "source", "source_ref", "reasons", "created_at"
)
_quarantined_files_count, _quarantined_files_sample = _open_too_long(
    QUARANTINED_FILES, "id", "name", "reason", "created_at"
)


def _rows(conn: Connection, query: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(query.limit(SAMPLE_SIZE)).mappings()]


def _count(conn: Connection, table: sa.Table, where: Any) -> int:
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one()
    )


def _late_escalation_where(ctx: StuckContext) -> Any:
    e = ESCALATIONS.c
    return sa.and_(e.status.in_([str(s) for s in AWAITING_ACK_STATUSES]), e.sla_due_at < ctx.now)


def _late_escalation_count(conn: Connection, ctx: StuckContext) -> int:
    return _count(conn, ESCALATIONS, _late_escalation_where(ctx))


def _late_escalation_sample(conn: Connection, ctx: StuckContext) -> list[dict[str, Any]]:
    e = ESCALATIONS.c
    return _rows(
        conn,
        sa.select(
            e.id, e.lead_id, LEADS.c.email, e.trigger, e.status, e.rep_key, e.reroutes, e.sla_due_at
        )
        .select_from(ESCALATIONS.join(LEADS, LEADS.c.id == e.lead_id))
        .where(_late_escalation_where(ctx))
        .order_by(e.sla_due_at, e.id),
    )


def _notification_where(ctx: StuckContext) -> Any:
    # Only notifications of the current assignment of an escalation still waiting for a
    # rep matter: once it is acknowledged, closed or re-routed they are moot.
    n, e = ESCALATION_NOTIFICATIONS.c, ESCALATIONS.c
    current = (
        sa.select(e.id)
        .where(
            e.id == n.escalation_id,
            e.assignment_id == n.assignment_id,
            e.status.in_([str(s) for s in AWAITING_ACK_STATUSES]),
        )
        .exists()
    )
    return sa.and_(n.status.in_([NotificationStatus.FAILED, NotificationStatus.AMBIGUOUS]), current)


def _notification_count(conn: Connection, ctx: StuckContext) -> int:
    return _count(conn, ESCALATION_NOTIFICATIONS, _notification_where(ctx))


def _notification_sample(conn: Connection, ctx: StuckContext) -> list[dict[str, Any]]:
    n = ESCALATION_NOTIFICATIONS.c
    return _rows(
        conn,
        sa.select(
            n.id, n.escalation_id, n.role, n.recipient, n.channel, n.status, n.error, n.created_at
        )
        .where(_notification_where(ctx))
        .order_by(n.id),
    )


def _pending_inbox_where(ctx: StuckContext) -> Any:
    i = INBOX.c
    return sa.and_(i.status == InboxStatus.PENDING, i.received_at < ctx.now - INBOX_PENDING_AFTER)


def _pending_inbox_count(conn: Connection, ctx: StuckContext) -> int:
    return _count(conn, INBOX, _pending_inbox_where(ctx))


def _pending_inbox_sample(conn: Connection, ctx: StuckContext) -> list[dict[str, Any]]:
    i = INBOX.c
    return _rows(
        conn,
        sa.select(i.id, i.source, i.kind, i.received_at)
        .where(_pending_inbox_where(ctx))
        .order_by(i.id),
    )


def _rejection_where(ctx: StuckContext) -> Any:
    return WEBHOOK_REJECTIONS.c.last_at >= ctx.now - ctx.lookback


def _rejection_count(conn: Connection, ctx: StuckContext) -> int:
    r = WEBHOOK_REJECTIONS.c
    total = conn.execute(
        sa.select(sa.func.sum(r["count"])).where(_rejection_where(ctx))
    ).scalar_one()
    return int(total or 0)


def _rejection_sample(conn: Connection, ctx: StuckContext) -> list[dict[str, Any]]:
    r = WEBHOOK_REJECTIONS.c
    return _rows(
        conn,
        sa.select(r.source, r.reason, r["count"], r.first_at, r.last_at)
        .where(_rejection_where(ctx))
        .order_by(r["count"].desc(), r.source, r.reason),
    )


def _dead_letter_where(ctx: StuckContext) -> Any:
    return DEAD_LETTERS.c.status == DeadLetterStatus.OPEN


def _dead_letter_count(conn: Connection, ctx: StuckContext) -> int:
    return _count(conn, DEAD_LETTERS, _dead_letter_where(ctx))


def _dead_letter_sample(conn: Connection, ctx: StuckContext) -> list[dict[str, Any]]:
    d = DEAD_LETTERS.c
    return _rows(
        conn,
        sa.select(d.id, d.item, d.item_id, d.stage, d.failures, d.error, d.last_failed_at)
        .where(_dead_letter_where(ctx))
        .order_by(d.id),
    )


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
        title="quarantined intake records open for over a day (LEADOPS_STUCK_AFTER_HOURS)",
        action="`leadops quarantine list` shows each record's reasons; correct and release "
        "them (`leadops quarantine release ID --set field=value`) or drop them",
        tables=("quarantine",),
        count=_quarantine_count,
        sample=_quarantine_sample,
    ),
    StuckCheck(
        key="open_quarantined_files",
        title="intake files that could not be read, open for over a day "
        "(LEADOPS_STUCK_AFTER_HOURS)",
        action="`leadops quarantine files` names each file's problem and fix; fix the file "
        "and `leadops quarantine release-file ID [--path FIXED]`, or `drop-file ID`",
        tables=("quarantined_files",),
        count=_quarantined_files_count,
        sample=_quarantined_files_sample,
    ),
    StuckCheck(
        key="escalations_past_sla",
        title="escalations past their SLA, no rep has acknowledged",
        action="is the every-minute escalate deployment running? It re-routes these; "
        "`leadops escalations list --status open` shows each rep, "
        "`leadops escalations ack ID --by NAME` once someone has it",
        tables=("escalations",),
        count=_late_escalation_count,
        sample=_late_escalation_sample,
    ),
    StuckCheck(
        key="escalation_notifications",
        title="rep notifications failed or with unknown delivery, for escalations "
        "still waiting for that rep",
        action="`leadops escalations show ID` has each error; tell the rep by hand "
        "(ambiguous ones are never re-sent), fix the channel or routing.yaml",
        tables=("escalation_notifications", "escalations"),
        count=_notification_count,
        sample=_notification_sample,
    ),
    StuckCheck(
        key="inbox_pending",
        title="webhook events waiting over an hour to be applied",
        action="is the rescore deployment running? `leadops rescore` applies them now "
        "(unsubscribes, bounces and opt-outs included)",
        tables=("inbox",),
        count=_pending_inbox_count,
        sample=_pending_inbox_sample,
    ),
    StuckCheck(
        key="dead_letters",
        title="inbox events, touches and escalations set aside because they failed to apply",
        action="`leadops deadletters list` shows each error; fix the cause (data, template, "
        "routing.yaml or code), then `leadops deadletters retry ID` (or --all)",
        tables=("dead_letters",),
        count=_dead_letter_count,
        sample=_dead_letter_sample,
    ),
    StuckCheck(
        key="webhook_rejections",
        title="refused webhook requests (informational; running totals of the reasons "
        "seen in the lookback window)",
        action="`leadops webhooks stats`; a provider's own requests refused as "
        "bad_signature mean a wrong key or public URL: fix it before the provider stops "
        "retrying (SendGrid: 24 h)",
        tables=("webhook_rejections",),
        count=_rejection_count,
        sample=_rejection_sample,
        counts=False,
    ),
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
    return [
        {
            "check": f.check.key,
            "count": "n/a" if f.count is None else f.count,
            "what": f.check.title,
            "action": f.check.action if f.count else "-",
        }
        for f in report.findings
    ]


class StuckWorkError(RuntimeError):
    """Raised by the report flow so a run with too much stuck work ends Failed."""

    def __init__(self, report: StuckReport) -> None:
        parts = ", ".join(
            f"{f.check.key} {f.count}" for f in report.findings if f.count and f.check.counts
        )
        super().__init__(
            f"{report.total} stuck item(s) ({parts}), above the threshold of {report.threshold}"
        )
        self.report = report
