"""Lead-management KPIs, each computed by set-based SQL over the database.

Every figure here is one or a few aggregate queries (no per-lead Python loops), so the
report costs the same on 200 leads as on 200,000. Engagement rates per campaign step
(`ENGAGEMENT_METRICS`) count unique touches from the processed webhook inbox (see
leadops.reporting.attribution); sales response times come from the escalation records. A figure
the database cannot support is listed in `KpiReport.missing`, never estimated.
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

from leadops.core.configfile import ConfigError
from leadops.models import (
    AWAITING_ACK_STATUSES,
    ESCALATION_ASSIGNMENTS,
    ESCALATIONS,
    FUNNEL_ORDER,
    INBOX,
    LEAD_FIELD_ISSUES,
    LEADS,
    QUARANTINE,
    QUARANTINED_FILES,
    SENT_TOUCH_STATUSES,
    STAGE_CHANGES,
    TOUCHES,
    LifecycleStage,
    TouchStatus,
)
from leadops.providers import inbound
from leadops.reporting.attribution import EventRule, StepKey, count_unique_touches, payload_is_true

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

# Counts one engagement kind per campaign step and channel (e.g. opens per step).
EngagementCounter = Callable[[Connection], dict[StepKey, int]]

_I = INBOX.c


def _events(source: str, *kinds: str) -> Callable[[str], Any]:
    return lambda dialect: sa.and_(_I.source == source, _I.kind.in_(kinds))


def _human_open(dialect: str) -> Any:
    # Opens by mail privacy proxies (sg_machine_open) are not the person opening the mail;
    # the rescore run scores them 0 and they are not opens here either.
    return sa.and_(
        _I.source == inbound.SENDGRID,
        _I.kind == "open",
        sa.not_(payload_is_true("sg_machine_open", dialect)),
    )


def _inbound(result_pattern: str) -> Callable[[str], Any]:
    # The rescore run classifies an inbound WhatsApp message (reply, opt-out keyword, opt-in)
    # and records what it applied in `inbox.result`: "reply +15, sequence stopped",
    # "unsubscribe -25, suppressed all (whatsapp_opt_out)", "whatsapp opt-in, ...".
    return lambda dialect: sa.and_(
        _I.source == inbound.TWILIO_INBOUND, _I.result.like(result_pattern)
    )


def _counter(*rules: EventRule) -> EngagementCounter:
    return lambda conn: count_unique_touches(conn, rules)


@dataclass(frozen=True)
class EngagementMetric:
    """Unique touches per step with at least one such event, and the channels where the
    providers report it (elsewhere the rate is shown as "-", not as 0%)."""

    count: EngagementCounter
    channels: frozenset[str]
    meaning: str


EMAIL_AND_WHATSAPP = frozenset({"email", "whatsapp"})
# The inbox sources that report engagement for each channel. A channel none of whose
# sources has sent an event yet (the file outbox, or a webhook not set up) has its rates
# shown as "-" and listed as missing: no events is not 0% delivered.
CHANNEL_SOURCES = {
    "email": (inbound.SENDGRID,),
    "whatsapp": (inbound.TWILIO_STATUS, inbound.TWILIO_INBOUND),
}

# The engagement rates per campaign step, each of the messages sent at that step.
ENGAGEMENT_METRICS: dict[str, EngagementMetric] = {
    "delivered": EngagementMetric(
        _counter(
            EventRule(_events(inbound.SENDGRID, "delivered")),
            EventRule(_events(inbound.TWILIO_STATUS, "delivered", "read")),
        ),
        EMAIL_AND_WHATSAPP,
        "SendGrid delivered; Twilio delivered or read",
    ),
    "opened": EngagementMetric(
        _counter(EventRule(_human_open), EventRule(_events(inbound.TWILIO_STATUS, "read"))),
        EMAIL_AND_WHATSAPP,
        "SendGrid open (privacy-proxy opens excluded); WhatsApp read",
    ),
    "clicked": EngagementMetric(
        _counter(EventRule(_events(inbound.SENDGRID, "click"))),
        frozenset({"email"}),
        "SendGrid click",
    ),
    "replied": EngagementMetric(
        _counter(EventRule(_inbound("reply%"), via="last_sent", channel="whatsapp")),
        frozenset({"whatsapp"}),
        "an inbound WhatsApp reply, counted for the last WhatsApp message before it",
    ),
    "unsubscribed": EngagementMetric(
        _counter(
            EventRule(_events(inbound.SENDGRID, "unsubscribe", "group_unsubscribe", "spamreport")),
            EventRule(_events(inbound.UNSUBSCRIBE, "unsubscribe"), via="last_sent"),
            EventRule(_inbound("%whatsapp_opt_out%"), via="last_sent", channel="whatsapp"),
        ),
        EMAIL_AND_WHATSAPP,
        "SendGrid unsubscribe, group unsubscribe or spam report; the unsubscribe link "
        "(for the last message before it); a WhatsApp opt-out keyword",
    ),
    "bounced": EngagementMetric(
        _counter(
            EventRule(_events(inbound.SENDGRID, "bounce", "dropped")),
            EventRule(_events(inbound.TWILIO_STATUS, "failed", "undelivered")),
        ),
        EMAIL_AND_WHATSAPP,
        "SendGrid bounce (hard or blocked) or dropped; Twilio failed or undelivered",
    ),
}


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
    # Accepted by the channel (sent_at recorded), later bounces included: the base of the
    # engagement rates.
    accepted: int = 0
    engagement: dict[str, int | None] = field(default_factory=dict)

    def rate(self, count: int | None) -> float | None:
        if count is None or not self.accepted:
            return None
        return count / self.accepted


@dataclass
class EscalationStats:
    """Hand-offs to sales: where they stand now and how fast reps picked them up."""

    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    awaiting: int = 0  # open or re-routed: no rep has acknowledged yet
    in_queue: int = 0  # awaiting, in the fallback queue (no rep)
    past_sla: int = 0  # awaiting, SLA due time passed
    acknowledged: int = 0  # ever acknowledged
    ack_median_minutes: float | None = None  # escalation created to acknowledgement
    ack_avg_minutes: float | None = None
    within_sla: float | None = None  # share acknowledged by the first rep's SLA due time
    # Sales response: lead became SQL (its stage change; else the escalation) to the
    # first rep acknowledgement.
    response_count: int = 0
    response_avg_hours: float | None = None
    response_median_hours: float | None = None


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
    escalations: EscalationStats = field(default_factory=EscalationStats)
    sends_per_day: list[tuple[date, int]] = field(default_factory=list)
    # Data quality: leads imported with a bad field kept and flagged (open issues)
    flagged_leads: int = 0
    flagged_by_reason: dict[str, int] = field(default_factory=dict)
    quarantined_open: int = 0  # records refused whole, waiting for a decision
    quarantined_files_open: int = 0
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


def _funnel(conn: Connection, report: KpiReport) -> None:
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


def _nurture_conversion(conn: Connection, report: KpiReport) -> None:
    first = _first_sent()
    peaks = _peak_rank()
    nurtured, converted = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.sum(sa.case((peaks.c.peak >= CONVERTED_RANK, 1), else_=0)),
        ).select_from(peaks.join(first, first.c.lead_id == peaks.c.lead_id))
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


def _data_quality(conn: Connection, report: KpiReport) -> None:
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


def _step_rates(conn: Connection, report: KpiReport) -> None:
    t = TOUCHES.c

    def count_if(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    rows = conn.execute(
        sa.select(
            t.campaign,
            t.step,
            t.step_day,
            t.channel,
            count_if(t.status.in_(ATTEMPTED)),
            count_if(t.status.in_(SENT)),
            count_if(t.status == TouchStatus.FAILED),
            count_if(t.status == TouchStatus.AMBIGUOUS),
            count_if(sa.and_(t.sent_at.is_not(None), t.status != TouchStatus.SKIPPED)),
        )
        .group_by(t.campaign, t.step, t.step_day, t.channel)
        .order_by(t.campaign, t.step_day, t.channel)
    ).all()
    reporting = set(
        conn.execute(
            sa.select(INBOX.c.source).where(INBOX.c.status == "processed").distinct()
        ).scalars()
    )
    silent = {
        channel
        for channel in {row.channel for row in rows}
        if not reporting & set(CHANNEL_SOURCES.get(channel, ()))
    }
    for channel in sorted(silent):
        sources = " or ".join(CHANNEL_SOURCES.get(channel, ())) or "provider"
        report.missing.append(
            (
                f"{channel} engagement rates",
                f"no {sources} events received yet: the file outbox reports none; set up "
                "the provider's webhook (`leadops webhooks stats` shows what arrives)",
            )
        )
    counted = {name: metric.count(conn) for name, metric in ENGAGEMENT_METRICS.items()}
    for campaign, step, day, channel, attempted, sent, failed, ambiguous, accepted in rows:
        key = (campaign, step, channel)
        engagement: dict[str, int | None] = {
            name: (
                counted[name].get(key, 0)
                if channel in metric.channels and channel not in silent
                else None
            )
            for name, metric in ENGAGEMENT_METRICS.items()
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
                int(accepted or 0),
                engagement,
            )
        )


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


def _escalations(conn: Connection, dialect: str, now: datetime, report: KpiReport) -> None:
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
    ack_delta = _seconds(e.acknowledged_at, dialect) - _seconds(e.created_at, dialect)
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
    response = _seconds(e.acknowledged_at, dialect) - _seconds(start, dialect)
    count, avg = conn.execute(sa.select(sa.func.count(), sa.func.avg(response)).where(acked)).one()
    stats.response_count = int(count or 0)
    if stats.response_count:
        stats.response_avg_hours = float(avg) / 3600.0
        stats.response_median_hours = (
            float(conn.execute(_median(response, acked)).scalar_one()) / 3600.0
        )


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
    """Every KPI as of `now`."""
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
        _data_quality(conn, report)
        _step_rates(conn, report)
        _escalations(conn, dialect, now, report)
        _sends_per_day(conn, dialect, now, report)
    return report


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def headline_rows(report: KpiReport) -> list[dict[str, str]]:
    """The headline KPIs as (kpi, value, note) rows for a table."""
    esc = report.escalations
    return [
        {"kpi": "leads", "value": str(report.leads_total), "note": ""},
        {
            "kpi": "lead response time (created to first message)",
            "value": f"{_num(report.response_avg_hours)} h avg",
            "note": f"{_pct(report.response_within_day)} within 24 h, "
            f"{report.response_leads} leads reached",
        },
        {
            "kpi": "sales response time (SQL to rep acknowledgement)",
            "value": f"{_num(esc.response_median_hours)} h median",
            "note": f"{_num(esc.response_avg_hours)} h avg over {esc.response_count} "
            f"acknowledged escalation(s); {esc.awaiting} waiting for a rep",
        },
        {
            "kpi": "nurture conversion rate",
            "value": _pct(report.nurture_conversion),
            "note": f"{report.nurture_converted} of {report.nurtured} nurtured leads "
            "reached SQL or beyond",
        },
        {
            "kpi": "average lead score",
            "value": _num(report.score_avg),
            "note": "fit + engagement points (the score ledger), over all leads",
        },
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
        {
            "kpi": "data quality: leads with flagged fields",
            "value": str(report.flagged_leads),
            "note": "imported for the channels they can be reached on, bad value kept "
            "(`leadops leads show ID`)"
            + "".join(f"; {r} {n}" for r, n in sorted(report.flagged_by_reason.items()))
            + f"; quarantine open: {report.quarantined_open} record(s), "
            f"{report.quarantined_files_open} file(s)",
        },
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
    """Per campaign step and channel: what was attempted and how it ended."""
    return [
        {
            "campaign": s.campaign,
            "step": s.step,
            "channel": s.channel,
            "attempted": s.attempted,
            "sent": s.sent,
            "failed": _pct(s.failed / s.attempted if s.attempted else None),
            "ambiguous": _pct(s.ambiguous / s.attempted if s.attempted else None),
        }
        for s in report.steps
    ]


def engagement_rows(report: KpiReport) -> list[dict[str, Any]]:
    """Per campaign step and channel: engagement rates of the messages sent (accepted by
    the channel), as "rate (unique touches)"; "-" where the channel does not report it."""
    rows = []
    for s in report.steps:
        if not s.accepted:
            continue
        row: dict[str, Any] = {
            "campaign": s.campaign,
            "step": s.step,
            "channel": s.channel,
            "sent": s.accepted,
        }
        for name, count in s.engagement.items():
            row[name] = "-" if count is None else f"{_pct(s.rate(count))} ({count})"
        rows.append(row)
    return rows


def escalation_rows(report: KpiReport) -> list[dict[str, str]]:
    """The escalations section as (figure, value) rows."""
    esc = report.escalations
    statuses = ", ".join(f"{status} {n}" for status, n in esc.by_status.items()) or "none"
    minutes = f"{_num(esc.ack_median_minutes)} min median, {_num(esc.ack_avg_minutes)} min avg"
    return [
        {"figure": "escalations", "value": f"{esc.total} ({statuses})"},
        {"figure": "waiting for a rep (open or re-routed)", "value": str(esc.awaiting)},
        {"figure": "of which in the fallback queue", "value": str(esc.in_queue)},
        {"figure": "of which past their SLA", "value": str(esc.past_sla)},
        {"figure": "acknowledged", "value": str(esc.acknowledged)},
        {"figure": "time to acknowledge", "value": minutes},
        {"figure": "acknowledged within the first rep's SLA", "value": _pct(esc.within_sla)},
    ]
