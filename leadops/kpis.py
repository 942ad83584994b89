"""Lead-management KPIs, each computed by set-based SQL over the database.

Every figure here is one or a few aggregate queries (no per-lead Python loops), so the
report costs the same on 200 leads as on 200,000. Figures that need tables this database
does not have yet (engagement events, rep touches) are listed in `KpiReport.missing`
instead of being estimated; engagement rates plug in as one counting query each through
`ENGAGEMENT_METRICS`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection, Engine

from leadops.configfile import ConfigError
from leadops.models import (
    FUNNEL_ORDER,
    LEADS,
    SENT_TOUCH_STATUSES,
    TOUCHES,
    LifecycleStage,
    TouchStatus,
)

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
SENT = [str(status) for status in SENT_TOUCH_STATUSES]
ATTEMPTED = [*SENT, TouchStatus.FAILED, TouchStatus.AMBIGUOUS]

StepKey = tuple[str, str, str]  # campaign, step, channel
# Counts one engagement kind per campaign step and channel (e.g. opens per step).
EngagementCounter = Callable[[Connection], dict[StepKey, int]]

# The engagement rates per campaign step. A rate whose counter is None needs event tables
# this database does not have yet; it is reported as missing, never estimated.
ENGAGEMENT_METRICS: dict[str, EngagementCounter | None] = {
    "delivered": None,
    "opened": None,
    "clicked": None,
    "replied": None,
    "unsubscribed": None,
    "bounced": None,
}
ENGAGEMENT_MISSING_REASON = "needs the engagement event tables (provider webhooks)"


@dataclass
class FunnelStage:
    stage: str
    current: int  # leads at this stage now
    reached: int  # leads at this stage or beyond
    conversion: float | None  # reached(next) / reached(this)


@dataclass
class SourceCost:
    source: str
    leads: int
    spend: float | None
    cost_per_lead: float | None


@dataclass
class StepRates:
    campaign: str
    step: str
    step_day: int
    channel: str
    attempted: int
    sent: int
    failed: int
    ambiguous: int
    engagement: dict[str, int | None] = field(default_factory=dict)

    def rate(self, count: int | None) -> float | None:
        if count is None or not self.sent:
            return None
        return count / self.sent


@dataclass
class KpiReport:
    now: datetime
    leads_total: int = 0
    response_leads: int = 0
    response_avg_hours: float | None = None
    response_within_day: float | None = None
    funnel: list[FunnelStage] = field(default_factory=list)
    unsubscribed: int = 0
    nurtured: int = 0
    nurture_converted: int = 0
    score_avg: float | None = None
    score_histogram: list[tuple[str, int]] = field(default_factory=list)
    currency: str = "USD"
    costs: list[SourceCost] = field(default_factory=list)
    never_followed_up: int = 0
    never_followed_up_by_stage: dict[str, int] = field(default_factory=dict)
    steps: list[StepRates] = field(default_factory=list)
    sends_per_day: list[tuple[date, int]] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)

    @property
    def nurture_conversion(self) -> float | None:
        return self.nurture_converted / self.nurtured if self.nurtured else None


# -- helpers -------------------------------------------------------------------------------


def _seconds(expr: Any, dialect: str) -> Any:
    """Seconds since the epoch of a timestamp column, in the database's own SQL."""
    if dialect == "postgresql":
        return sa.func.extract("epoch", expr)
    return sa.func.julianday(expr) * 86400.0


