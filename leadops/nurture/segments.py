"""Segments: which campaign a lead belongs in, by funnel stage, fit and activity.

Rules come from config/segments.yaml and are tried top to bottom; the first match wins.
A lead no rule matches (a customer, an unsubscribed lead) is in no campaign. Besides the
lead's fields, a rule may look at the lead's `source` (e.g. `csv:crm-export`, `web-form:demo`)
and the `form` that brought the lead in (its first web-form submission: the lead magnet).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement, select
from sqlmodel import Session

from leadops.core.configfile import ConfigError, line_of, load_model, read_yaml
from leadops.models import FORM_SUBMISSIONS
from leadops.models.properties import PropertyTests, check_tests, load_properties, property_mismatch
from leadops.models.vocab import Band, LifecycleStage

_LISTED = ("lifecycle_stage", "country", "industry", "seniority", "source", "form", "grade", "band")


class Conditions(BaseModel):
    """All given conditions must hold (an empty `when` matches every lead)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lifecycle_stage: tuple[LifecycleStage, ...] | None = None
    country: tuple[str, ...] | None = None
    industry: tuple[str, ...] | None = None
    seniority: tuple[str, ...] | None = None
    company_size_at_least: int | None = Field(default=None, ge=0)
    company_size_below: int | None = Field(default=None, ge=1)
    score_at_least: int | None = None
    inactive_days_at_least: int | None = Field(default=None, ge=1)
    source: tuple[str, ...] | None = Field(
        default=None, description="The lead's source, e.g. csv:crm-export or web-form:ebook."
    )
    form: tuple[str, ...] | None = Field(
        default=None,
        description="The form of the lead's first web-form submission (the lead magnet).",
    )
    grade: tuple[str, ...] | None = Field(
        default=None, description="The lead's grade: fit A-D and engagement 1-3, e.g. A1, B2."
    )
    band: tuple[Band, ...] | None = Field(
        default=None, description="The lead's band: hot, warm or cold."
    )
    properties: PropertyTests | None = Field(
        default=None, description="Tests on custom properties (config/properties.yaml)."
    )

    @cached_property
    def listed(self) -> tuple[tuple[str, frozenset[str]], ...]:
        """The list conditions given, each as (lead field, its values lower-cased), worked
        out once: segmentation checks them for every lead."""
        return tuple(
            (name, frozenset(value.lower() for value in allowed))
            for name in _LISTED
            if (allowed := getattr(self, name)) is not None
        )


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    campaign: str
    when: Conditions = Field(default_factory=Conditions)


class SegmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_segments(self) -> SegmentConfig:
        names = [rule.segment for rule in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"segment names must be unique, got {names}")
        return self


@dataclass(frozen=True)
class LeadFacts:
    """What segmentation looks at, detached from the database row."""

    lifecycle_stage: str
    country: str | None
    industry: str | None
    seniority: str | None
    company_size: int | None
    score: int
    last_active_at: datetime
    source: str | None = None
    form: str | None = None  # the form of the lead's first web-form submission
    grade: str | None = None
    band: str | None = None
    properties: dict[str, Any] | None = None

    @classmethod
    def of(cls, lead: Any, form: str | None) -> LeadFacts:
        """The facts of a lead row (the Lead model or a row with its columns); `form` is
        the form of its first web-form submission."""
        return cls(
            lifecycle_stage=lead.lifecycle_stage,
            country=lead.country,
            industry=lead.industry,
            seniority=lead.seniority,
            company_size=lead.company_size,
            score=lead.score,
            last_active_at=lead.last_engaged_at or lead.created_at,
            source=lead.source,
            form=form,
            grade=lead.grade,
            band=lead.band,
            properties=lead.properties,
        )


def _failed(when: Conditions, lead: LeadFacts, now: datetime, check_inactivity: bool) -> str | None:
    """The first condition of `when` the lead fails (its name); None when all hold."""
    for name, allowed in when.listed:
        value = getattr(lead, name)
        if value is None or value.lower() not in allowed:
            return name
    size = lead.company_size
    if when.company_size_at_least is not None and (
        size is None or size < when.company_size_at_least
    ):
        return "company_size_at_least"
    if when.company_size_below is not None and (size is None or size >= when.company_size_below):
        return "company_size_below"
    if when.score_at_least is not None and lead.score < when.score_at_least:
        return "score_at_least"
    if when.properties is not None and property_mismatch(when.properties, lead.properties):
        return "properties"
    days = when.inactive_days_at_least
    if check_inactivity and days is not None and now - lead.last_active_at < timedelta(days):
        return "inactive_days_at_least"
    return None


