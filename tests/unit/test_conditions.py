"""Unit tests for leadops.delivery.conditions: the step rules and goals of a campaign file,
their `file:line` errors, and what they decide over a lead's behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadops.core.configfile import ConfigError
from leadops.delivery.campaigns import load_campaign
from leadops.delivery.conditions import (
    CONDITION_NOT_MET,
    WAIT_TIMED_OUT,
    Behaviour,
    Condition,
    Goal,
    StepTiming,
    WaitFor,
    step_timing,
)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DAY10 = T0 + timedelta(days=9)

CAMPAIGN = """\
name: X
goal: {name: Demo booked, events: [appointment_booked], stage: sql}
steps:
  - key: day-1
    day: 1
    name: First
    channels: [email]
  - key: day-10
    day: 10
    name: Second
    channels: [email]
    unless: {clicked: day-1}
  - key: day-20
    day: 20
    name: Third
    channels: [email]
    when: {score_at_least: 40, band: [warm, hot]}
    wait_for: {opened: day-10, days_after: 2, on_timeout: skip}
"""


def write(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir(exist_ok=True)
    path = folder / "x.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error(tmp_path: Path, old: str, new: str) -> str:
    assert old in CAMPAIGN
    with pytest.raises(ConfigError) as info:
        load_campaign(write(tmp_path, CAMPAIGN.replace(old, new)))
    return str(info.value)


def test_a_campaign_file_declares_conditions_waits_and_a_goal(tmp_path: Path) -> None:
    campaign = load_campaign(write(tmp_path, CAMPAIGN))
    assert campaign.goal == Goal(name="Demo booked", events=("appointment_booked",), stage="sql")
    assert campaign.step("day-10").unless == Condition(clicked="day-1")
    third = campaign.step("day-20")
    assert third.wait_for == WaitFor(opened="day-10", days_after=2, on_timeout="skip")
    assert third.when is not None and third.when.band == ("warm", "hot")
    assert campaign.has_rules()


@pytest.mark.parametrize(
    ("old", "new", "line", "says"),
    [
        (
            "{clicked: day-1}",
            "{clicked: day-20}",
            12,
            "steps.1.unless.clicked: 'day-20' is not an earlier step",
        ),
        ("{clicked: day-1}", "{clikced: day-1}", 12, "steps.1.unless.clikced: Extra inputs"),
        ("{clicked: day-1}", "{}", 12, "a condition needs at least one check"),
        ("band: [warm, hot]", "band: [tepid]", 17, "steps.2.when.band.0: Input should be"),
        ("on_timeout: skip", "on_timeout: later", 18, "steps.2.wait_for.on_timeout"),
        ("{opened: day-10, ", "{score_below: 9, ", 18, "wait_for needs an event to wait for"),
        ("events: [appointment_booked]", "events: [demo_booked]", 2, "unknown event 'demo_booked'"),
        (
            "{name: Demo booked, events: [appointment_booked], stage: sql}",
            "{name: G}",
            2,
            "a goal needs events or a stage",
        ),
    ],
)
def test_bad_rules_name_the_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, says: str
) -> None:
    message = error(tmp_path, old, new)
    assert f"x.yaml:{line}: " in message
    assert says in message


def test_conditions_check_behaviour_in_the_enrollment_and_values_now() -> None:
    clicked = Behaviour(score=45, stage="mql", band="warm", clicked={"day-1": T0})
    assert Condition(clicked="day-1").holds(clicked)
    assert Condition(clicked="day-1").failure(Behaviour()) == "clicked day-1: not yet"
    assert Condition(score_at_least=50).failure(clicked) == "score 45 < 50"
    assert Condition(stage=("sql",)).failure(clicked) == "stage mql not in sql"
    assert Condition(grade=("A1",)).failure(clicked) == "grade unknown not in A1"
    assert Condition(replied=False).holds(clicked)
    assert not Condition(replied=False).holds(Behaviour(replied=T0))
    assert Condition(visited_pricing=True, band=("warm",)).failure(clicked) == (
        "visited the pricing page: not yet"
    )
    assert Condition(event="trial_started").holds(Behaviour(events={"trial_started": T0}))
    both = Behaviour(clicked={"day-1": T0}, pricing=T0 + timedelta(hours=5))
    assert Condition(clicked="day-1", visited_pricing=True).met_at(both) == T0 + timedelta(hours=5)


def test_a_goal_is_an_event_or_a_stage_reached_after_enrolling() -> None:
    goal = Goal(name="SQL", events=("trial_started",), stage="sql")
    assert goal.reached(Behaviour(stage="sql")) is None  # was SQL already: no change seen
    assert goal.reached(Behaviour(stages={"mql": T0})) is None
    assert goal.reached(Behaviour(stages={"opportunity": T0})) == "became opportunity"
    assert goal.reached(Behaviour(events={"trial_started": T0})) == "trial_started"


def timing(now: datetime, behaviour: Behaviour, **rules: object) -> StepTiming:
    return step_timing(
        day_due=DAY10,
        now=now,
        behaviour=behaviour,
        when=rules.get("when"),  # type: ignore[arg-type]
        unless=rules.get("unless"),  # type: ignore[arg-type]
        wait_for=rules.get("wait_for"),  # type: ignore[arg-type]
    )


def test_a_step_waits_for_its_event_until_its_day() -> None:
    wait = WaitFor(clicked="day-1", days_after=2)
    click = T0 + timedelta(days=1)
    assert timing(T0, Behaviour(), wait_for=wait) == StepTiming()  # nothing yet
    seen = Behaviour(clicked={"day-1": click})
    assert timing(click, seen, wait_for=wait) == StepTiming(click + timedelta(days=2))
    assert timing(DAY10, Behaviour(), wait_for=wait) == StepTiming(DAY10)  # timed out: send
    skip = WaitFor(clicked="day-1", on_timeout="skip")
    timed_out = timing(DAY10, Behaviour(), wait_for=skip)
    assert (timed_out.skip, timed_out.detail) == (
        WAIT_TIMED_OUT,
        "wait_for: clicked day-1: not yet",
    )
    late = Behaviour(clicked={"day-1": DAY10 + timedelta(hours=1)})
    assert timing(DAY10 + timedelta(hours=2), late, wait_for=wait) == StepTiming(DAY10)


def test_when_and_unless_decide_on_the_day_the_step_is_due() -> None:
    assert timing(T0, Behaviour(), when=Condition(score_at_least=1)) == StepTiming()
    failed = timing(DAY10, Behaviour(), when=Condition(score_at_least=1))
    assert (failed.due_at, failed.skip, failed.detail) == (
        DAY10,
        CONDITION_NOT_MET,
        "when: score 0 < 1",
    )
    clicked = Behaviour(clicked={"day-1": T0})
    excluded = timing(DAY10, clicked, unless=Condition(clicked="day-1"))
    assert (excluded.skip, excluded.detail) == (CONDITION_NOT_MET, "unless: clicked day-1")
    assert timing(DAY10, Behaviour(), unless=Condition(clicked="day-1")) == StepTiming(DAY10)


def test_a_condition_describes_itself_as_the_file_gives_it() -> None:
    condition = Condition(
        clicked="day-1", visited_pricing=True, replied=False, band=("warm", "hot")
    )
    assert condition.describe() == "clicked day-1, not replied, visited pricing, band warm|hot"
