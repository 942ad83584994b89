"""Revenue KPIs: what nurture earned, per source and campaign.

Revenue truth: a lead with any CRM deal (crm_deals) is counted from the CRM alone, a won
deal making it a customer; a lead without any CRM deal is a customer when a rep closed its
escalation won (escalations.amount_cents). Never both for one lead: `basis` says which.

Attribution (ATTRIBUTION below): a customer counts for the lead's source, and for each
campaign whose messages it was sent before the hand-off to sales (its first escalation;
before the win when never escalated). Per campaign the amount is counted in full (the
campaigns overlap) and split equally among them (`won_amount_split`, which adds up).

Figures are as of the report's `now`. The queries read the customers' rows only (deals,
escalations, messages of the won leads) besides per-source and per-month aggregates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.core.clock import ensure_utc
from leadops.models import (
    CRM_DEALS,
    ENROLLMENTS,
    ESCALATIONS,
    LEADS,
    STAGE_CHANGES,
    TOUCHES,
    DealStatus,
    EscalationStatus,
    LifecycleStage,
)
from leadops.reporting.kpi_figures import (
    CampaignRevenue,
    KpiReport,
    MonthVelocity,
    SourceRevenue,
    WonCustomer,
)
from leadops.reporting.kpi_sql import NO_SOURCE, SENT
from leadops.reporting.spend import LifetimeValue

ATTRIBUTION = (
    "A won customer counts once for its lead's source, and for each campaign whose "
    "messages it was sent before the hand-off to sales (before the win when never handed "
    "off): in full per campaign (campaigns overlap, do not add them up) and split equally "
    "among them (the split adds up to the total). Revenue is the CRM's won deals; a lead "
    "without any CRM deal counts its rep's closed-won escalation instead, never both."
)
CHUNK = 500
QUALIFIED = (LifecycleStage.SQL, LifecycleStage.OPPORTUNITY, LifecycleStage.CUSTOMER)
VELOCITY_MONTHS = 12


@dataclass
class _Won:
    basis: str
    deals: int = 0
    cents: int | None = None
    priced: int = 0  # won deals with an amount in the report's currency
    won_at: datetime | None = None
    source: str = NO_SOURCE
    created_at: datetime | None = None
    handoff_at: datetime | None = None
    touches_before_handoff: int = 0
    touches_before_win: int = 0
    campaigns: list[str] = field(default_factory=list)


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    values = [ensure_utc(v) for v in (a, b) if v is not None]
    return min(values) if values else None


def _add(won: _Won, cents: int | None, currency: str | None, wanted: str) -> int:
    """Count one won deal; returns 1 when its currency is not the report's."""
    won.deals += 1
    if cents is None:
        return 0
    if currency is not None and currency.upper() != wanted.upper():
        return 1
    won.cents = (won.cents or 0) + int(cents)
    won.priced += 1
    return 0


def _won_leads(conn: Connection, now: datetime, report: KpiReport) -> dict[int, _Won]:
    d, e = CRM_DEALS.c, ESCALATIONS.c
    summary = report.revenue
    in_crm: set[int] = set()
    won: dict[int, _Won] = {}
    deal_rows = conn.execute(
        sa.select(d.lead_id, d.status, d.amount_cents, d.currency, d.closed_at)
        .where(d.lead_id.is_not(None))
        .order_by(d.id)
    ).all()
    for lead_id, status, cents, currency, closed_at in deal_rows:
        in_crm.add(int(lead_id))
        if status != DealStatus.WON or (closed_at is not None and ensure_utc(closed_at) > now):
            continue
        entry = won.setdefault(int(lead_id), _Won("crm"))
        summary.won_other_currency += _add(entry, cents, currency, report.currency)
        entry.won_at = _earliest(entry.won_at, closed_at)
        summary.won_without_amount += cents is None
    esc_rows = conn.execute(
        sa.select(e.lead_id, e.amount_cents, e.closed_at)
        .where(e.status == EscalationStatus.CLOSED_WON, e.closed_at <= now)
        .order_by(e.id)
    ).all()
    for lead_id, cents, closed_at in esc_rows:
        if int(lead_id) in in_crm:
            continue  # the CRM knows this lead: its deals are the truth
        entry = won.setdefault(int(lead_id), _Won("escalation"))
        _add(entry, cents, None, report.currency)
        entry.won_at = _earliest(entry.won_at, closed_at)
        summary.won_without_amount += cents is None
    return won


