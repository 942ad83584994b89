"""Step conditions, waits for an event and campaign goals: the language of the campaign
file (`when:`, `unless:`, `wait_for:` on a step, `goal:` on a campaign) and its pure
evaluation over what a lead did since it enrolled (`Behaviour`).

A condition is a mapping of checks that must all hold, for example
`{clicked: day-1, score_at_least: 40}`. Event checks (opened, clicked, replied,
visited_pricing, event) look at the lead's current enrollment only; score, stage, grade
and band are the lead's values when the step is planned. The planner
(leadops.nurture.planner) loads nothing: leadops.nurture.behaviour reads the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadops.models.events import HAND_RAISE_FORMS, SITE_EVENTS
from leadops.models.vocab import FUNNEL_ORDER, LifecycleStage

# Reason codes of touches a condition or a wait skipped (legend: leadops.delivery.policy).
CONDITION_NOT_MET = "condition_not_met"
WAIT_TIMED_OUT = "wait_timed_out"
GOAL_REACHED = "goal_reached"

# The site and form events a condition or goal can name (a page view counts through
# `visited_pricing`).
EVENT_NAMES = (SITE_EVENTS - {"page_view"}) | HAND_RAISE_FORMS
Band = Literal["cold", "warm", "hot"]
TIMED_CHECKS = ("opened", "clicked", "replied", "visited_pricing", "event")


@dataclass(frozen=True)
class Behaviour:
    """What a lead did in its current enrollment (each kind of event: when it first
    happened), and its score, stage, grade and band now."""

    score: int = 0
    stage: str = LifecycleStage.LEAD
    grade: str | None = None
    band: str | None = None
    opened: Mapping[str, datetime] = field(default_factory=dict)  # step key -> first open
    clicked: Mapping[str, datetime] = field(default_factory=dict)  # step key -> first click
    replied: datetime | None = None
    pricing: datetime | None = None  # first pricing page view
    events: Mapping[str, datetime] = field(default_factory=dict)  # site or form event
    stages: Mapping[str, datetime] = field(default_factory=dict)  # stage -> first reached


def _event_name(value: str) -> str:
    if value not in EVENT_NAMES:
        raise ValueError(f"unknown event {value!r}; use one of {', '.join(sorted(EVENT_NAMES))}")
    return value


class Condition(BaseModel):
    """Checks over the lead's behaviour; all that are given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    opened: str | None = Field(
        default=None, description="an earlier step's key: its email opened or WhatsApp read"
    )
    clicked: str | None = Field(
        default=None, description="an earlier step's key: a link in its email clicked"
    )
    replied: bool | None = Field(default=None, description="replied (or not) since enrolling")
    visited_pricing: bool | None = Field(
        default=None, description="viewed a pricing page (or not) since enrolling"
    )
    event: str | None = Field(
        default=None,
        description=f"a site or form event since enrolling: {', '.join(sorted(EVENT_NAMES))}",
    )
    score_at_least: int | None = Field(default=None, description="the lead's score now")
    score_below: int | None = Field(default=None, description="the lead's score now")
    stage: tuple[LifecycleStage, ...] | None = Field(
        default=None, min_length=1, description="the lead's lifecycle stage now is one of these"
    )
    grade: tuple[str, ...] | None = Field(
        default=None, min_length=1, description="the lead's grade now (A1, B2...) is one of these"
    )
    band: tuple[Band, ...] | None = Field(
        default=None, min_length=1, description="the lead's band now is one of these"
    )

    @model_validator(mode="after")
    def _checks(self) -> Condition:
        if all(getattr(self, name) is None for name in Condition.model_fields):
            raise ValueError("a condition needs at least one check")
        if self.event is not None:
            _event_name(self.event)
        for grade in self.grade or ():
            if not (len(grade) == 2 and grade[0].isalpha() and grade[1].isdigit()):
                raise ValueError(f"grade {grade!r} is not a grade like A1 or B2")
        return self

    def steps(self) -> list[str]:
        """The step keys the condition looks at."""
        return [key for key in (self.opened, self.clicked) if key is not None]

    def _timed(self, b: Behaviour) -> dict[str, datetime | None]:
        """When each event check given first held (None: not yet)."""
        times: dict[str, datetime | None] = {}
        if self.opened is not None:
            times[f"opened {self.opened}"] = b.opened.get(self.opened)
        if self.clicked is not None:
            times[f"clicked {self.clicked}"] = b.clicked.get(self.clicked)
        if self.replied:
            times["replied"] = b.replied
        if self.visited_pricing:
            times["visited the pricing page"] = b.pricing
        if self.event is not None:
            times[self.event] = b.events.get(self.event)
        return times

    def failure(self, b: Behaviour) -> str | None:
        """The first check that does not hold, in words (None: all hold)."""
        for what, at in self._timed(b).items():
            if at is None:
                return f"{what}: not yet"
        if self.replied is False and b.replied is not None:
            return "replied: yes"
        if self.visited_pricing is False and b.pricing is not None:
            return "visited the pricing page: yes"
        if self.score_at_least is not None and b.score < self.score_at_least:
            return f"score {b.score} < {self.score_at_least}"
        if self.score_below is not None and b.score >= self.score_below:
            return f"score {b.score} >= {self.score_below}"
        for name, allowed, value in (
            ("stage", self.stage, b.stage),
            ("grade", self.grade, b.grade),
            ("band", self.band, b.band),
        ):
            if allowed is not None and value not in allowed:
                return f"{name} {value or 'unknown'} not in {', '.join(map(str, allowed))}"
        return None

    def holds(self, b: Behaviour) -> bool:
        return self.failure(b) is None

    def met_at(self, b: Behaviour) -> datetime | None:
        """When the condition came to hold: the latest of its events (None: not met)."""
        if self.failure(b) is not None:
            return None
        times = [at for at in self._timed(b).values() if at is not None]
        return max(times) if times else None

    def describe(self) -> str:
        """The checks in words, as the campaign file gives them: "clicked day-1"."""
        parts = []
        for name in Condition.model_fields:
            value = getattr(self, name)
            label = name.replace("_", " ")
            if isinstance(value, bool):
                parts.append(label if value else f"not {label}")
            elif value is not None:
                shown = "|".join(map(str, value)) if isinstance(value, tuple) else value
                parts.append(f"{label} {shown}")
        return ", ".join(parts)


