"""What the KPI report holds: the figures `leadops.reporting.kpis.compute` fills in, per
lead funnel stage, lead source, campaign step and for the hand-offs to sales."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


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
class GoalRates:
    """Goal conversion of a campaign (`step` None) or of one of its steps: of the
    enrollments (for a step: those it was sent to), how many reached the goal (for a
    step: after the step went out). Defined in leadops.reporting.goal_kpis."""

    campaign: str
    goal: str
    step: str | None
    step_day: int | None
    enrollments: int
    goal_reached: int
    conversion: float | None = None  # goal_reached / enrollments

    def __post_init__(self) -> None:
        self.conversion = self.goal_reached / self.enrollments if self.enrollments else None


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
    # SQL to acknowledgement: lead became SQL (its stage change; else the escalation) to
    # the first rep acknowledgement (speed to lead, to the first contact, is SpeedToLead).
    response_count: int = 0
    response_avg_hours: float | None = None
    response_median_hours: float | None = None


@dataclass
class SpeedToLead:
    """Speed to lead of a group of escalations (`by` all, rep or source; `key` names the
    rep or source): minutes from the start of the clock to the rep's first logged contact,
    and the escalations still without one. Defined in leadops.reporting.sales_kpis."""

    by: str
    key: str
    contacted: int = 0  # escalations with a first contact
    median_minutes: float | None = None
    p90_minutes: float | None = None
    waiting: int = 0  # active (open, acknowledged, re-routed), no first contact yet
    oldest_waiting_hours: float | None = None  # since the start of the oldest one waiting
    closed_uncontacted: int = 0  # closed without a first contact ever logged


@dataclass
class SalesOutcomes:
    """How the escalations ended. Amounts are in the report's currency (major unit)."""

    won: int = 0
    won_amount_total: float | None = None  # None: no amount recorded
    won_amount_average: float | None = None  # over the escalations won with an amount
    won_without_amount: int = 0
    lost: int = 0
    not_ready: int = 0  # back in nurture (status recycled)
    not_ready_retry_scheduled: int = 0  # its retry date still ahead
    # its retry date passed and the lead was not escalated again since
    not_ready_retry_due: int = 0
    disqualified: int = 0


@dataclass
class OutcomeReason:
    outcome: str  # lost, not_ready or disqualified
    reason: str  # a LostReason, NotReadyReason or DisqualifyReason code; (none): not given
    escalations: int


@dataclass
class CalibrationGroup:
    """Leads of one score decile, band or grade (`by`), and how many of them reached SQL,
    were accepted by sales (SAL) and became customers. Defined in
    leadops.reporting.calibration."""

    by: str  # decile, band or grade
    group: str  # the decile 1 (lowest scores) to 10, the band, the grade; (not graded)
    leads: int = 0
    score_min: int | None = None  # the scores of its leads before the hand-off to sales
    score_max: int | None = None
    sql: int = 0
    sal: int = 0
    customer: int = 0
    sql_conversion: float | None = None  # of its leads
    sal_conversion: float | None = None
    customer_conversion: float | None = None
    few: bool = False  # fewer leads than the minimum: read its rates with care

    def rate(self, outcome: str) -> float | None:
        return getattr(self, f"{outcome}_conversion")


@dataclass
class RuleLift:
    """How the leads that fired a scoring rule before the hand-off converted to one
    outcome, against the leads that did not (leadops.reporting.lift)."""

    rule: str
    kind: str  # fit or engagement
    outcome: str  # sql, sal or customer
    fired: int
    fired_converted: int
    not_fired: int
    not_fired_converted: int
    fired_conversion: float | None
    not_fired_conversion: float | None
    lift: float | None  # fired_conversion / not_fired_conversion
    lift_low: float | None  # the interval (simultaneous over the report's rules)
    lift_high: float | None
    verdict: str  # lift, negative, none or too_few


@dataclass
class RevenueSummary:
    """Revenue of the leads (leadops.reporting.revenue). A customer is a lead with a won
    CRM deal or, with no CRM deal at all, an escalation the rep closed won; amounts are
    in the report's currency (major unit), deals in other currencies counted, not summed."""

    won_customers: int = 0
    won_deals: int = 0
    won_basis_crm: int = 0  # customers counted from crm_deals (the CRM's truth)
    won_basis_escalation: int = 0  # customers counted from the rep's closed-won escalation
    won_amount_total: float | None = None
    won_amount_average: float | None = None  # the average deal size
    won_without_amount: int = 0  # won deals without an amount
    won_other_currency: int = 0  # won deals in another currency: left out of the amounts
    cycle_median_days: float | None = None  # lead created to won
    cycle_p90_days: float | None = None
    touches_before_handoff_avg: float | None = None  # messages sent before the hand-off
    touches_before_handoff_median: float | None = None
    touches_before_win_avg: float | None = None  # messages sent before the win
    nurture_enrolled: int = 0  # leads ever enrolled in a campaign
    nurture_customers: int = 0  # of them, customers
    nurture_customer_conversion: float | None = None


