"""Segments: which campaign a lead belongs in, by funnel stage, fit and activity.

Rules come from config/segments.yaml and are tried top to bottom; the first match wins.
A lead no rule matches (a customer, an unsubscribed lead) is in no campaign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadops.core.configfile import ConfigError, line_of, load_model, read_yaml
from leadops.models.vocab import LifecycleStage


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


def _matches(when: Conditions, lead: LeadFacts, now: datetime, *, check_inactivity: bool) -> bool:
    def within(value: str | None, allowed: tuple[str, ...] | None) -> bool:
        if allowed is None:
            return True
        return value is not None and value.lower() in {item.lower() for item in allowed}

    if not within(lead.lifecycle_stage, when.lifecycle_stage):
        return False
    if not (within(lead.country, when.country) and within(lead.industry, when.industry)):
        return False
    if not within(lead.seniority, when.seniority):
        return False
    if when.company_size_at_least is not None and (
        lead.company_size is None or lead.company_size < when.company_size_at_least
    ):
        return False
    if when.company_size_below is not None and (
        lead.company_size is None or lead.company_size >= when.company_size_below
    ):
        return False
    if when.score_at_least is not None and lead.score < when.score_at_least:
        return False
    if check_inactivity and when.inactive_days_at_least is not None:
        return now - lead.last_active_at >= timedelta(days=when.inactive_days_at_least)
    return True


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
    path = config_dir / "segments.yaml"
    config = load_model(path, SegmentConfig)
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
