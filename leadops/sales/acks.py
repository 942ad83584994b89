"""Acknowledge and close an escalation: what the signed link, the CLI and reps call.

Acknowledging stops the SLA clock; closing `won` makes the lead a customer, `lost` or
`not_ready` recycles it into nurture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.core.clock import ensure_utc
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    AWAITING_ACK_STATUSES,
    ESCALATION_ASSIGNMENTS,
    ESCALATIONS,
    LEADS,
    Escalation,
    EscalationStatus,
    LifecycleStage,
)
from leadops.sales.escalation import EscalationError


@dataclass
class AckResult:
    ok: bool
    message: str
    escalation_id: int


def acknowledge(
    engine: Engine,
    escalation_id: int,
    *,
    now: datetime,
    by: str,
    assignment_id: int | None = None,
) -> AckResult:
    """Acknowledge an escalation. With `assignment_id` (a signed link), only while that
    assignment is the current one. Acknowledging twice is harmless."""
    now = ensure_utc(now)
    e = ESCALATIONS.c
    with Session(engine, expire_on_commit=False) as session:
        escalation = session.get(Escalation, escalation_id)
        if escalation is None:
            raise EscalationError(f"no escalation with id {escalation_id}")
        if escalation.status == EscalationStatus.ACKNOWLEDGED and assignment_id in (
            None,
            escalation.assignment_id,
        ):
            when = f"{escalation.acknowledged_at:%Y-%m-%d %H:%M} UTC"
            message = f"already acknowledged by {escalation.acknowledged_by} at {when}"
            return AckResult(True, message, escalation_id)
        if escalation.status not in AWAITING_ACK_STATUSES:
            return AckResult(False, f"escalation is {escalation.status}", escalation_id)
        if assignment_id is not None and assignment_id != escalation.assignment_id:
            holder = escalation.rep_key or "the fallback queue"
            message = f"this link is out of date: the lead was re-routed to {holder}"
            return AckResult(False, message, escalation_id)
        current = escalation.assignment_id
        done = session.execute(
            update(ESCALATIONS)
            .where(
                e.id == escalation_id,
                e.assignment_id == current,
                e.status.in_(AWAITING_ACK_STATUSES),
            )
            .values(
                status=EscalationStatus.ACKNOWLEDGED,
                acknowledged_at=now,
                acknowledged_by=by[:200],
                updated_at=now,
            )
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return AckResult(False, "the escalation changed meanwhile; try again", escalation_id)
        session.execute(
            update(ESCALATION_ASSIGNMENTS)
            .where(ESCALATION_ASSIGNMENTS.c.id == current)
            .values(ended_at=now, end_reason="acknowledged")
        )
        session.commit()
    return AckResult(True, f"acknowledged by {by}", escalation_id)


Outcome = Literal["won", "lost", "not_ready"]
OUTCOMES: dict[str, tuple[EscalationStatus, LifecycleStage]] = {
    # closed-won: a customer; lost or not ready: back into nurture (a lead left at `sql`
    # would only be escalated again by the next scan)
    "won": (EscalationStatus.CLOSED_WON, LifecycleStage.CUSTOMER),
    "lost": (EscalationStatus.CLOSED_LOST, LifecycleStage.RECYCLED),
    "not_ready": (EscalationStatus.RECYCLED, LifecycleStage.RECYCLED),
}


def close(
    engine: Engine,
    escalation_id: int,
    outcome: str,
    *,
    now: datetime,
    by: str,
    note: str | None = None,
) -> Escalation:
    """Close an escalation: won makes the lead a customer; lost or not ready recycles it
    into nurture (lifecycle stage `recycled`)."""
    if outcome not in OUTCOMES:
        raise EscalationError(f"outcome {outcome!r}: use {', '.join(OUTCOMES)}")
    status, stage = OUTCOMES[outcome]
    now = ensure_utc(now)
    with Session(engine, expire_on_commit=False) as session:
        escalation = session.get(Escalation, escalation_id)
        if escalation is None:
            raise EscalationError(f"no escalation with id {escalation_id}")
        if escalation.status == status:
            return escalation
        if escalation.status not in ACTIVE_ESCALATION_STATUSES:
            raise EscalationError(f"escalation {escalation_id} is already {escalation.status}")
        escalation.status = status
        escalation.closed_at = now
        escalation.closed_by = by[:200]
        escalation.close_note = note
        escalation.sla_due_at = None
        escalation.updated_at = now
        session.execute(
            update(ESCALATION_ASSIGNMENTS)
            .where(
                ESCALATION_ASSIGNMENTS.c.id == escalation.assignment_id,
                ESCALATION_ASSIGNMENTS.c.ended_at.is_(None),
            )
            .values(ended_at=now, end_reason=f"closed {outcome}")
        )
        session.execute(
            update(LEADS)
            .where(LEADS.c.id == escalation.lead_id)
            .values(lifecycle_stage=stage, updated_at=now)
        )
        session.commit()
        return escalation
