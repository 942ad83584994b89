"""KPIs of the hand-offs to sales: escalations by status, those waiting for a rep, time to
acknowledge and from SQL to the acknowledgement, speed to lead (to the rep's first
contact) per rep and source, and how the escalations ended (won, lost, not ready,
disqualified, by reason)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    AWAITING_ACK_STATUSES,
    ESCALATION_ASSIGNMENTS,
    ESCALATIONS,
    LEADS,
    STAGE_CHANGES,
    EscalationStatus,
    LifecycleStage,
)
from leadops.reporting.kpi_figures import KpiReport, OutcomeReason, SpeedToLead
from leadops.reporting.kpi_sql import MEDIAN, NO_SOURCE, P90, percentiles, seconds

ACTIVE = [str(s) for s in ACTIVE_ESCALATION_STATUSES]
QUEUE = "(queue)"  # the rep group of escalations in the fallback queue
NO_REASON = "(none)"  # closed without a reason code
# The outcome of each closing status, as the report names it (an ActivityKind).
OUTCOMES = {
    EscalationStatus.CLOSED_LOST: "lost",
    EscalationStatus.RECYCLED: "not_ready",
    EscalationStatus.DISQUALIFIED: "disqualified",
}


def _median(conn: Connection, deltas: Any, where: Any) -> float:
    """The median of `deltas` over the rows matching `where` (at least one)."""
    return float(conn.execute(percentiles(deltas, (MEDIAN,), where=where)).one()[1])


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
        stats.ack_median_minutes = _median(conn, ack_delta, acked) / 60.0
    # From SQL to acknowledgement: from the lead becoming SQL (the stage change behind an
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
        stats.response_median_hours = _median(conn, response, acked) / 3600.0


def speed_to_lead(conn: Connection, dialect: str, now: datetime, report: KpiReport) -> None:
    """Speed to lead: the time from the start of the clock to the rep's first logged
    contact (call, email or meeting), as median and p90 (percentile_cont, see
    `percentiles`), overall, per rep and per lead source.

    The clock starts at the escalation's `started_at`: the moment the hand was raised
    for a hand-raise (a demo request, a reply), the lead's creation for a lead that
    reached SQL (imported as SQL or by score); the escalation's own time if it has none.
    Each escalation is its own hand-off: a lead escalated twice counts twice, each from
    its own start. Per rep: the rep who logged the first contact; an escalation without
    one counts for the rep holding it now (the fallback queue: "(queue)"). Escalations
    without a first contact are counted apart: still active (open, acknowledged or
    re-routed: waiting, with the hours since the oldest one's start) or closed without
    one, never as a time.
    """
    e, lead = ESCALATIONS.c, LEADS.c
    start = sa.func.coalesce(e.started_at, e.created_at)
    contacted = e.first_contact_at.is_not(None)
    delta = seconds(e.first_contact_at, dialect) - seconds(start, dialect)
    joined = ESCALATIONS.join(LEADS, lead.id == e.lead_id)
    source = sa.func.coalesce(lead.source, NO_SOURCE)
    groups: dict[tuple[str, str], SpeedToLead] = {("all", "all"): SpeedToLead("all", "all")}

    def group(by: str, key: str) -> SpeedToLead:
        return groups.setdefault((by, key), SpeedToLead(by, key))

    rep = sa.func.coalesce(e.first_contact_by, e.rep_key, QUEUE)
    for by, key, rows in (
        ("all", None, ESCALATIONS),
        ("rep", rep, ESCALATIONS),
        ("source", source, joined),
    ):
        query = percentiles(delta, (MEDIAN, P90), where=contacted, key=key, select_from=rows)
        for row in conn.execute(query):
            *names, n, median, p90 = row
            if not n:
                continue  # no contact at all: the one row of the overall query
            figures = group(by, names[0] if names else "all")
            figures.contacted = int(n)
            figures.median_minutes = float(median) / 60.0
            figures.p90_minutes = float(p90) / 60.0
    active = e.status.in_(ACTIVE)
    holder = sa.func.coalesce(e.rep_key, QUEUE)
    waiting = conn.execute(
        sa.select(
            holder,
            source,
            sa.func.sum(sa.case((active, 1), else_=0)),
            sa.func.min(sa.case((active, start))),
            sa.func.sum(sa.case((active, 0), else_=1)),
        )
        .select_from(joined)
        .where(e.first_contact_at.is_(None))
        .group_by(holder, source)
    ).all()
    for rep, lead_source, n_waiting, oldest, n_closed in waiting:
        for figures in (group("all", "all"), group("rep", rep), group("source", lead_source)):
            figures.waiting += int(n_waiting or 0)
            figures.closed_uncontacted += int(n_closed or 0)
            if oldest is not None:
                hours = (now - oldest).total_seconds() / 3600.0
                figures.oldest_waiting_hours = max(hours, figures.oldest_waiting_hours or hours)
    order = {"all": 0, "rep": 1, "source": 2}
    report.speed_to_lead = [groups[k] for k in sorted(groups, key=lambda k: (order[k[0]], k[1]))]


def outcomes(conn: Connection, now: datetime, report: KpiReport) -> None:
    """Escalations won (with the total and average amount), lost, not ready (with their
    retries) and disqualified, and the reasons given, from each escalation's status."""
    e = ESCALATIONS.c
    stats = report.outcomes
    won, with_amount, cents = conn.execute(
        sa.select(
            sa.func.count(), sa.func.count(e.amount_cents), sa.func.sum(e.amount_cents)
        ).where(e.status == EscalationStatus.CLOSED_WON)
    ).one()
    stats.won, stats.won_without_amount = int(won), int(won) - int(with_amount)
    if with_amount:
        stats.won_amount_total = int(cents) / 100.0
        stats.won_amount_average = int(cents) / 100.0 / int(with_amount)
    rows = conn.execute(
        sa.select(e.status, e.outcome_reason, sa.func.count())
        .where(e.status.in_([str(s) for s in OUTCOMES]))
        .group_by(e.status, e.outcome_reason)
    ).all()
    for status, reason, n in rows:
        outcome = OUTCOMES[EscalationStatus(status)]
        setattr(stats, outcome, getattr(stats, outcome) + int(n))
        report.outcome_reasons.append(OutcomeReason(outcome, reason or NO_REASON, int(n)))
    report.outcome_reasons.sort(key=lambda r: (list(OUTCOMES.values()).index(r.outcome), r.reason))
    # A retry is due once its date passed, until the lead is escalated again.
    later = ESCALATIONS.alias("later")
    again = sa.exists().where(later.c.lead_id == e.lead_id, later.c.id > e.id)
    scheduled, due = conn.execute(
        sa.select(
            sa.func.sum(sa.case((e.retry_at > now, 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(e.retry_at <= now, ~again), 1), else_=0)),
        ).where(e.status == EscalationStatus.RECYCLED)
    ).one()
    stats.not_ready_retry_scheduled, stats.not_ready_retry_due = int(scheduled or 0), int(due or 0)
