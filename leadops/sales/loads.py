"""What routing needs from the database: each rep's open escalations, recent assignments
and, with `performance:` on in routing.yaml, their record over its window (how fast they
acknowledged, how often they won: the CRM deal's status where the escalation has a closed
one, else how the rep closed it)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from leadops.core.clock import ensure_utc
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    CRM_DEALS,
    ESCALATION_ASSIGNMENTS,
    ESCALATIONS,
    DealStatus,
    EscalationStatus,
)
from leadops.sales.performance import RepRecord, factors
from leadops.sales.routing import Loads, RoutingConfig

CLOSED = (EscalationStatus.CLOSED_WON, EscalationStatus.CLOSED_LOST)


def current_loads(session: Session, routing: RoutingConfig, now: datetime) -> Loads:
    e, a = ESCALATIONS.c, ESCALATION_ASSIGNMENTS.c
    open_rows = session.execute(
        sa.select(e.rep_key, sa.func.count())
        .where(e.status.in_(ACTIVE_ESCALATION_STATUSES), e.rep_key.is_not(None))
        .group_by(e.rep_key)
    ).all()
    since = now - timedelta(days=routing.balance_days)
    recent_rows = session.execute(
        sa.select(a.rep_key, sa.func.count())
        .where(a.rep_key.is_not(None), a.assigned_at >= since)
        .group_by(a.rep_key)
    ).all()
    performance = None
    if routing.performance.enabled:
        records = rep_records(session, now, timedelta(days=routing.performance.window_days))
        known = {rep.key: records.get(rep.key, RepRecord()) for rep in routing.reps}
        performance = factors(known, routing.performance)
    return Loads(
        open={str(key): int(n) for key, n in open_rows},
        recent={str(key): int(n) for key, n in recent_rows},
        performance=performance,
    )


def rep_records(session: Session, now: datetime, window: timedelta) -> dict[str, RepRecord]:
    """Per rep over (now - window, now]: minutes from each assignment to its
    acknowledgement (acknowledged while the assignment was current), and the escalations
    they held that were won or lost."""
    e, a, d = ESCALATIONS.c, ESCALATION_ASSIGNMENTS.c, CRM_DEALS.c
    since = now - window
    acks: dict[str, list[float]] = defaultdict(list)
    ack_rows = session.execute(
        sa.select(a.rep_key, a.assigned_at, a.ended_at, e.acknowledged_at)
        .join(ESCALATIONS, e.id == a.escalation_id)
        .where(
            a.rep_key.is_not(None),
            a.assigned_at > since,
            e.acknowledged_at.is_not(None),
            e.acknowledged_at >= a.assigned_at,
            e.acknowledged_at <= now,
        )
        .order_by(a.id)
    ).all()
    for rep_key, assigned, ended, acked in ack_rows:
        if ended is not None and ensure_utc(acked) > ensure_utc(ended):
            continue  # acknowledged by whoever held it next
        acks[rep_key].append((ensure_utc(acked) - ensure_utc(assigned)).total_seconds() / 60)
    deal = (
        sa.select(
            d.escalation_id,
            sa.func.max(d.status).label("status"),
            sa.func.max(d.closed_at).label("closed_at"),
        )
        .where(d.status.in_([DealStatus.WON, DealStatus.LOST]), d.escalation_id.is_not(None))
        .group_by(d.escalation_id)
        .subquery()
    )  # "won" sorts after "lost": one won deal makes the escalation won
    closed_at = sa.func.coalesce(deal.c.closed_at, e.closed_at)
    outcome_rows = session.execute(
        sa.select(e.rep_key, e.status, deal.c.status)
        .outerjoin(deal, deal.c.escalation_id == e.id)
        .where(
            e.rep_key.is_not(None),
            closed_at > since,
            closed_at <= now,
            sa.or_(e.status.in_(CLOSED), deal.c.status.is_not(None)),
        )
    ).all()
    won: dict[str, int] = defaultdict(int)
    lost: dict[str, int] = defaultdict(int)
    for rep_key, status, deal_status in outcome_rows:
        if (deal_status or status) in (DealStatus.WON, EscalationStatus.CLOSED_WON):
            won[rep_key] += 1
        else:
            lost[rep_key] += 1
    keys = set(acks) | set(won) | set(lost)
    return {k: RepRecord(tuple(acks[k]), won[k], lost[k]) for k in sorted(keys)}
