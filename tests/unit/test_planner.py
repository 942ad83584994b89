"""Unit tests for leadops.nurture.planner."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadops.delivery.campaigns import Campaign, load_campaigns
from leadops.delivery.conditions import Behaviour
from leadops.nurture.planner import (
    ActiveEnrollment,
    LeadState,
    due_touches,
    next_step_due,
    plan_lead,
    step_due_at,
)
from leadops.nurture.segments import LeadFacts, SegmentConfig, load_segments

CONFIG = Path(__file__).resolve().parents[2] / "config"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def campaigns() -> dict[str, Campaign]:
    return load_campaigns(CONFIG)


@pytest.fixture(scope="module")
def segments(campaigns: dict[str, Campaign]) -> SegmentConfig:
    return load_segments(CONFIG, set(campaigns))


def lead_facts(**overrides: object) -> LeadFacts:
    base = LeadFacts(
        lifecycle_stage="lead",
        country="GB",
        industry="software",
        seniority="manager",
        company_size=100,
        score=0,
        last_active_at=START,
    )
    return replace(base, **overrides)


def state(
    *,
    facts: LeadFacts | None = None,
    active: ActiveEnrollment | None = None,
    past: frozenset[str] = frozenset(),
    has_email: bool = True,
    has_phone: bool = True,
    whatsapp_consent: bool = True,
) -> LeadState:
    return LeadState(
        lead_id=7,
        facts=facts or lead_facts(),
        has_email=has_email,
        has_phone=has_phone,
        whatsapp_consent=whatsapp_consent,
        segment=None,
        active=active,
        past_campaigns=past | ({active.campaign} if active else frozenset()),
    )


def enrollment(
    campaign: str,
    *,
    started_at: datetime = START,
    planned: frozenset[tuple[str, str]] = frozenset(),
    open_touches: int = 0,
) -> ActiveEnrollment:
    return ActiveEnrollment(
        id=1,
        campaign=campaign,
        campaign_version_id=100,
        started_at=started_at,
        planned=planned,
        open_touches=open_touches,
    )


def plan(lead: LeadState, now: datetime, campaigns, segments):  # type: ignore[no-untyped-def]
    versions = {100: campaigns[lead.active.campaign]} if lead.active else {}
    return plan_lead(
        lead, segments=segments, campaigns=campaigns, enrolled_campaigns=versions, now=now
    )


def keys(touches) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(t.step, t.channel) for t in touches}


ALL_DAY1 = {("day-1", "email"), ("day-1", "whatsapp")}


def test_step_due_at() -> None:
    assert step_due_at(START, 1) == START
    assert step_due_at(START, 10) == START + timedelta(days=9)
    assert step_due_at(START, 20) == START + timedelta(days=19)


def test_new_lead_enrolls_with_day1_due_now(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    result = plan(state(), START, campaigns, segments)
    assert result.segment == "top-of-funnel"
    assert result.enroll_campaign == "educate"
    assert result.exit_reason is None
    assert keys(result.touches) == ALL_DAY1
    assert all(t.due_at == START and t.step_day == 1 for t in result.touches)
    assert result.changes_anything


@pytest.mark.parametrize(
    ("stage", "campaign"),
    [
        ("subscriber", "educate"),
        ("lead", "educate"),
        ("recycled", "re-engage"),
        ("mql", "connect"),
        ("sql", "offer"),
        ("opportunity", "offer"),
    ],
)
def test_stage_picks_campaign(stage: str, campaign: str, campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    result = plan(state(facts=lead_facts(lifecycle_stage=stage)), START, campaigns, segments)
    assert result.enroll_campaign == campaign


def test_day10_and_day20_due_exactly_9_and_19_days_later(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    day1 = frozenset(ALL_DAY1)
    lead = state(active=enrollment("educate", planned=day1))
    just_before = START + timedelta(days=9) - timedelta(seconds=1)
    assert plan(lead, just_before, campaigns, segments).touches == []
    at_day10 = plan(lead, START + timedelta(days=9), campaigns, segments)
    assert keys(at_day10.touches) == {("day-10", "email"), ("day-10", "whatsapp")}
    assert all(t.due_at == START + timedelta(days=9) for t in at_day10.touches)

    day10 = day1 | {("day-10", "email"), ("day-10", "whatsapp")}
    lead = state(active=enrollment("educate", planned=day10))
    almost = START + timedelta(days=19) - timedelta(microseconds=1)
    assert plan(lead, almost, campaigns, segments).touches == []
    at_day20 = plan(lead, START + timedelta(days=19), campaigns, segments)
    assert keys(at_day20.touches) == {("day-20", "email"), ("day-20", "whatsapp")}
    assert at_day20.exit_reason is None and not at_day20.complete


def test_due_touches_catches_up_missed_steps(campaigns) -> None:  # type: ignore[no-untyped-def]
    touches = due_touches(
        state(), campaigns["educate"], START, frozenset(), START + timedelta(days=25)
    )
    assert [t.step for t in touches] == ["day-1", "day-1", "day-10", "day-10", "day-20", "day-20"]


@pytest.mark.parametrize(
    ("has_phone", "consent", "expected"),
    [
        (True, True, ALL_DAY1),
        (True, False, {("day-1", "email")}),
        (False, True, {("day-1", "email")}),
        (False, False, {("day-1", "email")}),
    ],
)
def test_whatsapp_needs_phone_and_consent(
    has_phone: bool,
    consent: bool,
    expected: set[tuple[str, str]],
    campaigns,  # type: ignore[no-untyped-def]
    segments,
) -> None:
    lead = state(has_phone=has_phone, whatsapp_consent=consent)
    assert keys(plan(lead, START, campaigns, segments).touches) == expected


def test_no_email_only_whatsapp(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    lead = state(has_email=False)
    assert keys(plan(lead, START, campaigns, segments).touches) == {("day-1", "whatsapp")}


def test_stage_change_exits_and_moves_campaign(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    now = START + timedelta(days=5)
    lead = state(
        facts=lead_facts(lifecycle_stage="mql", last_active_at=now),
        active=enrollment("educate", planned=frozenset(ALL_DAY1)),
    )
    result = plan(lead, now, campaigns, segments)
    assert result.exit_reason == "moved to connect"
    assert result.enroll_campaign == "connect"
    assert result.segment == "middle-of-funnel"
    assert keys(result.touches) == ALL_DAY1
    assert all(t.due_at == now for t in result.touches)


def test_customer_exits_with_no_matching_segment(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    lead = state(
        facts=lead_facts(lifecycle_stage="customer"),
        active=enrollment("offer", planned=frozenset(ALL_DAY1)),
    )
    result = plan(lead, START + timedelta(days=3), campaigns, segments)
    assert result.exit_reason == "no matching segment"
    assert result.segment is None
    assert result.enroll_campaign is None
    assert result.touches == []


def test_customer_without_enrollment_gets_nothing(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    result = plan(state(facts=lead_facts(lifecycle_stage="customer")), START, campaigns, segments)
    assert not result.changes_anything


def test_never_reenrolls_in_past_campaign(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    result = plan(state(past=frozenset({"educate"})), START, campaigns, segments)
    assert result.segment == "top-of-funnel"
    assert result.enroll_campaign is None
    assert result.touches == []
    assert not result.changes_anything


def test_moving_back_to_past_campaign_exits_without_reenrolling(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    lead = state(
        facts=lead_facts(lifecycle_stage="lead"),
        active=enrollment("connect"),
        past=frozenset({"educate"}),
    )
    result = plan(lead, START + timedelta(days=2), campaigns, segments)
    assert result.exit_reason == "moved to educate"
    assert result.enroll_campaign is None


def test_inactivity_starts_reengage_only_without_active_cycle(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    now = START + timedelta(days=60)
    quiet = lead_facts(last_active_at=START)
    # No active enrollment: inactivity starts re-engage.
    result = plan(state(facts=quiet, past=frozenset({"educate"})), now, campaigns, segments)
    assert result.segment == "gone-quiet"
    assert result.enroll_campaign == "re-engage"
    # 59 days quiet is not enough.
    result = plan(
        state(facts=quiet, past=frozenset({"educate"})),
        now - timedelta(seconds=1),
        campaigns,
        segments,
    )
    assert result.enroll_campaign is None
    assert result.segment == "top-of-funnel"


def test_inactivity_never_interrupts_active_cycle(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    started = START - timedelta(days=50)
    quiet = lead_facts(last_active_at=started - timedelta(days=20))
    lead = state(
        facts=quiet, active=enrollment("educate", started_at=started, planned=frozenset(ALL_DAY1))
    )
    result = plan(lead, START, campaigns, segments)
    assert result.exit_reason is None
    assert result.segment == "top-of-funnel"


def test_lead_in_reengage_stays_there(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    now = START + timedelta(days=12)
    # Still quiet or active again: a lead enrolled in re-engage keeps its campaign.
    for last_active in (START - timedelta(days=70), now - timedelta(days=1)):
        lead = state(
            facts=lead_facts(last_active_at=last_active),
            active=enrollment("re-engage", planned=frozenset(ALL_DAY1)),
            past=frozenset({"educate"}),
        )
        result = plan(lead, now, campaigns, segments)
        assert result.exit_reason is None
        assert result.segment == "gone-quiet"
        assert keys(result.touches) == {("day-10", "email"), ("day-10", "whatsapp")}


def test_reengage_lead_becoming_customer_exits(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    lead = state(
        facts=lead_facts(lifecycle_stage="customer"),
        active=enrollment("re-engage"),
    )
    assert plan(lead, START, campaigns, segments).exit_reason == "no matching segment"


ALL_PLANNED = frozenset(
    (step, channel) for step in ("day-1", "day-10", "day-20") for channel in ("email", "whatsapp")
)


def test_completes_only_after_cycle_with_no_open_touches(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    end = START + timedelta(days=30)
    done = state(active=enrollment("educate", planned=ALL_PLANNED))
    assert not plan(done, end - timedelta(seconds=1), campaigns, segments).complete
    assert plan(done, end, campaigns, segments).complete

    busy = state(active=enrollment("educate", planned=ALL_PLANNED, open_touches=1))
    assert not plan(busy, end + timedelta(days=3), campaigns, segments).complete

    missing = state(active=enrollment("educate", planned=ALL_PLANNED - {("day-20", "email")}))
    result = plan(missing, end, campaigns, segments)
    assert not result.complete
    assert keys(result.touches) == {("day-20", "email")}


def test_active_enrollment_follows_stored_version(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    old = Campaign.model_validate(
        {
            "key": "educate",
            "name": "Old educate",
            "cycle_days": 10,
            "steps": [{"key": "hello", "day": 1, "name": "Hi", "channels": ["email"]}],
        }
    )
    lead = state(active=enrollment("educate"))
    result = plan_lead(
        lead, segments=segments, campaigns=campaigns, enrolled_campaigns={100: old}, now=START
    )
    assert keys(result.touches) == {("hello", "email")}


def test_custom_segments_and_campaign() -> None:
    camp = Campaign.model_validate(
        {
            "key": "big",
            "name": "Big",
            "cycle_days": 5,
            "steps": [
                {"key": "a", "day": 1, "name": "A", "channels": ["email"]},
                {"key": "b", "day": 3, "name": "B", "channels": ["whatsapp", "email"]},
            ],
        }
    )
    segs = SegmentConfig.model_validate(
        {
            "rules": [
                {"segment": "big-co", "campaign": "big", "when": {"company_size_at_least": 500}}
            ]
        }
    )
    small = state(facts=lead_facts(company_size=20))
    result = plan_lead(
        small, segments=segs, campaigns={"big": camp}, enrolled_campaigns={}, now=START
    )
    assert result.segment is None and not result.changes_anything
    big = state(facts=lead_facts(company_size=500))
    result = plan_lead(
        big, segments=segs, campaigns={"big": camp}, enrolled_campaigns={}, now=START
    )
    assert result.enroll_campaign == "big"
    assert keys(result.touches) == {("a", "email")}


def test_next_step_due(campaigns) -> None:  # type: ignore[no-untyped-def]
    camp = campaigns["educate"]
    assert next_step_due(camp, START, START - timedelta(seconds=1)) == START
    assert next_step_due(camp, START, START) == START + timedelta(days=9)
    assert next_step_due(camp, START, START + timedelta(days=9)) == START + timedelta(days=19)
    assert next_step_due(camp, START, START + timedelta(days=19)) == START + timedelta(days=30)
    assert next_step_due(camp, START, START + timedelta(days=30)) is None


def test_a_paused_or_ended_campaign_enrolls_nobody_and_in_flight_leads_go_on(
    campaigns, segments
) -> None:  # type: ignore[no-untyped-def]
    new = state()
    paused = plan_lead(
        new,
        segments=segments,
        campaigns=campaigns,
        enrolled_campaigns={},
        now=START,
        paused={"educate"},
    )
    assert paused.segment == "top-of-funnel" and paused.enroll_campaign is None
    ended = {**campaigns, "educate": campaigns["educate"].model_copy(update={"ends_at": START})}
    later = plan_lead(new, segments=segments, campaigns=ended, enrolled_campaigns={}, now=START)
    assert later.enroll_campaign is None and not later.touches
    not_yet = {
        **campaigns,
        "educate": campaigns["educate"].model_copy(
            update={"starts_at": START + timedelta(hours=1)}
        ),
    }
    assert plan(new, START, not_yet, segments).enroll_campaign is None
    assert plan(new, START + timedelta(hours=1), not_yet, segments).enroll_campaign == "educate"
    # an enrollment in flight when the campaign ends still gets its next step
    active = state(active=enrollment("educate", planned=frozenset(ALL_DAY1)))
    result = plan(active, START + timedelta(days=9), ended, segments)
    assert keys(result.touches) == {("day-10", "email"), ("day-10", "whatsapp")}


def test_the_goal_ends_the_enrollment_before_any_other_exit(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    """Educate's goal (config/campaigns/educate.yaml) is becoming an MQL: the enrollment
    ends as its goal reached, not as a move, and the lead enrolls in connect as a lead that
    moved does (unless it is in sales' hands)."""
    active = replace(
        enrollment("educate", planned=frozenset(ALL_DAY1)),
        behaviour=Behaviour(stage="mql", stages={"mql": START + timedelta(days=3)}),
    )
    lead = state(facts=lead_facts(lifecycle_stage="mql"), active=active)
    result = plan(lead, START + timedelta(days=4), campaigns, segments)
    assert result.goal_reached
    assert result.exit_reason == "goal reached: Became MQL (became mql)"
    assert result.enroll_campaign == "connect"  # and enrolls where its segment points
    assert keys(result.touches) == ALL_DAY1
    in_sales = replace(lead, in_sales_hands=True)
    handed = plan(in_sales, START + timedelta(days=4), campaigns, segments)
    assert (handed.goal_reached, handed.enroll_campaign, handed.touches) == (True, None, [])


def test_a_waiting_step_is_planned_when_its_event_is_seen(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    """Educate's day-10 waits for a click on day-1 and goes out two days after it: the
    touch is written when the click is seen, due at its time."""
    click = START + timedelta(days=1, hours=3)
    active = enrollment("educate", planned=frozenset(ALL_DAY1))
    lead = state(active=active)
    assert plan(lead, START + timedelta(days=2), campaigns, segments).touches == []
    clicked = replace(active, behaviour=Behaviour(clicked={"day-1": click}))
    result = plan(state(active=clicked), START + timedelta(days=2), campaigns, segments)
    assert keys(result.touches) == {("day-10", "email"), ("day-10", "whatsapp")}
    assert {t.due_at for t in result.touches} == {click + timedelta(days=2)}
    assert {t.skip for t in result.touches} == {None}


def test_a_step_whose_condition_fails_is_planned_as_skipped(campaigns, segments) -> None:  # type: ignore[no-untyped-def]
    """Offer's day-10 is not for a lead who started a trial already."""
    active = replace(
        enrollment("offer", planned=frozenset(ALL_DAY1)),
        behaviour=Behaviour(events={"trial_started": START + timedelta(days=2)}),
    )
    lead = state(facts=lead_facts(lifecycle_stage="sql"), active=active)
    result = plan(lead, START + timedelta(days=9), campaigns, segments)
    assert {(t.step, t.skip, t.detail) for t in result.touches} == {
        ("day-10", "condition_not_met", "unless: event trial_started")
    }
