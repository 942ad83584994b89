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
