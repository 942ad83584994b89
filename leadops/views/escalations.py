"""Escalations, read only: the lists and details the CLI shows, and who a lead would be
routed to now. Nothing here writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.core.clock import ensure_utc
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    ESCALATION_ASSIGNMENTS,
    ESCALATION_NOTIFICATIONS,
    ESCALATIONS,
    LEADS,
    Escalation,
    EscalationAssignment,
    EscalationNotification,
    EscalationStatus,
    Lead,
)
from leadops.sales.escalation import EscalationError, account_owner, current_loads, profile_of
from leadops.sales.routing import RouteDecision, route
from leadops.sales.runtime import EscalationRuntime
from leadops.sales.triggers import trigger_label
from leadops.views.paging import paged


def preview_route(runtime: EscalationRuntime, lead_id: int, now: datetime) -> RouteDecision:
    """Who would get this lead now, and why (nothing is written)."""
    with Session(runtime.engine) as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise EscalationError(f"no lead with id {lead_id}")
        profile = profile_of(runtime.routing, lead)
        return route(
            runtime.routing,
            profile,
            now=ensure_utc(now),
            loads=current_loads(session, runtime.routing, now),
            owner=account_owner(session, profile.account_domain),
        )


def escalation_rows(
    engine: Engine, *, status: str | None = "active", rep: str | None = None, limit: int = 200
) -> tuple[list[dict[str, Any]], int]:
    """Escalations with their lead's email and company, newest first, at most `limit` (0:
    all), with how many match in all. `status` "active" means open, acknowledged or
    re-routed; None or "all" means every status."""
    e = ESCALATIONS.c
    query = (
        select(ESCALATIONS, LEADS.c.email, LEADS.c.company)
        .join(LEADS, LEADS.c.id == e.lead_id)
        .order_by(e.id.desc())
    )
    if status == "active":
        query = query.where(e.status.in_(ACTIVE_ESCALATION_STATUSES))
    elif status not in (None, "all"):
        known = {s.value for s in EscalationStatus}
        if status not in known:
            raise EscalationError(f"unknown status {status!r}; use active, all or {sorted(known)}")
        query = query.where(e.status == status)
    if rep:
        query = query.where(e.rep_key == rep)
    with engine.connect() as conn:
        found, total = paged(conn, query, limit)
        rows = [dict(row._mapping) for row in found]
    for row in rows:
        row["assignee"] = row["rep_key"] or f"queue:{row['queue']}"
        row["why"] = trigger_label(row["trigger"], row["trigger_detail"], row["score"])
    return rows, total


def lead_escalations(engine: Engine, lead_id: int) -> list[dict[str, Any]]:
    """One lead's escalations, oldest first: id, trigger, status, assignee, created_at."""
    e = ESCALATIONS.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(e.id, e.trigger, e.status, e.rep_key, e.queue, e.created_at)
            .where(e.lead_id == lead_id)
            .order_by(e.id)
        ).all()
    return [
        {
            "id": row.id,
            "trigger": row.trigger,
            "status": row.status,
            "assignee": row.rep_key or f"queue:{row.queue}",
            "created_at": row.created_at,
        }
        for row in rows
    ]


def escalation_detail(engine: Engine, escalation_id: int) -> dict[str, Any]:
    """One escalation with its reasons, assignments (the audit trail) and notifications."""
    with Session(engine) as session:
        escalation = session.get(Escalation, escalation_id)
        if escalation is None:
            raise EscalationError(f"no escalation with id {escalation_id}")
        assignments = session.execute(
            select(EscalationAssignment)
            .where(ESCALATION_ASSIGNMENTS.c.escalation_id == escalation_id)
            .order_by(ESCALATION_ASSIGNMENTS.c.seq)
        ).scalars()
        notifications = session.execute(
            select(EscalationNotification)
            .where(ESCALATION_NOTIFICATIONS.c.escalation_id == escalation_id)
            .order_by(ESCALATION_NOTIFICATIONS.c.id)
        ).scalars()
        record = escalation.model_dump()
        record["why"] = trigger_label(
            escalation.trigger, escalation.trigger_detail, escalation.score
        )
        fields = [key for key in Escalation.model_fields if key != "reasons"]
        return {
            "escalation": {key: record[key] for key in [*fields[:4], "why", *fields[4:]]},
            "reasons": list(escalation.reasons),
            "assignments": [
                {**a.model_dump(), "assignee": a.rep_key or f"queue:{a.queue}"} for a in assignments
            ],
            "notifications": [n.model_dump() for n in notifications],
        }
