"""Hand sales-ready leads from the rescore run to escalation, with the ledger's reasons.

The rescore run finds leads that reached SQL or raised a hand (a demo request, a reply);
`escalate_sales_ready` escalates each one once per trigger, in the same run, so the path
from a webhook to the rep's notification is one rescore tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from leadops.engagement.report import SQL_TRIGGER, SalesReady
from leadops.engagement.rescore import run_inbox
from leadops.nurture.runtime import Runtime
from leadops.sales.escalation import SQL_ESCALATION, escalate_or_set_aside
from leadops.sales.notify import NotifyReport, deliver_notifications
from leadops.sales.runtime import EscalationRuntime
from leadops.sales.scan import trigger_key

# A rescore trigger and the escalation trigger it becomes.
TRIGGERS = {SQL_TRIGGER: SQL_ESCALATION, "reply": "reply_intent"}


@dataclass
class HandoffReport:
    escalated: int = 0
    already: int = 0  # escalated before for the same trigger, or an escalation is active
    events: int = 0  # inbox events applied (by the every-minute fast path)
    # set aside (see leadops.deadletters): leads that could not be escalated, and on the
    # every-minute path also the inbox events that failed to apply
    dead_letters: int = 0
    notify: NotifyReport | None = None


def escalate_if_routed(
    escalation: EscalationRuntime | None, ready: Sequence[SalesReady], now: datetime
) -> HandoffReport | None:
    """What the rescore run does with its sales-ready leads (the flow's escalate step and
    `leadops rescore --no-prefect`): escalate them when escalation is configured (the
    runtime's `escalation`); None when there is no routing.yaml or no lead to escalate."""
    if escalation is None or not ready:
        return None
    return escalate_sales_ready(escalation, ready, now)


def escalate_sales_ready(
    runtime: EscalationRuntime, ready: Sequence[SalesReady], now: datetime
) -> HandoffReport:
    """Escalate every sales-ready lead of a rescore run, then send the rep notifications."""
    report = HandoffReport()
    for item in ready:
        trigger = TRIGGERS.get(item.trigger, item.trigger)
        with Session(runtime.engine) as session:
            key = trigger_key(session, item.lead_id, item.trigger, item.at)
        reasons = [reason.item() for reason in item.reasons]
        hand_raised = item.at if trigger != SQL_ESCALATION else None
        result = escalate_or_set_aside(
            runtime, item.lead_id, trigger, key, item.score, reasons, now, started_at=hand_raised
        )
        if result is None:
            report.dead_letters += 1
        elif result.created:
            report.escalated += 1
        else:
            report.already += 1
    if report.escalated:
        report.notify = deliver_notifications(runtime, now)
    return report


def apply_inbox_and_escalate(
    runtime: Runtime, escalation: EscalationRuntime, now: datetime
) -> HandoffReport:
    """The every-minute fast path: apply new webhook events (rescore.run_inbox) and escalate
    the leads they made sales-ready, notifying their reps."""
    report = run_inbox(runtime, now)
    handed = escalate_sales_ready(escalation, report.sales_ready, now)
    handed.events = report.events_total
    handed.dead_letters += report.dead_letters
    return handed