def _utc_day(expr: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.date(sa.func.timezone("UTC", expr))
    return sa.func.date(expr)


def _stage_rank() -> Any:
    return sa.case(
        {str(stage): rank for stage, rank in FUNNEL_ORDER.items()},
        value=LEADS.c.lifecycle_stage,
        else_=-1,
    )


def _first_sent() -> Any:
    t = TOUCHES.c
    return (
        sa.select(t.lead_id, sa.func.min(t.sent_at).label("first_at"))
        .where(t.status.in_(SENT))
        .group_by(t.lead_id)
        .subquery("first_sent")
    )


# -- one function per KPI ------------------------------------------------------------------


def _response_time(conn: Connection, dialect: str, report: KpiReport) -> None:
    first = _first_sent()
    delta = _seconds(first.c.first_at, dialect) - _seconds(LEADS.c.created_at, dialect)
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


def _funnel(conn: Connection, report: KpiReport) -> None:
    rows = conn.execute(
        sa.select(LEADS.c.lifecycle_stage, sa.func.count()).group_by(LEADS.c.lifecycle_stage)
    ).all()
    counts = {stage: int(n) for stage, n in rows}
    report.leads_total = sum(counts.values())
    report.unsubscribed = counts.get(LifecycleStage.UNSUBSCRIBED, 0)
    by_rank: dict[int, int] = {}
    for stage, n in counts.items():
        rank = FUNNEL_ORDER.get(stage)
        if rank is not None:
            by_rank[rank] = by_rank.get(rank, 0) + n
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


def _nurture_conversion(conn: Connection, report: KpiReport) -> None:
    first = _first_sent()
    nurtured, converted = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.sum(sa.case((_stage_rank() >= CONVERTED_RANK, 1), else_=0)),
        ).select_from(LEADS.join(first, first.c.lead_id == LEADS.c.id))
    ).one()
    report.nurtured = int(nurtured or 0)
    report.nurture_converted = int(converted or 0)


def _scores(conn: Connection, report: KpiReport) -> None:
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


