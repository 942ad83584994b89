"""Why a lead got what it got: each step of its campaigns explained in words.

`explain_lead` reads the lead, its enrollments and touches, the stored campaign version's
steps, the contact policy and the segment rules, and writes nothing. Each step on each
channel ends in one state: sent, held (until when, why), skipped (why), failed, in doubt,
set aside, due, not yet due, waiting for an event (a step's wait_for), waiting for consent
or not sent because the enrollment ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sqlalchemy import select
from sqlmodel import Session
from sqlmodel import select as sqlmodel_select

from leadops.delivery.campaigns import Campaign, StoredCampaigns, open_pauses
from leadops.delivery.conditions import WaitFor
from leadops.delivery.policy import (
    Action,
    Caps,
    SendWindow,
    contact_facts,
    decide,
    legend,
    reason_meaning,
)
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    ESCALATIONS,
    SENT_TOUCH_STATUSES,
    Enrollment,
    EnrollmentStatus,
    Lead,
    Touch,
    TouchStatus,
)
from leadops.models.vocab import Channel
from leadops.nurture.experiments import HOLDOUT, variant_for
from leadops.nurture.planner import step_due_at
from leadops.nurture.segments import LeadFacts, SegmentConfig, choose_rule, first_forms, mismatch

ALWAYS_OPEN = SendWindow(time(0), time.max, frozenset(range(7)))
NO_CAPS = Caps(per_day=1_000_000, per_week=1_000_000)


@dataclass
class StepWhy:
    campaign: str
    step: str
    day: int
    channel: str
    state: str  # sent, held, skipped, failed, ambiguous, dead_letter, sending, due,
    # not_yet_due, waiting_for_event, waiting_for_consent, not_sent
    at: datetime | None  # sent at, held until, due at
    reason: str | None  # a reason code (see the legend)
    explanation: str

    def row(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "step": self.step,
            "day": self.day,
            "channel": self.channel,
            "state": self.state,
            "at": self.at,
            "reason": self.reason,
            "explanation": self.explanation,
        }


@dataclass
class LeadWhy:
    lead_id: int
    email: str | None
    now: datetime
    segment: str  # what the segment rules say now, in words
    enrollments: list[dict[str, Any]] = field(default_factory=list)
    steps: list[StepWhy] = field(default_factory=list)

    @property
    def legend(self) -> list[dict[str, str]]:
        return legend(step.reason for step in self.steps if step.reason)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "email": self.email,
            "now": self.now,
            "segment": self.segment,
            "enrollments": self.enrollments,
            "steps": [step.row() for step in self.steps],
            "legend": self.legend,
        }


def _enrolling(
    session: Session, campaigns: dict[str, Campaign] | None, key: str, now: datetime
) -> str:
    """When the lead would enroll in campaign `key`: at the next tick, or not yet and why
    (the campaign is paused, has not started, or has ended)."""
    pause = open_pauses(session, now).get(key)
    if pause is not None:
        return (
            f"; waits: {key} is paused since {_at(pause.paused_at)} by {pause.paused_by},"
            " enrolled at the first tick after it resumes"
        )
    campaign = (campaigns or {}).get(key)
    if campaign is not None and not campaign.enrolls_at(now):
        if campaign.starts_at is not None and now < campaign.starts_at:
            return f"; waits: {key} starts at {_at(campaign.starts_at)}"
        assert campaign.ends_at is not None
        return f"; not enrolled: {key} ended at {_at(campaign.ends_at)} and takes no one"
    return "; enrolled at the next tick"


def _segment_text(
    session: Session,
    lead: Lead,
    segments: SegmentConfig,
    enrollments: list[Enrollment],
    now: datetime,
    campaigns: dict[str, Campaign] | None = None,
) -> str:
    """Which rule matches the lead now, or why none does (each rule's first failed condition)."""
    assert lead.id is not None
    facts = LeadFacts.of(lead, first_forms(session, [lead.id]).get(lead.id))
    escalated = session.execute(
        select(ESCALATIONS.c.id).where(
            ESCALATIONS.c.lead_id == lead.id,
            ESCALATIONS.c.status.in_(ACTIVE_ESCALATION_STATUSES),
        )
    ).first()
    note = "; in sales' hands (an open escalation): no nurture until it closes" if escalated else ""
    active = next((e for e in enrollments if e.status == EnrollmentStatus.ACTIVE), None)
    rule = choose_rule(segments, facts, now, active_campaign=active.campaign if active else None)
    if rule is not None:
        if active is None and not escalated:
            past = {e.campaign for e in enrollments}
            note = (
                f"; already had {rule.campaign} (a campaign is never repeated)"
                if rule.campaign in past
                else _enrolling(session, campaigns, rule.campaign, now)
            )
        elif active is not None and active.campaign != rule.campaign and not escalated:
            note = f"; moves from {active.campaign} at the next tick"
        return f"segment rule {rule.segment!r} matches: campaign {rule.campaign}{note}"
    if active is not None and not escalated:
        note = f"; leaves {active.campaign} at the next tick"
    reasons = "; ".join(
        f"{r.segment}: {mismatch(r.when, facts, now) or 'inactivity rules wait for the cycle'}"
        for r in segments.rules
    )
    return f"no segment rule matches ({reasons}){note}"


def _consent_block(lead: Lead, channel: str, now: datetime) -> str | None:
    """The reason the policy would skip this channel at any hour (or None): no consent,
    no address, suppressed, unsubscribed."""
    decision = decide(
        channel=channel,
        lead=contact_facts(lead),
        now=now,
        window=ALWAYS_OPEN,
        caps=NO_CAPS,
        recent_sends=[],
    )
    return None if decision.action == Action.SEND else decision.reason


def _at(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def _touch_state(touch: Touch, now: datetime) -> tuple[str, datetime | None, str | None, str]:
    """A step that has a touch row: its state, time, reason code and explanation."""
    status, reason, error = touch.status, touch.hold_reason, touch.error
    if status in SENT_TOUCH_STATUSES:
        shown = "" if status == TouchStatus.SENT else f" ({status})"
        return "sent", touch.sent_at, None, f"sent at {_at(touch.sent_at)}{shown}"
    if status == TouchStatus.SKIPPED:
        code = reason or "unknown"
        detail = f" ({error})" if error else ""
        return "skipped", touch.updated_at, code, f"skipped: {reason_meaning(code)}{detail}"
    if status == TouchStatus.FAILED:
        return "failed", touch.updated_at, None, f"failed: {error or 'no error recorded'}"
    if status == TouchStatus.AMBIGUOUS:
        return "ambiguous", touch.updated_at, None, f"in doubt, not re-sent: {error or '-'}"
    if status == TouchStatus.DEAD_LETTER:
        return "dead_letter", touch.updated_at, "dead_letter", f"set aside: {error or '-'}"
    if status in (TouchStatus.CLAIMED, TouchStatus.SENDING):
        return "sending", touch.updated_at, None, "being sent now"
    if reason and touch.not_before > now:
        detail = f" ({error})" if error else ""
        text = f"held until {_at(touch.not_before)}: {reason_meaning(reason)}{detail}"
        return "held", touch.not_before, reason, text
    if not reason and touch.due_at > now:  # a step that waited for an event: its time
        return "not_yet_due", touch.due_at, None, f"scheduled for {_at(touch.due_at)}"
    since = max(touch.not_before, touch.due_at)
    return "due", since, reason, f"due since {_at(since)}; goes out at the next tick"


def _untouched_state(
    lead: Lead, enrollment: Enrollment, day: int, channel: str, now: datetime
) -> tuple[str, datetime | None, str | None, str]:
    """A step with no touch row yet: not due, waiting for consent, or never to be sent."""
    due = step_due_at(enrollment.started_at, day)
    block = _consent_block(lead, channel, now)
    if enrollment.arm == HOLDOUT:
        return "not_sent", due, HOLDOUT, f"not sent: {reason_meaning(HOLDOUT)}"
    if enrollment.status != EnrollmentStatus.ACTIVE:
        ended = f"the enrollment ended at {_at(enrollment.ended_at)} ({enrollment.end_reason})"
        return "not_sent", due, "enrollment_ended", f"not sent: {ended}, due {_at(due)}"
    if channel in (Channel.WHATSAPP, Channel.SMS) and not lead.phone:
        return "not_sent", due, block, "not sent: the lead has no phone number"
    if channel == Channel.EMAIL and not lead.email:
        return "not_sent", due, block, "not sent: the lead has no email address"
    if channel == Channel.WHATSAPP and not lead.whatsapp_consent:
        text = "waiting for consent: no WhatsApp opt-in (planned once the lead opts in)"
        return "waiting_for_consent", due, block, text
    if channel == Channel.SMS and not lead.sms_consent:
        text = "waiting for consent: no SMS opt-in (planned once the lead opts in)"
        return "waiting_for_consent", due, block, text
    note = f"; would be skipped as things stand: {reason_meaning(block)}" if block else ""
    if due > now:
        return "not_yet_due", due, block, f"not yet due: due {_at(due)} (day {day}){note}"
    return "due", due, block, f"due since {_at(due)}; planned at the next tick{note}"


def _waiting(
    wait_for: WaitFor, day: int, state: str, due: datetime | None, reason: str | None, text: str
) -> tuple[str, datetime | None, str | None, str]:
    """A step waiting for an event (wait_for) that has not come yet."""
    then = "sent then" if wait_for.on_timeout == "send" else "skipped if it has not come"
    after = f", sent {wait_for.days_after} day(s) after it" if wait_for.days_after else ""
    note = text.partition(";")[2]
    text = f"waiting for {wait_for.describe()}{after}; until {_at(due)} (day {day}), {then}"
    return "waiting_for_event", due, reason, text + (f";{note}" if note else "")


def _enrollment_steps(
    lead: Lead, enrollment: Enrollment, campaign: Campaign, touches: dict[Any, Touch], now: datetime
) -> list[StepWhy]:
    steps = []
    for step in campaign.steps:
        day = step.day_of(variant_for(campaign.key, step, lead.id or 0))  # its A/B variant's
        for channel in step.channels:
            touch = touches.pop((enrollment.id, step.key, channel.value), None)
            if touch is not None:
                state = _touch_state(touch, now)
            else:
                state = _untouched_state(lead, enrollment, day, channel.value, now)
                if step.wait_for is not None and state[0] == "not_yet_due":
                    state = _waiting(step.wait_for, day, *state)
            steps.append(StepWhy(campaign.key, step.key, day, channel.value, *state))
    return steps


def explain_lead(
    session: Session,
    lead_id: int,
    *,
    segments: SegmentConfig,
    stored: StoredCampaigns,
    now: datetime,
    campaigns: dict[str, Campaign] | None = None,
) -> LeadWhy:
    """Explain each step of each of the lead's enrollments, and its segment now
    (`campaigns`, the loaded files, tell whether a matching campaign enrolls now)."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise LookupError(f"lead {lead_id} not found")
    enrollments = sorted(
        session.exec(sqlmodel_select(Enrollment).where(Enrollment.lead_id == lead_id)),
        key=lambda e: (e.started_at, e.id or 0),
    )
    why = LeadWhy(
        lead_id,
        lead.email,
        now,
        _segment_text(session, lead, segments, enrollments, now, campaigns),
    )
    touches = {
        (t.enrollment_id, t.step, t.channel): t
        for t in session.exec(sqlmodel_select(Touch).where(Touch.lead_id == lead_id))
    }
    for enrollment in enrollments:
        why.enrollments.append(
            {
                "campaign": enrollment.campaign,
                "segment": enrollment.segment,
                "status": enrollment.status,
                "started_at": enrollment.started_at,
                "ended_at": enrollment.ended_at,
                "end_reason": enrollment.end_reason,
                "arm": enrollment.arm,
            }
        )
        campaign = stored.get(session, enrollment.campaign_version_id)
        why.steps.extend(_enrollment_steps(lead, enrollment, campaign, touches, now))
    for touch in touches.values():  # a touch whose step is not in its version (none expected)
        why.steps.append(
            StepWhy(
                touch.campaign, touch.step, touch.step_day, touch.channel, *_touch_state(touch, now)
            )
        )
    return why
