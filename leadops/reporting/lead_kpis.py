"""KPIs of the leads themselves: the funnel (with each lead's peak stage), lead response
time, nurture conversion (of leads nurtured from below SQL), the score distribution, leads
never followed up (and apart from them those no channel can reach) and data quality
(flagged fields, open quarantine)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import (
    ESCALATIONS,
    FUNNEL_ORDER,
    LEAD_FIELD_ISSUES,
    LEAD_SOURCE_RECORDS,
    LEADS,
    QUARANTINE,
    QUARANTINED_FILES,
    STAGE_CHANGES,
    TOUCHES,
    LifecycleStage,
)
from leadops.reporting.kpi_figures import FunnelStage, KpiReport
from leadops.reporting.kpi_sql import SENT, seconds

FUNNEL_STAGES = (
    LifecycleStage.SUBSCRIBER,
    LifecycleStage.LEAD,
    LifecycleStage.MQL,
    LifecycleStage.SQL,
    LifecycleStage.OPPORTUNITY,
    LifecycleStage.CUSTOMER,
)
# Stages that end nurturing: such leads are not expected to be followed up by it.
NOT_NURTURED = (LifecycleStage.CUSTOMER, LifecycleStage.UNSUBSCRIBED)
CONVERTED_RANK = FUNNEL_ORDER[LifecycleStage.SQL]
SCORE_BUCKETS = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


def _rank_of(stage: Any) -> Any:
    """A stage's funnel rank (-1 for stages outside the funnel: unsubscribed)."""
    return sa.case({str(name): rank for name, rank in FUNNEL_ORDER.items()}, value=stage, else_=-1)


def _first_sent() -> Any:
    t = TOUCHES.c
    return (
        sa.select(t.lead_id, sa.func.min(t.sent_at).label("first_at"))
        .where(t.status.in_(SENT))
        .group_by(t.lead_id)
        .subquery("first_sent")
    )


# -- one function per KPI ------------------------------------------------------------------


def response_time(conn: Connection, dialect: str, report: KpiReport) -> None:
    first = _first_sent()
    delta = seconds(first.c.first_at, dialect) - seconds(LEADS.c.created_at, dialect)
    count, avg, within = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.avg(delta),
            sa.func.sum(sa.case((delta <= 86400, 1), else_=0)),
        ).select_from(LEADS.join(first, first.c.lead_id == LEADS.c.id))
    ).one()
    report.response_leads = int(count or 0)
    if count:
        report.response_avg_hours = float(avg) / 3600.0
        report.response_within_day = float(within or 0) / count


def _peak_rank() -> Any:
    """Each lead's highest funnel rank: its stage now, any stage scoring moved it to
    (stage_changes), and SQL for a lead ever escalated (handed to sales as sales-ready);
    so a lead recycled after reaching SQL still reached it."""
    c, e = STAGE_CHANGES.c, ESCALATIONS.c
    history = sa.union_all(
        sa.select(c.lead_id, _rank_of(c.to_stage).label("rank")),
        sa.select(e.lead_id, sa.literal(CONVERTED_RANK).label("rank")),
    ).subquery("history")
    best = (
        sa.select(history.c.lead_id, sa.func.max(history.c.rank).label("rank"))
        .group_by(history.c.lead_id)
        .subquery("best")
    )
    current = _rank_of(LEADS.c.lifecycle_stage)
    past = sa.func.coalesce(best.c.rank, -1)
    peak = sa.case((past > current, past), else_=current).label("peak")
    return (
        sa.select(LEADS.c.id.label("lead_id"), LEADS.c.lifecycle_stage, peak)
        .select_from(LEADS.outerjoin(best, best.c.lead_id == LEADS.c.id))
        .subquery("peaks")
    )


def funnel(conn: Connection, report: KpiReport) -> None:
    peaks = _peak_rank()
    rows = conn.execute(
        sa.select(peaks.c.lifecycle_stage, peaks.c.peak, sa.func.count()).group_by(
            peaks.c.lifecycle_stage, peaks.c.peak
        )
    ).all()
    counts: dict[str, int] = {}
    by_rank: dict[int, int] = {}
    for stage, peak, n in rows:
        counts[stage] = counts.get(stage, 0) + int(n)
        if int(peak) >= 0:
            by_rank[int(peak)] = by_rank.get(int(peak), 0) + int(n)
    report.leads_total = sum(counts.values())
    report.unsubscribed = counts.get(LifecycleStage.UNSUBSCRIBED, 0)
    reached = {
        stage: sum(n for rank, n in by_rank.items() if rank >= FUNNEL_ORDER[stage])
        for stage in FUNNEL_STAGES
    }
    for index, stage in enumerate(FUNNEL_STAGES):
        following = FUNNEL_STAGES[index + 1] if index + 1 < len(FUNNEL_STAGES) else None
        conversion = reached[following] / reached[stage] if following and reached[stage] else None
        current = counts.get(stage, 0)
        if stage == LifecycleStage.LEAD:
            current += counts.get(LifecycleStage.RECYCLED, 0)
        report.funnel.append(FunnelStage(str(stage), current, reached[stage], conversion))


