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
from leadops.delivery.conditions import Behaviour, step_timing
from leadops.models.vocab import Channel
from leadops.nurture.experiments import HOLDOUT, arm_for, variant_for
from leadops.nurture.segments import LeadFacts, SegmentConfig, choose_rule


@dataclass(frozen=True)
class ActiveEnrollment:
    id: int
    campaign: str
    campaign_version_id: int
    started_at: datetime
    planned: frozenset[tuple[str, str]]  # (step, channel) touches that already exist
    open_touches: int  # touches not yet final (pending, held, claimed, sending)
    arm: str | None = None  # "holdout": enrolled to measure the campaign's lift, sent nothing
    behaviour: Behaviour = field(default_factory=Behaviour)  # what it did in this enrollment


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
    behaviour: Behaviour = field(default_factory=Behaviour)  # score, stage, grade, band now
    sunset: bool = False  # sunset (suppressed for not engaging): no new campaign until it engages
    sms_consent: bool = False


@dataclass(frozen=True)
class DueTouch:
    step: str
    step_day: int
    channel: str
    due_at: datetime
    skip: str | None = None  # written as skipped with this reason code (a step condition)
    detail: str | None = None  # what the condition found, for `leadops leads why`
    variant: str | None = None  # the step's A/B variant for this lead (None: no test)


@dataclass
class Plan:
    lead_id: int
    segment: str | None
    exit_reason: str | None = None  # end the active enrollment with this reason
    goal_reached: bool = False  # it ends because the campaign's goal happened
    complete: bool = False  # the active enrollment has finished its cycle
    sunset: bool = False  # ... a sunset campaign's cycle, without engaging during it
    enroll_campaign: str | None = None  # start a new enrollment in this campaign now
    enroll_arm: str | None = None  # the new enrollment's arm ("holdout" or None)
    touches: list[DueTouch] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        return bool(self.exit_reason or self.complete or self.enroll_campaign or self.touches)


def step_due_at(started_at: datetime, day: int) -> datetime:
    """Day 1 is the day of enrollment; day N is N-1 days later."""
    return started_at + timedelta(days=day - 1)


_VALUES = {channel: channel.value for channel in Channel}


def reachable_channels(state: LeadState) -> frozenset[str]:
    """The channels this lead can be reached on (WhatsApp and SMS only with opt-in)."""
    email, whatsapp, sms = Channel.EMAIL.value, Channel.WHATSAPP.value, Channel.SMS.value
    reachable = [email] if state.has_email else []
    if state.has_phone and state.whatsapp_consent:
        reachable.append(whatsapp)
    if state.has_phone and state.sms_consent:
        reachable.append(sms)
    return frozenset(reachable)


def channels_for(
    state: LeadState,
    campaign_channels: tuple[Channel, ...],
    reachable: frozenset[str] | None = None,
) -> list[str]:
    """The step's channels this lead can be reached on, in the step's order; `reachable`
    is `reachable_channels(state)` when the caller worked it out already."""
    if reachable is None:
        reachable = reachable_channels(state)
    return [value for channel in campaign_channels if (value := _VALUES[channel]) in reachable]


def due_touches(
    state: LeadState,
    campaign: Campaign,
    started_at: datetime,
    planned: frozenset[tuple[str, str]],
    now: datetime,
    behaviour: Behaviour | None = None,
) -> list[DueTouch]:
    """The touches to write now: steps due by their day (the lead's A/B variant's day, as a
    variant may move a step), or by the event they wait for (due later, maybe), and steps
    whose condition failed (written as skipped)."""
    touches = []
    reachable = reachable_channels(state)
    for step in campaign.steps:
        channels = [
            c for c in channels_for(state, step.channels, reachable) if (step.key, c) not in planned
        ]
        if not channels:
            continue
        variant = variant_for(campaign.key, step, state.lead_id)
        day = step.day_of(variant)
        timing = step_timing(
            day_due=step_due_at(started_at, day),
            now=now,
            behaviour=behaviour or state.behaviour,
            when=step.when,
            unless=step.unless,
            wait_for=step.wait_for,
        )
        if timing.due_at is None:
            continue
        for channel in channels:
            touches.append(
                DueTouch(
                    step.key,
                    day,
                    channel,
                    timing.due_at,
                    skip=timing.skip,
                    detail=timing.detail,
                    variant=variant,
                )
            )
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
    campaign's touches are held by the contact policy). An enrollment whose campaign's
    goal happened ends first of all (leadops.delivery.conditions), and its steps' rules
    decide which touches are due (`due_touches`).
    """
    active = state.active
    rule = choose_rule(
        segments, state.facts, now, active_campaign=active.campaign if active else None
    )
    plan = Plan(lead_id=state.lead_id, segment=rule.segment if rule else None)

    goal = active and enrolled_campaigns[active.campaign_version_id].goal
    if active is not None and goal and (what := goal.reached(active.behaviour)):
        # the campaign is over for the lead (before any other exit); it may enroll in
        # another campaign now, as a lead that moved does
        plan.exit_reason = f"goal reached: {goal.name} ({what})"
        plan.goal_reached = True
        active = None

    if state.in_sales_hands:
        if active is not None:
            plan.exit_reason = "escalated to sales"
        return plan

    if active is not None and (rule is None or rule.campaign != active.campaign):
        plan.exit_reason = f"moved to {rule.campaign}" if rule else "no matching segment"
        active = None

    if active is not None:
        campaign = enrolled_campaigns[active.campaign_version_id]
        if active.arm == HOLDOUT:  # held out: never planned, so nothing can be sent
            cycle_end = active.started_at + timedelta(days=campaign.cycle_days)
            plan.complete = now >= cycle_end and active.open_touches == 0
            return plan
        plan.touches = due_touches(
            state, campaign, active.started_at, active.planned, now, active.behaviour
        )
        cycle_end = active.started_at + timedelta(days=campaign.cycle_days)
        if now >= cycle_end and active.open_touches == 0 and not plan.touches:
            plan.complete = True
            plan.sunset = campaign.sunset and state.facts.last_active_at < active.started_at
        return plan

    if state.sunset:
        return plan

    if (
        rule is not None
        and rule.campaign not in state.past_campaigns
        and rule.campaign not in paused
        and campaigns[rule.campaign].enrolls_at(now)
    ):
        campaign = campaigns[rule.campaign]
        plan.enroll_campaign = rule.campaign
        plan.enroll_arm = arm_for(campaign, state.lead_id)
        if plan.enroll_arm != HOLDOUT:
            plan.touches = due_touches(state, campaign, now, frozenset(), now)
    return plan


def next_step_due(campaign: Campaign, started_at: datetime, after: datetime) -> datetime | None:
    """When the enrollment next needs the planner: its next step (on any variant's
    day), or the end of its cycle."""
    days = sorted({step.day for step in campaign.steps} | variant_days(campaign))
    for day in days:
        due = step_due_at(started_at, day)
        if due > after:
            return due
    end = started_at + timedelta(days=campaign.cycle_days)
    return end if end > after else None


def variant_days(campaign: Campaign) -> set[int]:
    """The send days variants move steps to."""
    return {variant.day for step in campaign.steps for variant in step.variants if variant.day}