def _details(conn: Connection, now: datetime, won: dict[int, _Won]) -> None:
    """Source, creation, hand-off and the messages sent before it, of each customer."""
    ids = sorted(won)
    ld, e, t = LEADS.c, ESCALATIONS.c, TOUCHES.c
    for chunk in _chunks(ids):
        for lead_id, source, created_at in conn.execute(
            sa.select(ld.id, ld.source, ld.created_at).where(ld.id.in_(chunk))
        ):
            won[lead_id].source = source or NO_SOURCE
            won[lead_id].created_at = ensure_utc(created_at)
        for lead_id, first in conn.execute(
            sa.select(e.lead_id, sa.func.min(e.created_at))
            .where(e.lead_id.in_(chunk), e.created_at <= now)
            .group_by(e.lead_id)
        ):
            won[lead_id].handoff_at = ensure_utc(first)
        touch_rows = conn.execute(
            sa.select(t.lead_id, t.campaign, t.sent_at)
            .where(t.lead_id.in_(chunk), t.status.in_(SENT), t.sent_at.is_not(None))
            .order_by(t.lead_id, t.sent_at, t.id)
        ).all()
        for lead_id, campaign, sent_at in touch_rows:
            entry, at = won[lead_id], ensure_utc(sent_at)
            cutoff = entry.handoff_at or entry.won_at or now
            if at < cutoff:
                entry.touches_before_handoff += 1
                if campaign not in entry.campaigns:
                    entry.campaigns.append(campaign)
            if at < (entry.won_at or now):
                entry.touches_before_win += 1


def percentile(values: Sequence[float], numerator: int, denominator: int) -> float | None:
    """PostgreSQL's percentile_cont (as leadops.reporting.kpi_sql.percentiles)."""
    if not values:
        return None
    ordered = sorted(values)
    position = numerator * (len(ordered) - 1) / denominator
    low = int(position)
    share = position - low
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] * (1 - share) + ordered[high] * share


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _money(cents: int | None) -> float | None:
    return None if cents is None else cents / 100


def _summary(conn: Connection, now: datetime, won: dict[int, _Won], report: KpiReport) -> None:
    s = report.revenue
    s.won_customers = len(won)
    s.won_deals = sum(w.deals for w in won.values())
    s.won_basis_crm = sum(w.basis == "crm" for w in won.values())
    s.won_basis_escalation = s.won_customers - s.won_basis_crm
    amounts = [w.cents for w in won.values() if w.cents is not None]
    if amounts:
        s.won_amount_total = sum(amounts) / 100
        priced = sum(w.priced for w in won.values())
        s.won_amount_average = s.won_amount_total / priced if priced else None
    cycles = [
        (w.won_at - w.created_at) / timedelta(days=1)
        for w in won.values()
        if w.won_at is not None and w.created_at is not None
    ]
    s.cycle_median_days = percentile(cycles, 1, 2)
    s.cycle_p90_days = percentile(cycles, 9, 10)
    before = [float(w.touches_before_handoff) for w in won.values()]
    s.touches_before_handoff_avg = _mean(before)
    s.touches_before_handoff_median = percentile(before, 1, 2)
    s.touches_before_win_avg = _mean([float(w.touches_before_win) for w in won.values()])
    n = ENROLLMENTS.c
    s.nurture_enrolled = int(
        conn.execute(
            sa.select(sa.func.count(sa.distinct(n.lead_id))).where(n.started_at <= now)
        ).scalar_one()
    )
    enrolled_won: set[int] = set()
    for chunk in _chunks(sorted(won)):
        enrolled_won.update(
            int(lead_id)
            for (lead_id,) in conn.execute(
                sa.select(n.lead_id).where(n.lead_id.in_(chunk), n.started_at <= now).distinct()
            )
        )
    s.nurture_customers = len(enrolled_won)
    if s.nurture_enrolled:
        s.nurture_customer_conversion = s.nurture_customers / s.nurture_enrolled


def _by_source(
    conn: Connection,
    won: dict[int, _Won],
    spend: dict[str, float],
    ltv: LifetimeValue,
    report: KpiReport,
) -> None:
    rows = conn.execute(sa.select(LEADS.c.source, sa.func.count()).group_by(LEADS.c.source))
    leads = {source or NO_SOURCE: int(n) for source, n in rows}
    groups: dict[str, list[_Won]] = defaultdict(list)
    for entry in won.values():
        groups[entry.source].append(entry)
    for source in sorted(set(leads) | set(spend) | set(groups)):
        members = groups.get(source, [])
        cents = [w.cents for w in members if w.cents is not None]
        amount = sum(cents) / 100 if cents else None
        priced = sum(w.priced for w in members)
        average = amount / priced if amount is not None and priced else None
        cost = spend.get(source)
        n = leads.get(source, 0)
        value = ltv.sources.get(source)
        if value is None and average is not None:
            value = average * ltv.multiplier
        roi = None
        if cost and value is not None:
            roi = (len(members) * value - cost) / cost
        report.revenue_by_source.append(
            SourceRevenue(
                source=source,
                leads=n,
                customers=len(members),
                won_amount=amount,
                average_deal=average,
                spend=cost,
                cost_per_lead=cost / n if cost is not None and n else None,
                cost_per_sale=cost / len(members) if cost is not None and members else None,
                lifetime_value=value,
                roi=roi,
                basis_crm=sum(w.basis == "crm" for w in members),
                basis_escalation=sum(w.basis == "escalation" for w in members),
            )
        )


