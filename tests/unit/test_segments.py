"""Unit tests for leadops.nurture.segments.choose_rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from leadops.nurture.segments import Conditions, LeadFacts, SegmentConfig, choose_rule

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)

CONFIG = SegmentConfig.model_validate(
    {
        "rules": [
            {
                "segment": "enterprise-uk",
                "campaign": "offer",
                "when": {"company_size_at_least": 1000, "country": ["GB", "IE"]},
            },
            {
                "segment": "fintech",
                "campaign": "connect",
                "when": {"industry": ["Finance", "Banking"], "company_size_below": 1000},
            },
            {"segment": "execs", "campaign": "offer", "when": {"seniority": ["c_level"]}},
            {"segment": "hot", "campaign": "connect", "when": {"score_at_least": 50}},
            {"segment": "quiet", "campaign": "re-engage", "when": {"inactive_days_at_least": 30}},
            {"segment": "rest", "campaign": "educate"},
        ]
    }
)


def facts(**overrides: object) -> LeadFacts:
    base = LeadFacts(
        lifecycle_stage="lead",
        country=None,
        industry=None,
        seniority=None,
        company_size=None,
        score=0,
        last_active_at=NOW,
    )
    return replace(base, **overrides)


def segment(lead: LeadFacts, active: str | None = None) -> str | None:
    rule = choose_rule(CONFIG, lead, NOW, active_campaign=active)
    return rule.segment if rule else None


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        (facts(company_size=1000, country="GB"), "enterprise-uk"),
        (facts(company_size=999, country="GB"), "rest"),
        (facts(company_size=5000, country="ie"), "enterprise-uk"),  # case-insensitive
        (facts(company_size=5000, country="US"), "rest"),
        (facts(company_size=None, country="GB"), "rest"),  # unknown size never matches
        (facts(country=None, company_size=5000), "rest"),
        (facts(industry="banking", company_size=10), "fintech"),
        (facts(industry="Banking", company_size=1000), "rest"),  # below is exclusive
        (facts(industry="Banking", company_size=None), "rest"),
        (facts(industry="Retail", company_size=10), "rest"),
        (facts(industry=None), "rest"),
        (facts(seniority="c_level"), "execs"),
        (facts(score=50), "hot"),
        (facts(score=49), "rest"),
        (facts(last_active_at=NOW - timedelta(days=30)), "quiet"),
        (facts(last_active_at=NOW - timedelta(days=29)), "rest"),
    ],
)
def test_first_matching_rule_wins(lead: LeadFacts, expected: str) -> None:
    assert segment(lead) == expected


def test_all_conditions_must_hold_first_rule_beats_later() -> None:
    lead = facts(company_size=2000, country="GB", industry="Finance", score=80)
    assert segment(lead) == "enterprise-uk"


def test_inactivity_rule_skipped_while_in_another_campaign() -> None:
    quiet = facts(last_active_at=NOW - timedelta(days=90))
    assert segment(quiet, active="educate") == "rest"
    assert segment(quiet, active="re-engage") == "quiet"
    # Active again but still enrolled in re-engage: stays.
    assert segment(facts(), active="re-engage") == "quiet"


def test_no_rule_matches_returns_none() -> None:
    config = SegmentConfig.model_validate(
        {"rules": [{"segment": "a", "campaign": "x", "when": {"lifecycle_stage": ["mql"]}}]}
    )
    assert choose_rule(config, facts(), NOW, active_campaign=None) is None


def test_duplicate_segment_names_rejected() -> None:
    with pytest.raises(ValidationError, match="unique"):
        SegmentConfig.model_validate(
            {"rules": [{"segment": "a", "campaign": "x"}, {"segment": "a", "campaign": "y"}]}
        )


LISTED = ("lifecycle_stage", "country", "industry", "seniority", "source", "form", "grade", "band")


def holds(when: Conditions, lead: LeadFacts, now: datetime, timed: bool) -> bool:
    """The conditions' meaning, written out plainly (the oracle of the test below)."""
    from leadops.models.properties import property_mismatch

    for name in LISTED:
        allowed = getattr(when, name)
        value = getattr(lead, name)
        if allowed is not None and (
            value is None or value.lower() not in [a.lower() for a in allowed]
        ):
            return False
    size = lead.company_size
    if when.company_size_at_least is not None and (
        size is None or size < when.company_size_at_least
    ):
        return False
    if when.company_size_below is not None and (size is None or size >= when.company_size_below):
        return False
    if when.score_at_least is not None and lead.score < when.score_at_least:
        return False
    if property_mismatch(when.properties, lead.properties):
        return False
    days = when.inactive_days_at_least
    return not (timed and days is not None and now - lead.last_active_at < timedelta(days=days))


def test_compiled_rules_agree_with_mismatch() -> None:
    """choose_rule's check gives the verdict `mismatch` explains, lead by lead, and both
    mean what the conditions say."""
    from itertools import product

    from leadops.nurture.segments import _matches, mismatch

    conditions = [rule.when for rule in CONFIG.rules] + [
        Conditions.model_validate(
            {
                "lifecycle_stage": ["lead", "mql"],
                "band": ["hot"],
                "source": ["csv:crm"],
                "properties": {"plan": "known"},
            }
        )
    ]
    leads = [
        facts(
            country=country,
            company_size=size,
            score=score,
            last_active_at=NOW - timedelta(days=idle),
            industry=industry,
            band=band,
            source="CSV:crm",
            properties=properties,
        )
        for country, size, score, idle, industry, band, properties in product(
            ("GB", "us", None),
            (None, 999, 1000),
            (0, 50),
            (0, 30),
            ("banking", None),
            ("hot", None),
            ({"plan": "pro"}, None),
        )
    ]
    for when, lead, timed in product(conditions, leads, (True, False)):
        expected = mismatch(when, lead, NOW, check_inactivity=timed) is None
        assert _matches(when, lead, NOW, check_inactivity=timed) is expected
        assert holds(when, lead, NOW, timed) is expected, (when, lead, timed)
