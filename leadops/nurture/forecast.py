"""The forecast: what will go out per day, campaign, step and channel, from the plan and
the contact policy, without sending or writing anything.

Each lead is projected on its own, with the same pure rules a tick uses: the planner
(`plan_lead`: segment, enrollment, the campaign's calendar and pauses) says which
campaign it follows and from when; each step falls due on its day; the contact policy
(`decide`: consent, suppression, the campaign's send window and blackout dates, the
caps over the lead's own sends, pauses) sends it, holds it until its retry time, or skips
it. Ticks run at every due and retry time (leadops.nurture.tick.next_event), so the
projection is what a simulation over the same days sends.

What it assumes: nothing changes that the forecast cannot see (no replies, no new leads,
no stage changes, no provider failures), a paused campaign stays paused, and a lead that
finishes a campaign inside the horizon starts no other one. Days are UTC dates.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from leadops.delivery.campaigns import Campaign, open_pauses
from leadops.delivery.policy import Action, Caps, ContactFacts, Reason, SendWindow, decide
from leadops.models import LEADS, SENT_TOUCH_STATUSES, TOUCHES, TouchStatus
from leadops.nurture.plan import _LEAD_FIELDS, PLAN_BATCH, _states
from leadops.nurture.planner import LeadState, channels_for, plan_lead, step_due_at
from leadops.nurture.runtime import Runtime

FORECAST_COLUMNS = ("day", "campaign", "step", "channel", "messages")

_CONTACT_FIELDS = (
    LEADS.c.email_consent,
    LEADS.c.email_suppressed_at,
    LEADS.c.whatsapp_suppressed_at,
    LEADS.c.unsubscribed_at,
    LEADS.c.timezone,
)


@dataclass
class Forecast:
    start: datetime
    end: datetime
    sends: Counter[tuple[date, str, str, str]] = field(default_factory=Counter)
    held_paused: Counter[str] = field(default_factory=Counter)  # touches, by campaign
    waiting: Counter[str] = field(default_factory=Counter)  # leads, by campaign not enrolling
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)  # campaign, reason
    leads: int = 0

    def rows(self) -> list[dict[str, Any]]:
        """One row per day, campaign, step and channel with messages to send."""
        return [
            {
                "day": day.isoformat(),
                "campaign": campaign,
                "step": step,
                "channel": channel,
                "messages": count,
            }
            for (day, campaign, step, channel), count in sorted(self.sends.items())
        ]

    @property
    def total(self) -> int:
        return sum(self.sends.values())


@dataclass(order=True)
class _Event:
    at: datetime
    not_before: datetime
    seq: int
    campaign: str = field(compare=False)
    step: str = field(compare=False)
    channel: str = field(compare=False)


@dataclass
class _Outcome:
    """What one lead's touches come to over the horizon."""

    sends: Counter[tuple[date, str, str, str]] = field(default_factory=Counter)
    held_paused: Counter[str] = field(default_factory=Counter)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class _History:
    """A batch's touches: each lead's pending ones and its sends of the last week."""

    pending: dict[int, list[tuple[int, str, str, str, datetime]]] = field(default_factory=dict)
    recent: dict[int, list[datetime]] = field(default_factory=dict)


def _history(session: Session, lead_ids: list[int], now: datetime) -> _History:
    t = TOUCHES.c
    history = _History()
    rows = session.execute(
        select(t.id, t.lead_id, t.campaign, t.step, t.channel, t.status, t.not_before, t.sent_at)
        .where(
            t.lead_id.in_(lead_ids),
            t.status.in_([TouchStatus.PENDING, *SENT_TOUCH_STATUSES]),
        )
        .order_by(t.id)
    ).all()
    week_ago = now - timedelta(days=7)
    for touch_id, lead_id, campaign, step, channel, status, not_before, sent_at in rows:
        if status == TouchStatus.PENDING:
            history.pending.setdefault(lead_id, []).append(
                (touch_id, campaign, step, channel, not_before)
            )
        elif sent_at is not None and sent_at > week_ago:
            history.recent.setdefault(lead_id, []).append(sent_at)
    return history


def _batches(session: Session) -> Iterator[list[Any]]:
    last_id = 0
    while True:
        batch = list(
            session.execute(
                select(*_LEAD_FIELDS, *_CONTACT_FIELDS)
                .where(LEADS.c.id > last_id)
                .order_by(LEADS.c.id)
                .limit(PLAN_BATCH)
            ).all()
        )
        if not batch:
            return
        yield batch
        last_id = batch[-1].id