def load_spend(config_dir: Path) -> tuple[str, dict[str, float]]:
    """Marketing spend per lead source from config/spend.yaml (absent file: no spend)."""
    path = config_dir / "spend.yaml"
    if not path.exists():
        return "USD", {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(path, None, f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(path, None, "expected a mapping with `currency` and `sources`")
    currency = str(data.get("currency", "USD"))
    sources = data.get("sources") or {}
    if not isinstance(sources, dict):
        raise ConfigError(path, None, "`sources` must map a lead source to its spend")
    spend: dict[str, float] = {}
    for source, amount in sources.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise ConfigError(
                path, None, f"sources.{source}: spend must be a number >= 0, got {amount!r}"
            )
        spend[str(source)] = float(amount)
    return currency, spend


def _costs(conn: Connection, spend: dict[str, float], report: KpiReport) -> None:
    rows = conn.execute(sa.select(LEADS.c.source, sa.func.count()).group_by(LEADS.c.source)).all()
    leads = {source or "(none)": int(n) for source, n in rows}
    for source in sorted(set(leads) | set(spend)):
        n = leads.get(source, 0)
        amount = spend.get(source)
        cpl = amount / n if amount is not None and n else None
        report.costs.append(SourceCost(source, n, amount, cpl))


def _never_followed_up(conn: Connection, now: datetime, report: KpiReport) -> None:
    t = TOUCHES.c
    sent = sa.select(t.id).where(t.lead_id == LEADS.c.id, t.status.in_(SENT)).exists()
    rows = conn.execute(
        sa.select(LEADS.c.lifecycle_stage, sa.func.count())
        .where(
            LEADS.c.created_at < now - timedelta(days=1),
            LEADS.c.lifecycle_stage.not_in([str(s) for s in NOT_NURTURED]),
            LEADS.c.unsubscribed_at.is_(None),
            ~sent,
        )
        .group_by(LEADS.c.lifecycle_stage)
    ).all()
    report.never_followed_up_by_stage = {stage: int(n) for stage, n in rows}
    report.never_followed_up = sum(report.never_followed_up_by_stage.values())


def _step_rates(conn: Connection, report: KpiReport) -> None:
    t = TOUCHES.c

    def count_if(statuses: list[str]) -> Any:
        return sa.func.sum(sa.case((t.status.in_(statuses), 1), else_=0))

    rows = conn.execute(
        sa.select(
            t.campaign,
            t.step,
            t.step_day,
            t.channel,
            count_if(ATTEMPTED),
            count_if(SENT),
            count_if([TouchStatus.FAILED]),
            count_if([TouchStatus.AMBIGUOUS]),
        )
        .group_by(t.campaign, t.step, t.step_day, t.channel)
        .order_by(t.campaign, t.step_day, t.channel)
    ).all()
    counted = {name: fn(conn) for name, fn in ENGAGEMENT_METRICS.items() if fn is not None}
    for campaign, step, day, channel, attempted, sent, failed, ambiguous in rows:
        key = (campaign, step, channel)
        engagement: dict[str, int | None] = {
            name: (counted[name].get(key, 0) if name in counted else None)
            for name in ENGAGEMENT_METRICS
        }
        report.steps.append(
            StepRates(
                campaign,
                step,
                int(day),
                channel,
                int(attempted or 0),
                int(sent or 0),
                int(failed or 0),
                int(ambiguous or 0),
                engagement,
            )
        )
    for name, fn in ENGAGEMENT_METRICS.items():
        if fn is None:
            report.missing.append((f"{name} rate per campaign step", ENGAGEMENT_MISSING_REASON))


def _sends_per_day(conn: Connection, dialect: str, now: datetime, report: KpiReport) -> None:
    t = TOUCHES.c
    day = _utc_day(t.sent_at, dialect).label("day")
    rows = conn.execute(
        sa.select(day, sa.func.count())
        .where(t.status.in_(SENT), t.sent_at >= now - timedelta(days=60), t.sent_at <= now)
        .group_by(day)
        .order_by(day)
    ).all()
    report.sends_per_day = [
        (value if isinstance(value, date) else date.fromisoformat(str(value)), int(n))
        for value, n in rows
    ]


def compute(engine: Engine, now: datetime, *, config_dir: Path) -> KpiReport:
    """Every KPI today's schema supports, as of `now`."""
    currency, spend = load_spend(config_dir)
    report = KpiReport(now=now, currency=currency)
    dialect = engine.dialect.name
    with engine.connect() as conn:
        _funnel(conn, report)
        _response_time(conn, dialect, report)
        _nurture_conversion(conn, report)
        _scores(conn, report)
        _costs(conn, spend, report)
        _never_followed_up(conn, now, report)
        _step_rates(conn, report)
        _sends_per_day(conn, dialect, now, report)
        report.missing.insert(
            0,
            (
                "lead response time to first rep touch",
                "needs the escalation records (rep acknowledgements); shown here: time to "
                "the first nurture message",
            ),
        )
    return report


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def headline_rows(report: KpiReport) -> list[dict[str, str]]:
    """The headline KPIs as (kpi, value, note) rows for a table."""
    return [
        {"kpi": "leads", "value": str(report.leads_total), "note": ""},
        {
            "kpi": "lead response time (created to first message)",
            "value": f"{_num(report.response_avg_hours)} h avg",
            "note": f"{_pct(report.response_within_day)} within 24 h, "
            f"{report.response_leads} leads reached",
        },
        {
            "kpi": "nurture conversion rate",
            "value": _pct(report.nurture_conversion),
            "note": f"{report.nurture_converted} of {report.nurtured} nurtured leads "
            "now SQL or beyond",
        },
        {"kpi": "average lead score", "value": _num(report.score_avg), "note": ""},
        {
            "kpi": "leads never followed up",
            "value": str(report.never_followed_up),
            "note": "target 0; created over a day ago, no message sent"
            + (
                ": "
                + ", ".join(
                    f"{s} {n}" for s, n in sorted(report.never_followed_up_by_stage.items())
                )
                if report.never_followed_up
                else ""
            ),
        },
        {"kpi": "unsubscribed leads", "value": str(report.unsubscribed), "note": ""},
    ]


def funnel_rows(report: KpiReport) -> list[dict[str, Any]]:
    return [
        {
            "stage": f.stage,
            "leads now": f.current,
            "reached": f.reached,
            "to next stage": _pct(f.conversion),
        }
        for f in report.funnel
    ]


def cost_rows(report: KpiReport) -> list[dict[str, Any]]:
    return [
        {
            "source": c.source,
            "leads": c.leads,
            f"spend ({report.currency})": _num(c.spend, 2),
            "cost per lead": _num(c.cost_per_lead, 2),
        }
        for c in report.costs
    ]


def step_rows(report: KpiReport) -> list[dict[str, Any]]:
    rows = []
    for s in report.steps:
        row: dict[str, Any] = {
            "campaign": s.campaign,
            "step": s.step,
            "channel": s.channel,
            "attempted": s.attempted,
            "sent": s.sent,
            "failed": _pct(s.failed / s.attempted if s.attempted else None),
            "ambiguous": _pct(s.ambiguous / s.attempted if s.attempted else None),
        }
        for name, count in s.engagement.items():
            if count is not None:  # metrics without their event tables are listed as missing
                row[name] = _pct(s.rate(count))
        rows.append(row)
    return rows
