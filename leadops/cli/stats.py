"""`leadops stats`: counts of leads by stage and touches by status."""

from __future__ import annotations

import typer
from sqlalchemy import func
from sqlmodel import Session, col, select

from leadops.cli.common import (
    _engine,
    _settings,
)
from leadops.cli.output import Format, emit

commands = typer.Typer()


@commands.command()
def stats() -> None:
    """Counts of leads by stage and touches by status. Example: leadops stats"""
    from leadops.models import Lead, Touch

    engine = _engine(_settings())
    with Session(engine) as session:
        stages = session.execute(
            select(col(Lead.lifecycle_stage), func.count()).group_by(col(Lead.lifecycle_stage))
        ).all()
        statuses = session.execute(
            select(col(Touch.status), func.count()).group_by(col(Touch.status))
        ).all()
    emit(
        [{"stage": s, "leads": n} for s, n in stages],
        ["stage", "leads"],
        Format.TABLE,
        title="Leads",
    )
    emit(
        [{"status": s, "touches": n} for s, n in statuses],
        ["status", "touches"],
        Format.TABLE,
        title="Touches",
    )