class _Projector:
    """Projects one lead at a time over [start, end)."""

    def __init__(self, runtime: Runtime, start: datetime, end: datetime, paused: set[str]):
        settings = runtime.settings
        self.runtime = runtime
        self.start, self.end, self.paused = start, end, paused
        self.window = SendWindow(
            settings.send_window_start, settings.send_window_end, settings.weekday_numbers
        )
        self.caps = Caps(settings.cap_per_day, settings.cap_per_week)
        self.windows: dict[int, SendWindow] = {}
        # Leads alike in all the policy looks at get the same sends: projected once.
        self.memo: dict[tuple[Any, ...], _Outcome] = {}
        self.starts = sorted(
            {
                c.starts_at
                for c in runtime.campaigns.values()
                if c.starts_at and start < c.starts_at < end
            }
        )
        self.campaign_of_segment = {r.segment: r.campaign for r in runtime.segments.rules}
        self.inactivity_days = {
            r.when.inactive_days_at_least
            for r in runtime.segments.rules
            if r.when.inactive_days_at_least is not None
        }

    def _window(self, campaign: Campaign) -> SendWindow:
        # by identity: the runtime holds every campaign object for the whole forecast
        key = id(campaign)
        if key not in self.windows:
            self.windows[key] = campaign.send_window_from(self.window)
        return self.windows[key]

    def _enrollment(
        self, session: Session, state: LeadState, forecast: Forecast
    ) -> tuple[Campaign, datetime, frozenset[tuple[str, str]]] | None:
        """The campaign the lead follows in the horizon, its start and the steps planned."""
        stored = self.runtime.stored
        if state.active:
            stored.get(session, state.active.campaign_version_id)
        flips = {state.facts.last_active_at + timedelta(days=days) for days in self.inactivity_days}
        waits_for: str | None = None
        moments = sorted({*self.starts, *(at for at in flips if self.start < at < self.end)})
        for at in [self.start, *moments]:
            plan = plan_lead(
                state,
                segments=self.runtime.segments,
                campaigns=self.runtime.campaigns,
                enrolled_campaigns=stored.loaded(),
                now=at,
                paused=self.paused,
            )
            if plan.enroll_campaign is not None:
                return self.runtime.campaigns[plan.enroll_campaign], at, frozenset()
            if at == self.start and state.active and not plan.exit_reason:
                active = state.active
                return (
                    stored.loaded()[active.campaign_version_id],
                    active.started_at,
                    active.planned,
                )
            if at == self.start and state.in_sales_hands:
                return None
            if at == self.start and not state.active:
                waits_for = self.campaign_of_segment.get(plan.segment or "")
        if waits_for is not None and waits_for not in state.past_campaigns:
            forecast.waiting[waits_for] += 1
        return None

    def project(
        self,
        session: Session,
        lead: Any,
        state: LeadState,
        history: _History,
        forecast: Forecast,
    ) -> None:
        """Add what this lead will be sent in the horizon to `forecast`."""
        start = self.start
        # Existing touches first, in id order, then those planned later (as a tick would).
        events = [
            _Event(max(not_before, start), not_before, seq, campaign, step, channel)
            for seq, (_, campaign, step, channel, not_before) in enumerate(
                history.pending.get(lead.id, [])
            )
        ]
        followed = self._enrollment(session, state, forecast)
        campaign: Campaign | None = None
        if followed is not None:
            campaign, started_at, planned = followed
            for planned_step in campaign.steps:
                due = step_due_at(started_at, planned_step.day)
                if due >= self.end:
                    break
                for channel in channels_for(state, planned_step.channels):
                    if (planned_step.key, channel) not in planned:
                        event = _Event(
                            max(due, start),
                            due,
                            len(events),
                            campaign.key,
                            planned_step.key,
                            channel,
                        )
                        events.append(event)
        if not events:
            return
        facts = ContactFacts(
            email=lead.email and "@",
            phone=lead.phone and "+",
            email_consent=lead.email_consent,
            whatsapp_consent=lead.whatsapp_consent,
            email_suppressed=lead.email_suppressed_at is not None,
            whatsapp_suppressed=lead.whatsapp_suppressed_at is not None,
            unsubscribed=lead.unsubscribed_at is not None,
            lifecycle_stage=lead.lifecycle_stage,
            timezone=lead.timezone,
        )
        recent = tuple(history.recent.get(lead.id, ()))
        key = (
            facts,
            id(campaign),
            recent,
            tuple((e.at, e.not_before, e.campaign, e.step, e.channel) for e in events),
        )
        outcome = self.memo.get(key)
        if outcome is None:
            heapq.heapify(events)
            outcome = self.memo[key] = self._dispatch(facts, events, campaign, list(recent))
        forecast.sends.update(outcome.sends)
        forecast.held_paused.update(outcome.held_paused)
        forecast.skipped.update(outcome.skipped)

    def _dispatch(
        self,
        facts: ContactFacts,
        events: list[_Event],
        campaign: Campaign | None,
        sent: list[datetime],
    ) -> _Outcome:
        """Apply the contact policy to one lead's touches in time order, as ticks would."""
        outcome = _Outcome()
        while events:
            event = heapq.heappop(events)
            rules = campaign if campaign and campaign.key == event.campaign else None
            rules = rules or self.runtime.campaigns.get(event.campaign)
            decision = decide(
                channel=event.channel,
                lead=facts,
                now=event.at,
                window=self._window(rules) if rules else self.window,
                caps=self.caps,
                recent_sends=sent,
                paused=event.campaign in self.paused,
            )
            if decision.reason == Reason.CAMPAIGN_PAUSED:  # held until it resumes
                outcome.held_paused[event.campaign] += 1
            elif decision.action == Action.SEND:
                sent.append(event.at)
                day = event.at.date()
                outcome.sends[(day, event.campaign, event.step, event.channel)] += 1
            elif decision.action == Action.SKIP:
                assert decision.reason is not None
                outcome.skipped[(event.campaign, decision.reason)] += 1
            elif decision.retry_at is not None and decision.retry_at < self.end:
                event.at = event.not_before = decision.retry_at
                heapq.heappush(events, event)
        return outcome


def forecast(
    runtime: Runtime,
    now: datetime,
    days: int,
    *,
    progress: Callable[[int], None] | None = None,
) -> Forecast:
    """What will go out from `now` for `days` days (see the module docstring)."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    end = now + timedelta(days=days)
    result = Forecast(start=now, end=end)
    with Session(runtime.engine) as session:
        projector = _Projector(runtime, now, end, set(open_pauses(session, now)))
        for batch in _batches(session):
            history = _history(session, [lead.id for lead in batch], now)
            for lead, _, state in _states(session, batch):
                projector.project(session, lead, state, history, result)
            result.leads += len(batch)
            session.expunge_all()  # only one batch of enrollments in memory
            if progress is not None:
                progress(result.leads)
    return result