def _by_campaign(conn: Connection, now: datetime, won: dict[int, _Won], report: KpiReport) -> None:
    n = ENROLLMENTS.c
    enrolled = {
        str(c): int(k)
        for c, k in conn.execute(
            sa.select(n.campaign, sa.func.count(sa.distinct(n.lead_id)))
            .where(n.started_at <= now)
            .group_by(n.campaign)
        )
    }
    customers: dict[str, int] = defaultdict(int)
    full: dict[str, int] = defaultdict(int)
    split: dict[str, float] = defaultdict(float)
    priced: set[str] = set()
    for entry in won.values():
        for campaign in entry.campaigns:
            customers[campaign] += 1
            if entry.cents is not None:
                priced.add(campaign)
                full[campaign] += entry.cents
                split[campaign] += entry.cents / len(entry.campaigns)
    for campaign in sorted(set(enrolled) | set(customers)):
        base = enrolled.get(campaign, 0)
        won_n = customers.get(campaign, 0)
        has = campaign in priced
        report.revenue_by_campaign.append(
            CampaignRevenue(
                campaign=campaign,
                enrolled=base,
                customers=won_n,
                customer_conversion=won_n / base if base else None,
                won_amount=full[campaign] / 100 if has else None,
                won_amount_split=split[campaign] / 100 if has else None,
            )
        )


def _month(expr: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", expr), "YYYY-MM")
    return sa.func.strftime("%Y-%m", expr)


def _months_back(now: datetime, count: int) -> list[str]:
    year, month = now.year, now.month
    months = []
    for _ in range(count + 1):  # one more: the growth of the first needs the one before
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def lead_velocity(conn: Connection, dialect: str, now: datetime, report: KpiReport) -> None:
    """Leads first qualified per month (their first move to SQL or beyond, or their first
    escalation, whichever came first; a lead imported at SQL or beyond: its creation), for
    the last VELOCITY_MONTHS months to `now`."""
    c, e, ld = STAGE_CHANGES.c, ESCALATIONS.c, LEADS.c
    stages = [str(s) for s in QUALIFIED]
    moved = sa.select(c.lead_id).where(c.lead_id == ld.id, c.to_stage.in_(stages))
    moves = sa.union_all(
        sa.select(c.lead_id.label("lead_id"), c.changed_at.label("at")).where(
            c.to_stage.in_(stages)
        ),
        sa.select(e.lead_id.label("lead_id"), e.created_at.label("at")),
        # imported qualified: at SQL or beyond with no stage change that took it there
        sa.select(ld.id.label("lead_id"), ld.created_at.label("at")).where(
            ld.lifecycle_stage.in_(stages), ~moved.exists()
        ),
    ).subquery("moves")
    first = (
        sa.select(moves.c.lead_id, sa.func.min(moves.c.at).label("at"))
        .group_by(moves.c.lead_id)
        .subquery("first_qualified")
    )
    months = _months_back(now, VELOCITY_MONTHS)
    month = _month(first.c.at, dialect).label("month")
    counts = {
        str(m): int(k)
        for m, k in conn.execute(
            sa.select(month, sa.func.count())
            .where(first.c.at <= now, month >= months[0])
            .group_by(month)
        )
    }
    previous = counts.get(months[0], 0)
    for name in months[1:]:
        qualified = counts.get(name, 0)
        growth = (qualified - previous) / previous if previous else None
        report.lead_velocity.append(MonthVelocity(name, qualified, growth, name == months[-1]))
        previous = qualified


def compute(
    conn: Connection,
    dialect: str,
    now: datetime,
    report: KpiReport,
    *,
    spend: dict[str, float],
    ltv: LifetimeValue,
) -> None:
    """Every revenue figure of `report` as of `now`."""
    won = _won_leads(conn, now, report)
    _details(conn, now, won)
    _summary(conn, now, won, report)
    _by_source(conn, won, spend, ltv, report)
    _by_campaign(conn, now, won, report)
    lead_velocity(conn, dialect, now, report)
    report.won_customers = [
        WonCustomer(
            lead_id=lead_id,
            source=w.source,
            basis=w.basis,
            deals=w.deals,
            amount=_money(w.cents),
            won_at=w.won_at,
            cycle_days=None
            if w.won_at is None or w.created_at is None
            else (w.won_at - w.created_at) / timedelta(days=1),
            touches_before_handoff=w.touches_before_handoff,
            campaigns=", ".join(sorted(w.campaigns)),
        )
        for lead_id, w in sorted(won.items())
    ]