class WaitFor(Condition):
    """Wait for an event, at most until the step's own day: when it happens the step goes
    out `days_after` days later; when it has not happened by the step's day the step goes
    out then (`on_timeout: send`) or is skipped (`on_timeout: skip`)."""

    days_after: int = Field(
        default=0, ge=0, le=365, description="days after the event the step goes out"
    )
    on_timeout: Literal["send", "skip"] = Field(
        default="send", description="no event by the step's day: send it then, or skip it"
    )

    def describe_wait(self) -> str:
        """The wait in words: "clicked day-1, +2 d, else send on the step's day"."""
        after = f", +{self.days_after} d" if self.days_after else ""
        return f"{self.describe()}{after}, else {self.on_timeout} on the step's day"

    @model_validator(mode="after")
    def _an_event(self) -> WaitFor:
        if not any(getattr(self, name) for name in TIMED_CHECKS):
            raise ValueError(f"wait_for needs an event to wait for ({', '.join(TIMED_CHECKS)})")
        return self


class Goal(BaseModel):
    """What the campaign is for: when one of `events` happens, or the lead reaches
    `stage` (or a later one) after enrolling, the campaign ends for the lead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=60, description="shown in the report")
    events: tuple[str, ...] = Field(
        default=(), description="any of these site or form events since enrolling"
    )
    stage: LifecycleStage | None = Field(
        default=None, description="this stage or a later one reached since enrolling"
    )

    @model_validator(mode="after")
    def _something(self) -> Goal:
        for event in self.events:
            _event_name(event)
        if not self.events and self.stage is None:
            raise ValueError("a goal needs events or a stage")
        if self.stage is not None and self.stage not in FUNNEL_ORDER:
            raise ValueError(f"stage {self.stage} is not a funnel stage")
        return self

    def describe(self) -> str:
        """The goal in words: "Demo booked: demo_requested or appointment_booked, or sql"."""
        what = [*self.events, *([f"{self.stage} or later"] if self.stage else [])]
        return f"{self.name}: {' or '.join(what)}"

    def reached(self, b: Behaviour) -> str | None:
        """What reached the goal (an event or a stage; None: not reached)."""
        for event in self.events:
            if event in b.events:
                return event
        if self.stage is not None:
            target = FUNNEL_ORDER[self.stage]
            for stage in b.stages:
                if FUNNEL_ORDER.get(stage, -1) >= target:
                    return f"became {stage}"
        return None


@dataclass(frozen=True)
class StepTiming:
    """What to do with a step now: plan it for `due_at` (skipped, with the `skip` reason
    code and `detail`, when its rules say so), or nothing yet (`due_at` None)."""

    due_at: datetime | None = None
    skip: str | None = None
    detail: str | None = None


def step_timing(
    *,
    day_due: datetime,
    now: datetime,
    behaviour: Behaviour,
    when: Condition | None,
    unless: Condition | None,
    wait_for: WaitFor | None,
) -> StepTiming:
    """When a step with these rules goes out: on its own day (`day_due`), or with
    `wait_for` `days_after` the awaited event if it came by then. `when` and `unless` are
    checked when the step is planned (on its day, or when the awaited event is seen)."""
    due = day_due
    if wait_for is not None:
        met = wait_for.met_at(behaviour)
        if met is not None and met <= day_due:
            due = met + timedelta(days=wait_for.days_after)
        elif now < day_due:
            return StepTiming()
        elif wait_for.on_timeout == "skip":
            late = wait_for.failure(behaviour) or "the event came after the step's day"
            return StepTiming(due, WAIT_TIMED_OUT, f"wait_for: {late}")
    elif due > now:
        return StepTiming()
    if when is not None and (why := when.failure(behaviour)) is not None:
        return StepTiming(due, CONDITION_NOT_MET, f"when: {why}")
    if unless is not None and unless.holds(behaviour):
        return StepTiming(due, CONDITION_NOT_MET, f"unless: {unless.describe()}")
    return StepTiming(due)
