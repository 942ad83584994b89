"""KPIs of the hand-offs to sales: escalations by status, those waiting for a rep, time to
acknowledge and the sales response time (lead became SQL to rep acknowledgement)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import (
    AWAITING_ACK_STATUSES,
    ESCALATION_ASSIGNMENTS,
    ESCALATIONS,
    STAGE_CHANGES,
    LifecycleStage,
)
from leadops.reporting.kpi_figures import KpiReport
from leadops.reporting.kpi_sql import seconds


def _median(deltas: Any, where: Any) -> Any:
    """The median of `deltas` over rows matching `where`, with window functions (SQLite
    and PostgreSQL alike): the middle row, or the mean of the two middle rows."""
    ranked = (
        sa.select(
            deltas.label("d"),
            sa.func.row_number().over(order_by=deltas).label("rn"),
            sa.func.count().over().label("n"),
        )
        .where(where)
        .subquery("ranked")
    )
    r = ranked.c
    return sa.select(sa.func.avg(r.d)).where(2 * r.rn >= r.n, 2 * r.rn <= r.n + 2)


def escalations(conn: Connection, dialect: str, now: datetime, report: KpiReport) -> None:
    e, c = ESCALATIONS.c, STAGE_CHANGES.c
    stats = report.escalations
    stats.by_status = {
        status: int(n)
        for status, n in conn.execute(
            sa.select(e.status, sa.func.count()).group_by(e.status).order_by(e.status)
        ).all()
    }
    stats.total = sum(stats.by_status.values())
    awaiting = e.status.in_([str(s) for s in AWAITING_ACK_STATUSES])
    stats.awaiting, stats.in_queue, stats.past_sla = (
        int(n or 0)
        for n in conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.sum(sa.case((e.rep_key.is_(None), 1), else_=0)),
                sa.func.sum(sa.case((e.sla_due_at < now, 1), else_=0)),
            ).where(awaiting)
        ).one()
    )
    acked = e.acknowledged_at.is_not(None)
    # The first rep's SLA due time (the escalation row holds the current assignment's).
    a = ESCALATION_ASSIGNMENTS.c
    first_due = (
        sa.select(a.sla_due_at)
        .where(a.escalation_id == e.id, a.seq == 1)
        .correlate(ESCALATIONS)
        .scalar_subquery()
    )
    ack_delta = seconds(e.acknowledged_at, dialect) - seconds(e.created_at, dialect)
    count, avg, within = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.avg(ack_delta),
            sa.func.sum(sa.case((e.acknowledged_at <= first_due, 1), else_=0)),
        ).where(acked)
    ).one()
    stats.acknowledged = int(count or 0)
    if stats.acknowledged:
        stats.ack_avg_minutes = float(avg) / 60.0
        stats.within_sla = float(within or 0) / stats.acknowledged
        stats.ack_median_minutes = float(conn.execute(_median(ack_delta, acked)).scalar_one()) / 60
    # Sales response time: from the lead becoming SQL (the stage change behind an
    # sql_threshold escalation) or else the escalation itself, to the acknowledgement.
    became_sql = (
        sa.select(sa.func.max(c.changed_at))
        .where(
            c.lead_id == e.lead_id, c.to_stage == LifecycleStage.SQL, c.changed_at <= e.created_at
        )
        .correlate(ESCALATIONS)
        .scalar_subquery()
    )
    start = sa.case(
        (e.trigger == "sql_threshold", sa.func.coalesce(became_sql, e.created_at)),
        else_=e.created_at,
    )
    response = seconds(e.acknowledged_at, dialect) - seconds(start, dialect)
    count, avg = conn.execute(sa.select(sa.func.count(), sa.func.avg(response)).where(acked)).one()
    stats.response_count = int(count or 0)
    if stats.response_count:
        stats.response_avg_hours = float(avg) / 3600.0
        stats.response_median_hours = (
            float(conn.execute(_median(response, acked)).scalar_one()) / 3600.0
        )
