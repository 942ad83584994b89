"""Segment conditions on `source` and `form` (the lead magnet), and mismatch() in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadops.nurture.segments import Conditions, LeadFacts, SegmentConfig, choose_rule, mismatch

NOW = datetime(2026, 12, 10, 9, tzinfo=UTC)

CONFIG = SegmentConfig.model_validate(
    {
        "rules": [
            {"segment": "ebook", "campaign": "offer", "when": {"form": ["ebook-download"]}},
            {"segment": "crm", "campaign": "connect", "when": {"source": ["csv:crm-export"]}},
            {"segment": "rest", "campaign": "educate", "when": {"lifecycle_stage": ["lead"]}},
        ]
    }
)


def _facts(*, source: str | None = None, form: str | None = None, stage: str = "lead") -> LeadFacts:
    return LeadFacts(
        lifecycle_stage=stage,
        country="DE",
        industry=None,
        seniority=None,
        company_size=40,
        score=5,
        last_active_at=NOW - timedelta(days=3),
        source=source,
        form=form,
    )


def _segment(lead: LeadFacts) -> str | None:
    rule = choose_rule(CONFIG, lead, NOW, active_campaign=None)
    return rule.segment if rule else None


def test_form_and_source_conditions_pick_the_campaign() -> None:
    assert _segment(_facts(form="ebook-download", source="web-form:ebook")) == "ebook"
    assert _segment(_facts(form="EBOOK-download")) == "ebook"  # case-insensitive
    assert _segment(_facts(source="csv:crm-export")) == "crm"
    assert _segment(_facts(source="csv:crm-export", form="demo")) == "crm"
    assert _segment(_facts(source="csv:other")) == "rest"
    assert _segment(_facts(stage="customer")) is None  # no form, no source: no match


def test_mismatch_names_the_first_failed_condition() -> None:
    lead = _facts(source="csv:other")
    assert mismatch(CONFIG.rules[0].when, lead, NOW) == "form is None, not one of ebook-download"
    assert mismatch(CONFIG.rules[1].when, lead, NOW) == (
        "source is 'csv:other', not one of csv:crm-export"
    )
    assert mismatch(CONFIG.rules[2].when, lead, NOW) is None
    when = Conditions(company_size_at_least=100, inactive_days_at_least=30)
    assert mismatch(when, lead, NOW) == "company_size is 40, below 100"
    quiet = Conditions(inactive_days_at_least=30)
    assert mismatch(quiet, lead, NOW) == "inactive 3 days, fewer than 30"
    assert mismatch(quiet, lead, NOW, check_inactivity=False) is None