@dataclass
class SourceRevenue:
    """Cost and revenue of one lead source: cost per lead against cost per sale against
    the average deal size, and the return on the source's spend."""

    source: str
    leads: int
    customers: int
    won_amount: float | None
    average_deal: float | None
    spend: float | None
    cost_per_lead: float | None
    cost_per_sale: float | None
    lifetime_value: float | None  # per customer: per-source value, else deal x multiplier
    roi: float | None  # (customers x lifetime value - spend) / spend
    basis_crm: int = 0
    basis_escalation: int = 0


@dataclass
class CampaignRevenue:
    """Customers attributed to a campaign: they were sent one of its messages before the
    hand-off (before the win when never handed off). `won_amount` counts each customer's
    amount in full for every such campaign (campaigns overlap, do not add them up);
    `won_amount_split` divides it equally among them (these add up to the attributed
    total)."""

    campaign: str
    enrolled: int
    customers: int
    customer_conversion: float | None
    won_amount: float | None
    won_amount_split: float | None


@dataclass
class MonthVelocity:
    """Lead velocity: leads that first became qualified (SQL or beyond, or escalated) in
    a month (UTC), and the growth over the month before."""

    month: str  # YYYY-MM
    qualified: int
    growth_rate: float | None  # (this - previous) / previous; None when previous is 0
    partial: bool  # the month of the report's `now`, not over yet


@dataclass
class WonCustomer:
    lead_id: int
    source: str
    basis: str  # crm or escalation
    deals: int
    amount: float | None
    won_at: datetime | None
    cycle_days: float | None
    touches_before_handoff: int
    campaigns: str  # the attributed campaigns, comma separated


@dataclass
class KpiReport:
    now: datetime
    leads_total: int = 0
    response_leads: int = 0
    response_avg_hours: float | None = None
    response_within_day: float | None = None
    funnel: list[FunnelStage] = field(default_factory=list)
    unsubscribed: int = 0
    nurtured: int = 0  # leads sent a message, below SQL when the first went out
    nurture_converted: int = 0  # of them, reached SQL or beyond
    score_avg: float | None = None
    score_histogram: list[tuple[str, int]] = field(default_factory=list)
    currency: str = "USD"
    costs: list[SourceCost] = field(default_factory=list)
    never_followed_up: int = 0
    never_followed_up_by_stage: dict[str, int] = field(default_factory=dict)
    # never sent a message because no channel can reach them (no address with consent,
    # or suppressed on every channel): not counted as never followed up
    uncontactable: int = 0
    steps: list[StepRates] = field(default_factory=list)
    goals: list[GoalRates] = field(default_factory=list)  # campaigns with a goal
    escalations: EscalationStats = field(default_factory=EscalationStats)
    # Overall first, then per rep, then per source
    speed_to_lead: list[SpeedToLead] = field(default_factory=list)
    outcomes: SalesOutcomes = field(default_factory=SalesOutcomes)
    outcome_reasons: list[OutcomeReason] = field(default_factory=list)
    sends_per_day: list[tuple[date, int]] = field(default_factory=list)
    # Data quality: leads imported with a bad field kept and flagged (open issues)
    flagged_leads: int = 0
    flagged_by_reason: dict[str, int] = field(default_factory=dict)
    quarantined_open: int = 0  # records refused whole, waiting for a decision
    quarantined_files_open: int = 0
    # Qualification beside the funnel: leads per lead status and per band, and sunset
    lead_status: dict[str, int] = field(default_factory=dict)
    bands: dict[str, int] = field(default_factory=dict)
    sunset: int = 0
    # Calibration: leads scored before their hand-off to sales (if any), those handed off
    # before any score (left out), conversion by group and the lift of each rule.
    calibration_leads: int = 0
    calibration_not_scored: int = 0
    calibration: list[CalibrationGroup] = field(default_factory=list)
    rule_lift: list[RuleLift] = field(default_factory=list)
    # Revenue (leadops.reporting.revenue): totals, per source and campaign, velocity
    revenue: RevenueSummary = field(default_factory=RevenueSummary)
    revenue_by_source: list[SourceRevenue] = field(default_factory=list)
    revenue_by_campaign: list[CampaignRevenue] = field(default_factory=list)
    lead_velocity: list[MonthVelocity] = field(default_factory=list)
    won_customers: list[WonCustomer] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)

    @property
    def nurture_conversion(self) -> float | None:
        return self.nurture_converted / self.nurtured if self.nurtured else None
