"""Leads as the CLI lists and shows them: rows of a filtered list, and one lead with its
flagged data, enrollments and touches."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from leadops.delivery.compose import lead_context
from leadops.models import Enrollment, Lead, LeadFieldIssue, Touch
from leadops.views.paging import paged


def lead_rows(
    engine: Engine, *, stage: str | None, segment: str | None, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Leads by id, at most `limit` (0: all), optionally of one lifecycle stage and one
    segment; with how many match in all."""
    query = select(Lead)
    if stage:
        query = query.where(col(Lead.lifecycle_stage) == stage)
    if segment:
        query = query.where(col(Lead.segment) == segment)
    with Session(engine) as session:
        rows, total = paged(session, query.order_by(col(Lead.id)), limit)
    return [lead.model_dump() for (lead,) in rows], total


def lead_detail(engine: Engine, lead_id: int) -> dict[str, Any] | None:
    """One lead (`lead`, its fields in model order) with its flagged data (`issues`),
    `enrollments` and `touches` (by due time); None if there is no such lead."""
    with Session(engine) as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            return None
        issues = [
            issue.model_dump()
            for issue in session.exec(
                select(LeadFieldIssue)
                .where(LeadFieldIssue.lead_id == lead_id)
                .order_by(col(LeadFieldIssue.id))
            )
        ]
        enrollments = (
            session.execute(
                select(Enrollment).where(Enrollment.lead_id == lead_id).order_by(Enrollment.id)  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
        touches = (
            session.execute(
                select(Touch).where(Touch.lead_id == lead_id).order_by(Touch.due_at, Touch.id)  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
        return {
            "lead": lead.model_dump(),
            "issues": issues,
            "enrollments": [e.model_dump() for e in enrollments],
            "touches": [t.model_dump() for t in touches],
        }


def lead_template_context(engine: Engine, lead_id: int) -> dict[str, Any] | None:
    """What templates see of one lead (`delivery.compose.lead_context`); None if none."""
    with Session(engine) as session:
        lead = session.get(Lead, lead_id)
        return None if lead is None else lead_context(lead)
