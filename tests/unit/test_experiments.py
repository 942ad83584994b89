"""Unit tests for A/B variants and holdouts: campaign file checks (delivery.campaigns),
sticky assignment (nurture.experiments), the planner's use of them, promoting a winner
(nurture.promote) and the simulated engagement model (engagement.simulated)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from leadops.core.configfile import ConfigError
from leadops.delivery.campaigns import Campaign, load_campaign
from leadops.engagement.simulated import load_engagement_model, reaction
from leadops.nurture.experiments import HOLDOUT, arm_for, variant_for
from leadops.nurture.planner import ActiveEnrollment, LeadState, next_step_due, plan_lead
from leadops.nurture.promote import promotion
from leadops.nurture.segments import LeadFacts, SegmentConfig

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

CAMPAIGN = """\
name: Test
cycle_days: 30
holdout: 0.2
steps:
  - key: day-1
    day: 1
    name: First
    channels: [email]
    variants:
      # the control
      - key: a
        weight: 1
      - key: b
        weight: 3
        day: 3
  - key: day-10
    day: 10
    name: Second
    channels: [email]
"""


def write(tmp_path: Path, text: str, name: str = "test") -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    return info.value


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    return load_campaign(write(tmp_path, CAMPAIGN))


def test_assignment_is_sticky_weighted_and_ignores_other_steps(campaign: Campaign) -> None:
    step = campaign.steps[0]
    first = [variant_for("test", step, lead) for lead in range(1, 8001)]
    assert first == [variant_for("test", step, lead) for lead in range(1, 8001)]
    shares = Counter(first)
    assert abs(shares["b"] / 8000 - 0.75) < 0.02
    # other steps added, removed or reordered: the experiment id is campaign/step only
    edited = campaign.model_copy(update={"steps": (campaign.steps[1], step)})
    assert [variant_for(edited.key, edited.steps[1], lead) for lead in range(1, 8001)] == first
    assert variant_for("test", campaign.steps[1], 5) is None  # no variants: the step itself


def test_holdout_share_and_independence_from_variants(campaign: Campaign) -> None:
    held = {lead for lead in range(1, 10_001) if arm_for(campaign, lead) == HOLDOUT}
    assert abs(len(held) / 10_000 - 0.2) < 0.015
    on_b = Counter(variant_for("test", campaign.steps[0], lead) for lead in held)
    assert abs(on_b["b"] / len(held) - 0.75) < 0.04  # the two draws are independent
    assert arm_for(campaign.model_copy(update={"holdout": 0.0}), 1) is None


def _state(lead_id: int, active: ActiveEnrollment | None = None) -> LeadState:
    facts = LeadFacts(
        lifecycle_stage="lead",
        country="GB",
        industry="software",
        seniority="manager",
        company_size=10,
        score=0,
        last_active_at=START,
    )
    return LeadState(
        lead_id=lead_id,
        facts=facts,
        has_email=True,
        has_phone=False,
        whatsapp_consent=False,
        segment=None,
        active=active,
        past_campaigns=frozenset({"test"} if active else ()),
        in_sales_hands=False,
    )


def _segments() -> SegmentConfig:
    return SegmentConfig.model_validate(
        {"rules": [{"segment": "all", "campaign": "test", "when": {}}]}
    )


def test_the_planner_enrolls_holdouts_without_touches_and_moves_variant_days(
    campaign: Campaign,
) -> None:
    held = next(lead for lead in range(1, 500) if arm_for(campaign, lead) == HOLDOUT)
    on_b = next(
        lead
        for lead in range(1, 500)
        if arm_for(campaign, lead) is None and variant_for("test", campaign.steps[0], lead) == "b"
    )
    on_a = next(
        lead
        for lead in range(1, 500)
        if arm_for(campaign, lead) is None and variant_for("test", campaign.steps[0], lead) == "a"
    )
    kwargs = {"segments": _segments(), "campaigns": {"test": campaign}, "now": START}
    plan = plan_lead(_state(held), enrolled_campaigns={}, **kwargs)  # type: ignore[arg-type]
    assert plan.enroll_campaign == "test" and plan.enroll_arm == HOLDOUT and plan.touches == []
    plan = plan_lead(_state(on_a), enrolled_campaigns={}, **kwargs)  # type: ignore[arg-type]
    assert [(t.step, t.variant, t.due_at) for t in plan.touches] == [("day-1", "a", START)]
    assert plan_lead(_state(on_b), enrolled_campaigns={}, **kwargs).touches == []  # type: ignore[arg-type]
    enrolled = ActiveEnrollment(1, "test", 9, START, frozenset(), 0)
    day3 = START + timedelta(days=2)
    later = plan_lead(
        _state(on_b, enrolled),  # type: ignore[arg-type]
        segments=_segments(),
        campaigns={"test": campaign},
        enrolled_campaigns={9: campaign},
        now=day3,
    )
    assert [(t.step, t.variant, t.step_day, t.due_at) for t in later.touches] == [
        ("day-1", "b", 3, day3)
    ]
    holdout = ActiveEnrollment(2, "test", 9, START, frozenset(), 0, arm=HOLDOUT)
    late = START + timedelta(days=31)
    ended = plan_lead(
        _state(held, holdout),  # type: ignore[arg-type]
        segments=_segments(),
        campaigns={"test": campaign},
        enrolled_campaigns={9: campaign},
        now=late,
    )
    assert ended.touches == [] and ended.complete
    assert next_step_due(campaign, START, START + timedelta(hours=1)) == day3


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("      - key: b\n        weight: 3\n        day: 3\n", "", 9, "at least two variants"),
        ("key: b\n", "key: a\n", 9, "['a'] used twice"),
        ("day: 3\n", "day: 31\n", 15, "after the 30-day cycle"),
        (
            "weight: 1\n      - key: b\n        weight: 3",
            "weight: 0\n      - key: b\n        weight: 0",
            9,
            "a weight above 0",
        ),
        ("holdout: 0.2\n", "holdout: 0.6\n", 3, "holdout"),
        ("key: b\n", "key: B!\n", 13, "variants.1.key"),
        ("    name: Second\n", "    name: Second\n    metric: clicked\n", 19, "no variants"),
        ("    name: First\n", "    name: First\n    metric: opened\n", 8, "metric"),
    ],
)
def test_mistakes_name_the_line(tmp_path: Path, old: str, new: str, line: int, words: str) -> None:
    assert old in CAMPAIGN
    err = error_for(write(tmp_path, CAMPAIGN.replace(old, new, 1)))
    assert err.line == line, err
    assert words in str(err)


def test_a_campaign_without_experiments_keeps_its_checksum(tmp_path: Path) -> None:
    plain = CAMPAIGN.replace("holdout: 0.2\n", "")
    start = plain.index("    variants:")
    plain = plain[:start] + plain[plain.index("  - key: day-10") :]
    campaign = load_campaign(write(tmp_path, plain))
    again = load_campaign(write(tmp_path, plain.replace("cycle_days: 30\n", "")))
    assert campaign.checksum() == again.checksum()  # defaults only
    assert campaign.checksum() != load_campaign(write(tmp_path, CAMPAIGN, "b")).checksum()


def test_promote_prints_the_edit_and_writes_it_only_when_asked(tmp_path: Path) -> None:
    path = write(tmp_path, CAMPAIGN)
    edit = promotion(path, "day-1", "b")
    assert path.read_text() == CAMPAIGN
    assert "- key: a\n        weight: 0\n      - key: b\n        weight: 1\n" in edit.after
    assert edit.diff.startswith(f"--- {path}\n+++ {path}\n")
    assert edit.after.count("\n") == CAMPAIGN.count("\n")  # only the weights changed
    assert "# the control" in edit.after  # comments kept
    edit.write()
    promoted = load_campaign(path)
    assert [v.weight for v in promoted.steps[0].variants] == [0, 1]
    assert {variant_for("test", promoted.steps[0], lead) for lead in range(1, 300)} == {"b"}
    assert promotion(path, "day-1", "b").diff == ""
    no_weights = write(tmp_path, CAMPAIGN.replace("        weight: 1\n", ""), "c")
    assert "+        weight: 0\n" in promotion(no_weights, "day-1", "b").diff
    with pytest.raises(ConfigError, match="no variant 'z'"):
        promotion(path, "day-1", "z")
    with pytest.raises(ConfigError, match="has no variants"):
        promotion(path, "day-10", "a")


def test_the_engagement_model_is_seeded_and_per_variant(tmp_path: Path) -> None:
    path = tmp_path / "engagement.yaml"
    path.write_text(
        "seed: 3\ndefault: {open: 0.2}\nsteps:\n"
        "  test/day-1/b: {open: 0.5, click: 0.5, reply: 0.5}\n"
    )
    model = load_engagement_model(path)
    touches = [
        SimpleNamespace(lead_id=n, campaign="test", step="day-1", variant=v, channel=c)
        for n in range(2000)
        for v, c in (("a", "email"), ("b", "email"), ("b", "whatsapp"))
    ]
    answers = [reaction(model, touch) for touch in touches]
    assert answers == [reaction(model, touch) for touch in touches]
    on_a = [r for r, t in zip(answers, touches, strict=True) if t.variant == "a"]
    on_b = [r for r, t in zip(answers, touches, strict=True) if t.variant == "b"]
    assert not any(r.clicked for r in on_a) and abs(sum(r.opened for r in on_a) / 2000 - 0.2) < 0.03
    assert all(r.opened for r in on_b if r.clicked)
    assert abs(sum(r.clicked for r in on_b) / 4000 - 0.5) < 0.03
    assert not any(r.replied for r, t in zip(answers, touches, strict=True) if t.channel == "email")
    path.write_text("seed: 3\ndefault: {open: 1.5}\n")
    with pytest.raises(ConfigError) as info:
        load_engagement_model(path)
    assert info.value.line == 2 and "default.open" in str(info.value)
