"""The scan: escalate SQL leads that have no active escalation, with their ledger's reasons;
escalate again the leads a rep marked not ready once their date to try again arrives; and
the every-minute pass (scan, retries, SLA check, send what is due).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exists, func, select
from sqlmodel import Session

from leadops import deadletters
from leadops.core.clock import ensure_utc
from leadops.engagement.ledger import breakdowns
from leadops.engagement.report import SQL_TRIGGER
from leadops.engagement.scoring import top_reasons
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    ESCALATIONS,
    LEADS,
    Escalation,
    EscalationStatus,
    Lead,
    LifecycleStage,
)
from leadops.sales.escalation import (
    EscalationResult,
    ReasonLike,
    escalate_or_set_aside,
    sql_crossing,
)
from leadops.sales.notify import NotifyReport, deliver_notifications
from leadops.sales.runtime import EscalationRuntime
from leadops.sales.sla import check_slas
from leadops.sales.triggers import IMPORTED_SQL, SQL_ESCALATION

ReasonsFor = Callable[[Session, Lead], Sequence[ReasonLike]]
RETRY_DUE = "retry_due"  # the trigger of a lead not ready before, whose retry date arrived


def trigger_key(session: Session, lead_id: int, trigger: str, at: datetime) -> str:
    """The key an escalation is recorded once under (with its lead and trigger), for both
    paths that escalate: the rescore hand-off (leadops.sales.handoff) and this scan, so the
    two never escalate one crossing twice. `trigger` is the rescore run's: "sql" (reached
    the SQL threshold), keyed by how many escalations the lead had before, so a lead back
    at SQL after being recycled is escalated again, once; or a hand-raise rule ("reply"),
    keyed by when the hand was raised."""
    if trigger == SQL_TRIGGER:
        e = ESCALATIONS.c
        before = session.execute(select(func.count()).where(e.lead_id == lead_id)).scalar_one()
        return f"stage-sql-{before + 1}"
    return f"{trigger}-{at.isoformat()}"


def default_reasons(session: Session, lead: Lead) -> list[dict[str, Any]]:
    """Why a lead is sales-ready: the top rules of its score ledger, then stage and score."""
    assert lead.id is not None
    explained = breakdowns(session.connection(), [lead.id]).get(lead.id, [])
    reasons: list[dict[str, Any]] = [reason.item() for reason in top_reasons(explained)]
    reasons += [
        {"reason": "lifecycle stage is SQL"},
        {"reason": f"lead score {lead.score}"},
    ]
    if lead.last_inbound_at is not None:
        reasons.append({"reason": f"last replied {lead.last_inbound_at:%Y-%m-%d %H:%M} UTC"})
    if lead.last_engaged_at is not None:
        reasons.append({"reason": f"last engaged {lead.last_engaged_at:%Y-%m-%d %H:%M} UTC"})
    return reasons


def find_sales_ready(
    runtime: EscalationRuntime,
    now: datetime,
    *,
    limit: int | None = None,
    reasons_for: ReasonsFor | None = None,
    deliver: bool = True,
) -> list[EscalationResult]:
    """Escalate every lead at lifecycle stage `sql` that has no active escalation and was
    never disqualified.

    The trigger is `sql_threshold` when a score change took the lead to SQL since its last
    escalation, else `imported_sql` (the import set the stage); keyed by `trigger_key`.
    """
    now = ensure_utc(now)
    e = ESCALATIONS.c
    # A lead a rep disqualified is not escalated again, whatever its score does.
    active = exists().where(
        e.lead_id == LEADS.c.id,
        e.status.in_([*ACTIVE_ESCALATION_STATUSES, EscalationStatus.DISQUALIFIED]),
    )
    set_aside = LEADS.c.id.in_(deadletters.open_escalation_leads())
    with Session(runtime.engine, expire_on_commit=False) as session:
        leads = list(
            session.execute(
                select(Lead)
                .where(LEADS.c.lifecycle_stage == LifecycleStage.SQL, ~active, ~set_aside)
                .order_by(LEADS.c.id)
                .limit(limit or runtime.settings.escalation_scan_limit)
            ).scalars()
        )
        plans = []
        for lead in leads:
            assert lead.id is not None
            key = trigger_key(session, lead.id, SQL_TRIGGER, now)
            crossed = sql_crossing(session, lead.id) is not None
            trigger = SQL_ESCALATION if crossed else IMPORTED_SQL
            try:
                reasons = (reasons_for or default_reasons)(session, lead)
            except Exception as exc:  # recorded below, through escalate's own checks
                if deadletters.must_raise(exc):
                    raise
                reasons = [{"reason": f"reasons unavailable: {deadletters.describe(exc)}"}]
            plans.append((lead.id, trigger, key, lead.score, reasons))
    results = []
    for lead_id, trigger, key, score, reasons in plans:
        result = escalate_or_set_aside(runtime, lead_id, trigger, key, score, reasons, now)
        if result is not None:
            results.append(result)
    if deliver and any(result.created for result in results):
        deliver_notifications(runtime, now)
    return results


def retry_key(escalation_id: int) -> str:
    """The key a not-ready escalation is tried again under: once per escalation."""
    return f"retry-{escalation_id}"


def find_retries_due(
    runtime: EscalationRuntime, now: datetime, *, limit: int | None = None, deliver: bool = True
) -> list[EscalationResult]:
    """Escalate again each lead a rep marked not ready whose `retry_at` has come (trigger
    `retry_due`, key `retry-<escalation id>`, so once), unless the lead was disqualified,
    became a customer, unsubscribed, is suppressed on a channel, or has an active
    escalation. Routing chooses the rep as for any escalation: the account owner rule
    gives the lead's company back to the rep who last held it."""
    now = ensure_utc(now)
    e, lead = ESCALATIONS.c, LEADS.c
    other = ESCALATIONS.alias("other")
    key = sa.literal("retry-") + sa.cast(e.id, sa.String)
    retried = exists().where(
        other.c.lead_id == e.lead_id, other.c.trigger == RETRY_DUE, other.c.trigger_key == key
    )
    busy_or_disqualified = exists().where(
        other.c.lead_id == e.lead_id,
        other.c.status.in_([*ACTIVE_ESCALATION_STATUSES, EscalationStatus.DISQUALIFIED]),
    )
    with Session(runtime.engine, expire_on_commit=False) as session:
        due = session.execute(
            select(Escalation, Lead)
            .join(LEADS, lead.id == e.lead_id)
            .where(
                e.status == EscalationStatus.RECYCLED,
                e.retry_at <= now,
                lead.lifecycle_stage.not_in([LifecycleStage.CUSTOMER, LifecycleStage.UNSUBSCRIBED]),
                lead.unsubscribed_at.is_(None),
                lead.email_suppressed_at.is_(None),
                lead.whatsapp_suppressed_at.is_(None),
                ~retried,
                ~busy_or_disqualified,
                ~lead.id.in_(deadletters.open_escalation_leads()),
            )
            .order_by(e.retry_at, e.id)
            .limit(limit or runtime.settings.escalation_scan_limit)
        ).all()
        plans = []
        for before, person in due:
            assert before.id is not None and person.id is not None and before.retry_at
            why = f"not ready on {before.closed_at:%Y-%m-%d}"
            if before.outcome_reason:
                why += f" ({before.outcome_reason.replace('_', ' ')})"
            reasons: list[ReasonLike] = [
                {"reason": f"{why}; to try again from {before.retry_at:%Y-%m-%d %H:%M} UTC"}
            ]
            explained = breakdowns(session.connection(), [person.id]).get(person.id, [])
            reasons += [reason.item() for reason in top_reasons(explained)]
            plans.append((person.id, retry_key(before.id), person.score, reasons))
    results = []
    for lead_id, trigger_key_, score, reasons in plans:
        result = escalate_or_set_aside(
            runtime, lead_id, RETRY_DUE, trigger_key_, score, reasons, now
        )
        if result is not None:
            results.append(result)
    if deliver and any(result.created for result in results):
        deliver_notifications(runtime, now)
    return results


@dataclass
class RunReport:
    escalated: int = 0
    retried: int = 0  # of the escalated: leads not ready before, tried again
    rerouted: int = 0
    to_queue: int = 0
    notify: NotifyReport = field(default_factory=NotifyReport)


def run_escalations(runtime: EscalationRuntime, now: datetime) -> RunReport:
    """One pass of the every-minute loop: scan for SQL leads and retries due, apply SLAs,
    send what is due."""
    report = RunReport()
    report.escalated = sum(r.created for r in find_sales_ready(runtime, now, deliver=False))
    report.retried = sum(r.created for r in find_retries_due(runtime, now, deliver=False))
    report.escalated += report.retried
    sla = check_slas(runtime, now, deliver=False)
    report.rerouted, report.to_queue = sla.rerouted, sla.to_queue
    report.notify = deliver_notifications(runtime, now)
    return report
