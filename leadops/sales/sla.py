"""The SLA loop: re-route escalations not acknowledged in time, tell the manager and,
after `max_reroutes`, hand them to the fallback queue. A re-route that raises is set
aside as a dead letter and tried again by the next pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlmodel import Session

from leadops import deadletters
from leadops.core.clock import ensure_utc
from leadops.models import (
    AWAITING_ACK_STATUSES,
    ESCALATION_ASSIGNMENTS,
    ESCALATIONS,
    DeadLetterItem,
    Escalation,
    EscalationStatus,
    Lead,
)
from leadops.sales.escalation import account_owner, assign, current_loads, profile_of
from leadops.sales.notify import deliver_notifications
from leadops.sales.routing import RouteDecision, route
from leadops.sales.runtime import EscalationRuntime

log = logging.getLogger("leadops.escalation")


@dataclass
class SlaReport:
    rerouted: int = 0
    to_queue: int = 0
    failed: int = 0  # could not be re-routed: set aside as dead letters, tried again


def check_slas(runtime: EscalationRuntime, now: datetime, *, deliver: bool = True) -> SlaReport:
    """Re-route every escalation whose SLA passed unacknowledged; after `max_reroutes`
    re-routes (or when no eligible rep is left) it goes to the fallback queue. The manager
    is told each time; the notifications go out at once unless `deliver` is False."""
    now = ensure_utc(now)
    report = SlaReport()
    e = ESCALATIONS.c
    with Session(runtime.engine, expire_on_commit=False) as session:
        due = list(
            session.execute(
                select(e.id)
                .where(e.status.in_(AWAITING_ACK_STATUSES), e.sla_due_at <= now)
                .order_by(e.sla_due_at, e.id)
            ).scalars()
        )
    for escalation_id in due:
        try:
            decision = _reroute(runtime, escalation_id, now)
        except Exception as exc:  # this one is set aside; the SLA check tries it again
            if deadletters.must_raise(exc):
                raise
            report.failed += 1
            with runtime.engine.begin() as connection:
                deadletters.record(
                    connection,
                    item=DeadLetterItem.ESCALATION,
                    item_id=None,
                    stage="escalation",
                    error=f"re-route of escalation {escalation_id}: {deadletters.describe(exc)}",
                    payload={"reroute": escalation_id},
                    now=now,
                    key=f"escalation:reroute:{escalation_id}",
                )
            continue
        if decision is None:
            continue
        deadletters.resolve(runtime.engine, f"escalation:reroute:{escalation_id}", now)
        if decision.rep is None:
            report.to_queue += 1
        else:
            report.rerouted += 1
        log.warning(
            "escalation %s not acknowledged in time: re-routed to %s (%s)",
            escalation_id,
            decision.rep.key if decision.rep else "the fallback queue",
            decision.detail,
        )
    if deliver and (report.rerouted or report.to_queue):
        deliver_notifications(runtime, now)
    return report


def _reroute(runtime: EscalationRuntime, escalation_id: int, now: datetime) -> RouteDecision | None:
    """Re-route one escalation past its SLA (one transaction); None when it no longer
    needs it (acknowledged or closed meanwhile)."""
    e = ESCALATIONS.c
    with Session(runtime.engine, expire_on_commit=False) as session:
        escalation = session.get(Escalation, escalation_id)
        assert escalation is not None
        previous_id = escalation.assignment_id
        if escalation.status not in AWAITING_ACK_STATUSES or escalation.sla_due_at is None:
            return None
        decision = _reroute_decision(session, runtime, escalation, now)
        moved = session.execute(
            update(ESCALATIONS)
            .where(
                e.id == escalation_id,
                e.assignment_id == previous_id,
                e.status.in_(AWAITING_ACK_STATUSES),
            )
            .values(status=EscalationStatus.REROUTED, reroutes=e.reroutes + 1)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]  # acknowledged meanwhile
            session.rollback()
            return None
        session.execute(
            update(ESCALATION_ASSIGNMENTS)
            .where(ESCALATION_ASSIGNMENTS.c.id == previous_id)
            .values(ended_at=now, end_reason="sla_missed")
        )
        session.refresh(escalation)
        seq = (
            1
            + session.execute(
                select(func.max(ESCALATION_ASSIGNMENTS.c.seq)).where(
                    ESCALATION_ASSIGNMENTS.c.escalation_id == escalation_id
                )
            ).scalar_one()
        )
        assign(session, runtime, escalation, decision, seq=seq, now=now)
        session.commit()
    return decision


def _reroute_decision(
    session: Session, runtime: EscalationRuntime, escalation: Escalation, now: datetime
) -> RouteDecision:
    routing = runtime.routing
    if escalation.reroutes >= routing.max_reroutes:
        return RouteDecision(
            None, "fallback", f"not acknowledged after {escalation.reroutes} re-route(s)"
        )
    tried = {
        str(key)
        for key in session.execute(
            select(ESCALATION_ASSIGNMENTS.c.rep_key).where(
                ESCALATION_ASSIGNMENTS.c.escalation_id == escalation.id,
                ESCALATION_ASSIGNMENTS.c.rep_key.is_not(None),
            )
        ).scalars()
    }
    lead = session.get(Lead, escalation.lead_id)
    assert lead is not None
    return route(
        routing,
        profile_of(routing, lead),
        now=now,
        loads=current_loads(session, routing, now),
        owner=account_owner(session, escalation.account_domain),
        exclude=tried,
    )