def _stage_when_first_sent(first: Any) -> Any:
    """Each nurtured lead's stage when its first message went out: the stage scoring last
    moved it to before then (stage_changes), else the stage its next move started from,
    else the stage it was created with (its first source record), else its stage now."""
    c, r = STAGE_CHANGES.c, LEAD_SOURCE_RECORDS.c
    lead = first.c.lead_id
    before = (
        sa.select(c.to_stage)
        .where(c.lead_id == lead, c.changed_at <= first.c.first_at)
        .order_by(c.changed_at.desc(), c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    after = (
        sa.select(c.from_stage)
        .where(c.lead_id == lead, c.changed_at > first.c.first_at)
        .order_by(c.changed_at, c.id)
        .limit(1)
        .scalar_subquery()
    )
    created = (
        sa.select(r.data["lifecycle_stage"].as_string())
        .where(r.lead_id == lead, r.action == "created")
        .order_by(r.id)
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(before, after, created, LEADS.c.lifecycle_stage)


def nurture_conversion(conn: Connection, report: KpiReport) -> None:
    """Leads nurtured from below SQL (at least one message sent, at a stage below SQL when
    the first went out) that reached SQL or beyond; a lead imported as SQL is not one."""
    first = _first_sent()
    peaks = _peak_rank()
    entered = _rank_of(_stage_when_first_sent(first))
    nurtured, converted = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.sum(sa.case((peaks.c.peak >= CONVERTED_RANK, 1), else_=0)),
        )
        .select_from(
            peaks.join(first, first.c.lead_id == peaks.c.lead_id).join(
                LEADS, LEADS.c.id == peaks.c.lead_id
            )
        )
        .where(entered < CONVERTED_RANK)
    ).one()
    report.nurtured = int(nurtured or 0)
    report.nurture_converted = int(converted or 0)


def scores(conn: Connection, report: KpiReport) -> None:
    score = LEADS.c.score
    whens = [(score < SCORE_BUCKETS[0], 0)]
    whens += [(score < upper, i + 1) for i, upper in enumerate(SCORE_BUCKETS[1:])]
    bucket = sa.case(*whens, else_=len(SCORE_BUCKETS)).label("bucket")
    report.score_avg = conn.execute(sa.select(sa.func.avg(score))).scalar_one_or_none()
    if report.score_avg is not None:
        report.score_avg = float(report.score_avg)
    counts: dict[int, int] = {
        int(b): int(n)
        for b, n in conn.execute(sa.select(bucket, sa.func.count()).group_by(bucket)).all()
    }
    labels = [f"<{SCORE_BUCKETS[0]}"]
    labels += [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(SCORE_BUCKETS)]
    labels += [f"{SCORE_BUCKETS[-1]}+"]
    histogram = [(label, int(counts.get(i, 0))) for i, label in enumerate(labels)]
    # Drop empty buckets below zero and at the top; keep the 0..100 range readable.
    report.score_histogram = [
        (label, n) for label, n in histogram if n or label not in (labels[0], labels[-1])
    ]


def contactable() -> Any:
    """A lead some channel may reach: an address, consent and no suppression on it."""
    lead = LEADS.c
    email = sa.and_(
        lead.email.is_not(None), lead.email_consent.is_(True), lead.email_suppressed_at.is_(None)
    )
    whatsapp = sa.and_(
        lead.phone.is_not(None),
        lead.whatsapp_consent.is_(True),
        lead.whatsapp_suppressed_at.is_(None),
    )
    sms = sa.and_(
        lead.phone.is_not(None), lead.sms_consent.is_(True), lead.sms_suppressed_at.is_(None)
    )
    return sa.or_(email, whatsapp, sms)


def never_followed_up(conn: Connection, now: datetime, report: KpiReport) -> None:
    """Leads created over a day ago, still to be nurtured, never sent a message: those a
    channel may reach (the target is 0), and apart from them those no channel can (no
    address with consent on any, or suppressed on every one)."""
    t = TOUCHES.c
    sent = sa.select(t.id).where(t.lead_id == LEADS.c.id, t.status.in_(SENT)).exists()
    reachable = contactable().label("reachable")
    rows = conn.execute(
        sa.select(LEADS.c.lifecycle_stage, reachable, sa.func.count())
        .where(
            LEADS.c.created_at < now - timedelta(days=1),
            LEADS.c.lifecycle_stage.not_in([str(s) for s in NOT_NURTURED]),
            LEADS.c.unsubscribed_at.is_(None),
            ~sent,
        )
        .group_by(LEADS.c.lifecycle_stage, reachable)
    ).all()
    report.never_followed_up_by_stage = {stage: int(n) for stage, can, n in sorted(rows) if can}
    report.never_followed_up = sum(report.never_followed_up_by_stage.values())
    report.uncontactable = sum(int(n) for _, can, n in rows if not can)


def data_quality(conn: Connection, report: KpiReport) -> None:
    issues = LEAD_FIELD_ISSUES.c
    open_issue = issues.resolved_at.is_(None)
    report.flagged_leads = int(
        conn.execute(
            sa.select(sa.func.count(sa.distinct(issues.lead_id))).where(open_issue)
        ).scalar_one()
    )
    rows = conn.execute(
        sa.select(issues.reason, sa.func.count(sa.distinct(issues.lead_id)))
        .where(open_issue)
        .group_by(issues.reason)
    ).all()
    report.flagged_by_reason = {reason: int(n) for reason, n in rows}
    for table, attr in (
        (QUARANTINE, "quarantined_open"),
        (QUARANTINED_FILES, "quarantined_files_open"),
    ):
        count = sa.select(sa.func.count()).select_from(table).where(table.c.status == "open")
        setattr(report, attr, int(conn.execute(count).scalar_one()))
