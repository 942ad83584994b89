"""What a rescore run did, in counts, and the sales-ready leads it found."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from leadops.engagement.scoring import Reason
from leadops.nurture.plan import PlanReport

SQL_TRIGGER = "sql"  # the trigger of a lead the rescore run moved to SQL by its score


@dataclass(frozen=True)
class SalesReady:
    """A lead the rescore run found sales-ready: escalation takes it from here."""

    lead_id: int
    trigger: str  # SQL_TRIGGER (reached the SQL threshold) or a hand-raise rule ("reply"...)
    score: int
    reasons: tuple[Reason, ...]  # the rules contributing most points, strongest first
    at: datetime

    def row(self) -> dict[str, object]:
        """The lead as a row of the sales-ready table (CLI and the rescore flow's artifact)."""
        return {
            "lead_id": self.lead_id,
            "trigger": self.trigger,
            "score": self.score,
            "reasons": ", ".join(str(reason) for reason in self.reasons),
        }


@dataclass
class RescoreReport:
    now: datetime
    events: Counter[str] = field(default_factory=Counter)  # processed, by source/kind
    ignored: Counter[str] = field(default_factory=Counter)  # not applied, by reason
    unknown_site_types: Counter[str] = field(default_factory=Counter)
    ledger_rows: int = 0
    fit_rows: int = 0
    decay_rows: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)  # by reason
    sequences_stopped: Counter[str] = field(default_factory=Counter)  # by reason
    stage_changes: Counter[str] = field(default_factory=Counter)  # "lead->mql"
    rescored_leads: int = 0
    dead_letters: int = 0  # inbox events set aside (they failed to apply)
    sales_ready: list[SalesReady] = field(default_factory=list)
    plan: PlanReport = field(default_factory=PlanReport)

    @property
    def events_total(self) -> int:
        return sum(self.events.values())

    def counts(self) -> dict[str, int]:
        """The run in numbers (what the flow returns and the CLI prints)."""
        return {
            "events": self.events_total,
            "ignored": sum(self.ignored.values()),
            "ledger_rows": self.ledger_rows + self.fit_rows + self.decay_rows,
            "stage_changes": sum(self.stage_changes.values()),
            "suppressed": sum(self.suppressed.values()),
            "sequences_stopped": sum(self.sequences_stopped.values()),
            "enrolled": sum(self.plan.enrolled.values()),
            "sales_ready": len(self.sales_ready),
            "dead_letters": self.dead_letters,
        }
