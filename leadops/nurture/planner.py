"""The planner: given a lead's state, the campaigns and the time, what should happen now.

Pure functions only; `leadops.nurture.plan` loads state from the database and applies the plan.
A lead is enrolled in a campaign at most once, stays on the campaign version it enrolled
in, and gets each step on each channel at most once (the touches table enforces it too).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from leadops.delivery.campaigns import Campaign
from leadops.models.vocab import Channel
from leadops.nurture.segments import LeadFacts, SegmentConfig, choose_rule


@dataclass(frozen=True)
class ActiveEnrollment:
    id: int
    campaign: str
    campaign_version_id: int
    started_at: datetime
    planned: frozenset[tuple[str, str]]  # (step, channel) touches that already exist
    open_touches: int  # touches not yet final (pending, held, claimed, sending)


@dataclass(frozen=True)
class LeadState:
    lead_id: int
    facts: LeadFacts
    has_email: bool
    has_phone: bool
    whatsapp_consent: bool
    segment: str | None
    active: ActiveEnrollment | None
    past_campaigns: frozenset[str]  # campaigns the lead was ever enrolled in
    in_sales_hands: bool = False  # an active escalation: no nurture until it closes
    sms_consent: bool = False


@dataclass(frozen=True)
class DueTouch:
    step: str
    step_day: int
    channel: str
    due_at: datetime


@dataclass
class Plan:
    lead_id: int
    segment: str | None
    exit_reason: str | None = None  # end the active enrollment with this reason
    complete: bool = False  # the active enrollment has finished its cycle
    enroll_campaign: str | None = None  # start a new enrollment in this campaign now
    touches: list[DueTouch] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        return bool(self.exit_reason or self.complete or self.enroll_campaign or self.touches)


def step_due_at(started_at: datetime, day: int) -> datetime:
    """Day 1 is the day of enrollment; day N is N-1 days later."""
    return started_at + timedelta(days=day - 1)


def channels_for(state: LeadState, campaign_channels: tuple[Channel, ...]) -> list[str]:
    """The step's channels this lead can be reached on (WhatsApp and SMS only with opt-in)."""
    reachable = []
    for channel in campaign_channels:
        if (
            (channel == Channel.EMAIL and state.has_email)
            or (channel == Channel.WHATSAPP and state.has_phone and state.whatsapp_consent)
            or (channel == Channel.SMS and state.has_phone and state.sms_consent)
        ):
            reachable.append(channel.value)
    return reachable


def due_touches(
    state: LeadState,
    campaign: Campaign,
    started_at: datetime,
    planned: frozenset[tuple[str, str]],
    now: datetime,
) -> list[DueTouch]:
    touches = []
    for step in campaign.steps:
        due_at = step_due_at(started_at, step.day)
        if due_at > now:
            break
        for channel in channels_for(state, step.channels):
            if (step.key, channel) not in planned:
                touches.append(DueTouch(step.key, step.day, channel, due_at))
    return touches


def plan_lead(
    state: LeadState,
    *,
    segments: SegmentConfig,
    campaigns: Mapping[str, Campaign],
    enrolled_campaigns: Mapping[int, Campaign],
    now: datetime,
    paused: Collection[str] = (),
) -> Plan:
    """Plan one lead: segment it, switch or finish its enrollment, and list due touches.

    `campaigns` are the current campaign files by key; `enrolled_campaigns` the stored
    campaign versions by version id (what an active enrollment follows). A campaign that
    is `paused`, not started yet or past its end enrolls nobody: the lead waits, and
    enrolls once the campaign takes leads again. Enrollments in flight go on (a paused
    campaign's touches are held by the contact policy).
    """
    active = state.active
    rule = choose_rule(
        segments, state.facts, now, active_campaign=active.campaign if active else None
    )
    plan = Plan(lead_id=state.lead_id, segment=rule.segment if rule else None)

    if state.in_sales_hands:
        if active is not None:
            plan.exit_reason = "escalated to sales"
        return plan

    if active is not None and (rule is None or rule.campaign != active.campaign):
        plan.exit_reason = f"moved to {rule.campaign}" if rule else "no matching segment"
        active = None

    if active is not None:
        campaign = enrolled_campaigns[active.campaign_version_id]
        plan.touches = due_touches(state, campaign, active.started_at, active.planned, now)
        cycle_end = active.started_at + timedelta(days=campaign.cycle_days)
        if now >= cycle_end and active.open_touches == 0 and not plan.touches:
            plan.complete = True
        return plan

    if (
        rule is not None
        and rule.campaign not in state.past_campaigns
        and rule.campaign not in paused
        and campaigns[rule.campaign].enrolls_at(now)
    ):
        plan.enroll_campaign = rule.campaign
        plan.touches = due_touches(state, campaigns[rule.campaign], now, frozenset(), now)
    return plan


def next_step_due(campaign: Campaign, started_at: datetime, after: datetime) -> datetime | None:
    """When the enrollment next needs the planner: its next step, or the end of its cycle."""
    for step in campaign.steps:
        due = step_due_at(started_at, step.day)
        if due > after:
            return due
    end = started_at + timedelta(days=campaign.cycle_days)
    return end if end > after else None
