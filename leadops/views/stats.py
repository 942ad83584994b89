"""`leadops stats`: leads by lifecycle stage and touches by status."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from leadops.models import Lead, Touch


def stage_counts(engine: Engine) -> list[dict[str, Any]]:
    """One row per lifecycle stage: `stage`, `leads`."""
    with Session(engine) as session:
        stages = session.execute(
            select(col(Lead.lifecycle_stage), func.count())
            .group_by(col(Lead.lifecycle_stage))
            .order_by(col(Lead.lifecycle_stage))
        ).all()
    return [{"stage": s, "leads": n} for s, n in stages]


def status_counts(engine: Engine) -> list[dict[str, Any]]:
    """One row per touch status: `status`, `touches`."""
    with Session(engine) as session:
        statuses = session.execute(
            select(col(Touch.status), func.count())
            .group_by(col(Touch.status))
            .order_by(col(Touch.status))
        ).all()
    return [{"status": s, "touches": n} for s, n in statuses]