def mismatch(
    when: Conditions, lead: LeadFacts, now: datetime, *, check_inactivity: bool = True
) -> str | None:
    """The first condition of `when` the lead fails, in words; None when all hold."""
    failed = _failed(when, lead, now, check_inactivity)
    if failed is None:
        return None
    size = lead.company_size
    if failed in _LISTED:
        allowed: tuple[str, ...] = getattr(when, failed)
        return f"{failed} is {getattr(lead, failed)!r}, not one of {', '.join(allowed)}"
    if failed == "company_size_at_least":
        return f"company_size is {size}, below {when.company_size_at_least}"
    if failed == "company_size_below":
        return f"company_size is {size}, not below {when.company_size_below}"
    if failed == "score_at_least":
        return f"score is {lead.score}, below {when.score_at_least}"
    if failed == "properties":
        return property_mismatch(when.properties, lead.properties)
    idle = now - lead.last_active_at
    return f"inactive {idle.days} days, fewer than {when.inactive_days_at_least}"


def _matches(when: Conditions, lead: LeadFacts, now: datetime, *, check_inactivity: bool) -> bool:
    return _failed(when, lead, now, check_inactivity) is None


def choose_rule(
    config: SegmentConfig, lead: LeadFacts, now: datetime, *, active_campaign: str | None
) -> Rule | None:
    """The first rule that matches `lead`.

    Inactivity only starts a new cycle, and never interrupts one: a lead in the middle of
    a sequence skips inactivity rules for other campaigns, and keeps matching the
    inactivity rule of its own campaign for as long as its other conditions hold.
    """
    for rule in config.rules:
        timed = rule.when.inactive_days_at_least is not None
        if timed and active_campaign is not None:
            if rule.campaign == active_campaign and _matches(
                rule.when, lead, now, check_inactivity=False
            ):
                return rule
            continue
        if _matches(rule.when, lead, now, check_inactivity=True):
            return rule
    return None


def load_segments(config_dir: Path, campaign_keys: set[str]) -> SegmentConfig:
    """Load config/segments.yaml and check that every rule names a known campaign."""
    return load_segments_file(config_dir / "segments.yaml", campaign_keys, config_dir)


def load_segments_file(
    path: Path, campaign_keys: set[str], config_dir: Path | None = None
) -> SegmentConfig:
    """Load a segments file (config/segments.yaml or a draft of it) and check its campaigns
    and its property tests (against properties.yaml in `config_dir`, default the file's
    folder)."""
    config = load_model(path, SegmentConfig)
    tests = [
        (("rules", i, "when", "properties"), r.when.properties) for i, r in enumerate(config.rules)
    ]
    check_tests(path, load_properties(config_dir or path.parent), tests)
    for index, rule in enumerate(config.rules):
        if rule.campaign not in campaign_keys:
            _, node = read_yaml(path)
            raise ConfigError(
                path,
                line_of(node, ("rules", index, "campaign")),
                f"rules.{index}.campaign: unknown campaign {rule.campaign!r} "
                f"(known: {', '.join(sorted(campaign_keys))})",
            )
    return config


def first_forms(session: Session, lead_ids: Iterable[int]) -> dict[int, str]:
    """The form of each lead's first web-form submission (the lead magnet), by lead id."""
    return first_forms_where(session, FORM_SUBMISSIONS.c.lead_id.in_(list(lead_ids)))


def first_forms_where(session: Session, leads: ColumnElement[bool]) -> dict[int, str]:
    """first_forms for the leads a condition on form_submissions.lead_id selects (a
    batch's id range, say)."""
    f = FORM_SUBMISSIONS.c
    rows = session.execute(
        select(f.lead_id, f.form)
        .where(leads)
        .order_by(f.lead_id, f.submitted_at.desc(), f.id.desc())
    ).all()
    return {lead_id: form for lead_id, form in rows}  # the earliest one is written last
