"""Scoring rules (config/scoring.yaml): fit, engagement with caps, decay and thresholds.

Pure functions only; `leadops.engagement.apply` and `leadops.engagement.ledger` apply them
to the database and write the score ledger (one row per change, decay included, the score
is the sum).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadops.core.configfile import load_model
from leadops.models.events import EventType
from leadops.models.properties import PropertyTests, check_tests, load_properties, property_mismatch
from leadops.models.vocab import FUNNEL_ORDER, Band, LifecycleStage
from leadops.providers.sendgrid.inbound_parse import inbound_email_event
from leadops.providers.twilio.events import fold_keyword, twilio_inbound_event

ENGAGEMENT_RULES = frozenset(
    {
        "subscribe",
        "email_open",
        "email_open_machine",
        "email_click",
        "whatsapp_read",
        "pricing_page",
        "reply",
        "demo_requested",
        "contact_request",
        "trial_started",
        "appointment_booked",
        "appointment_cancelled",
        "no_opens",
        "unsubscribe",
    }
)
SUPPRESSION_EVENTS = frozenset(
    {
        "unsubscribe",
        "group_unsubscribe",
        "spamreport",
        "bounce",
        "dropped",
        "whatsapp_opt_out",
        "email_opt_out",
        "invalid_number",
        "sms_opt_out",
    }
)
Scope = Literal["email", "whatsapp", "sms", "all"]

# Stages scoring may move a lead out of, and the stages it may move a lead into.
PROMOTABLE = frozenset({LifecycleStage.SUBSCRIBER, LifecycleStage.LEAD, LifecycleStage.RECYCLED})


class FitConditions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seniority: tuple[str, ...] | None = None
    industry: tuple[str, ...] | None = None
    country: tuple[str, ...] | None = None
    company_size_at_least: int | None = Field(default=None, ge=0)
    company_size_below: int | None = Field(default=None, ge=1)
    properties: PropertyTests | None = None  # custom properties (config/properties.yaml)


class FitRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=50)
    points: int
    when: FitConditions


class Cap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_points: int = Field(ge=0)
    per_days: int = Field(ge=1)


class EngagementRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    points: int
    caps: tuple[Cap, ...] = ()


class Decay(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inactive_after_days: float = Field(default=14, ge=0)
    half_life_days: float = Field(default=30, gt=0)


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mql: int
    sql: int

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.sql <= self.mql:
            raise ValueError(f"sql threshold ({self.sql}) must be above mql ({self.mql})")
        return self


FitLetter = Literal["A", "B", "C"]
EngagementDigit = Literal["1", "2"]
DEFAULT_FIT_GRADES: dict[FitLetter, int] = {"A": 30, "B": 20, "C": 10}
DEFAULT_ENGAGEMENT_GRADES: dict[EngagementDigit, int] = {"1": 40, "2": 15}


class Grades(BaseModel):
    """Fit and engagement kept apart: a fit letter (A best, D below every threshold) and an
    engagement digit (1 best, 3 below every threshold), each on its own points."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fit: dict[FitLetter, int] = Field(default_factory=lambda: dict(DEFAULT_FIT_GRADES))
    engagement: dict[EngagementDigit, int] = Field(
        default_factory=lambda: dict(DEFAULT_ENGAGEMENT_GRADES)
    )

    @field_validator("engagement", mode="before")
    @classmethod
    def _digits(cls, value: object) -> object:
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _ordered(self) -> Grades:
        for name, levels in (("fit", self.fit), ("engagement", self.engagement)):
            points = [p for _, p in sorted(levels.items())]
            if points != sorted(set(points), reverse=True):
                raise ValueError(f"{name}: each level needs more points than the next")
        return self


GRADE = re.compile(r"^[A-D][1-3]$")


class Bands(BaseModel):
    """Which grades are hot and which warm; every other grade is cold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hot: tuple[str, ...] = ("A1", "A2", "B1")
    warm: tuple[str, ...] = ("A3", "B2", "C1", "C2")

    @model_validator(mode="after")
    def _grades(self) -> Bands:
        for name in ("hot", "warm"):
            for index, grade in enumerate(getattr(self, name)):
                if not GRADE.match(grade):
                    raise ValueError(f"{name}.{index}: {grade!r} is not a grade (A1 to D3)")
        both = sorted(set(self.hot) & set(self.warm))
        if both:
            raise ValueError(f"warm: {', '.join(both)} is listed under hot too")
        return self


class SqlGate(BaseModel):
    """What a lead needs besides the sql score to become an SQL (a hand-raise needs none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    properties: PropertyTests | None = None


class ScoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fit: tuple[FitRule, ...] = ()
    engagement: dict[str, EngagementRule]
    no_opens_days: int = Field(default=30, ge=1)
    decay: Decay = Field(default_factory=Decay)
    thresholds: Thresholds
    hand_raise: tuple[str, ...] = ("demo_requested", "contact_request", "reply")
    sql_gate: SqlGate = Field(default_factory=SqlGate)
    grades: Grades = Field(default_factory=Grades)
    bands: Bands = Field(default_factory=Bands)
    # Engagement rules that are product use: the lead becomes a PQL (lead status).
    pql_events: tuple[str, ...] = ("trial_started",)
    pricing_url_patterns: tuple[str, ...] = ()
    opt_out_keywords: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    opt_in_keywords: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    suppression: dict[str, Scope] = Field(default_factory=dict)
    invalid_number_error_codes: tuple[int, ...] = ()

    @field_validator("engagement")
    @classmethod
    def _known_rules(cls, value: dict[str, EngagementRule]) -> dict[str, EngagementRule]:
        unknown = sorted(set(value) - ENGAGEMENT_RULES)
        if unknown:
            known = ", ".join(sorted(ENGAGEMENT_RULES))
            raise ValueError(f"unknown engagement rule(s) {unknown}; known: {known}")
        return value

    @field_validator("suppression")
    @classmethod
    def _known_suppressions(cls, value: dict[str, Scope]) -> dict[str, Scope]:
        unknown = sorted(set(value) - SUPPRESSION_EVENTS)
        if unknown:
            raise ValueError(
                f"unknown suppression event(s) {unknown}; known: "
                f"{', '.join(sorted(SUPPRESSION_EVENTS))}"
            )
        # An opt-out by email reply always suppresses email, and an SMS STOP always SMS, in
        # a scoring.yaml older than they are too; `all` stops every channel.
        return {"email_opt_out": "email", "sms_opt_out": "sms", **value}

    @field_validator("hand_raise", "pql_events")
    @classmethod
    def _known_hand_raises(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - ENGAGEMENT_RULES)
        if unknown:
            raise ValueError(f"unknown engagement rule(s) {unknown}")
        return value

    @field_validator("pricing_url_patterns")
    @classmethod
    def _valid_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _unique_fit_rules(self) -> ScoringConfig:
        names = [rule.rule for rule in self.fit]
        if len(set(names)) != len(names):
            raise ValueError(f"fit rule names must be unique, got {names}")
        return self


def load_scoring(config_dir: Path) -> ScoringConfig:
    """Load and check config/scoring.yaml, its property tests against
    config/properties.yaml (errors name the file and line)."""
    path = config_dir / "scoring.yaml"
    config = load_model(path, ScoringConfig)
    tests: list[tuple[tuple[int | str, ...], PropertyTests | None]] = [
        (("fit", index, "when", "properties"), rule.when.properties)
        for index, rule in enumerate(config.fit)
    ]
    tests.append((("sql_gate", "properties"), config.sql_gate.properties))
    check_tests(path, load_properties(config_dir), tests)
    return config


# -- fit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitFacts:
    seniority: str | None
    industry: str | None
    country: str | None
    company_size: int | None
    properties: Mapping[str, Any] | None = None


def _within(value: str | None, allowed: tuple[str, ...] | None) -> bool:
    if allowed is None:
        return True
    return value is not None and value.lower() in {item.lower() for item in allowed}


def fit_matches(when: FitConditions, lead: FitFacts) -> bool:
    if not (_within(lead.seniority, when.seniority) and _within(lead.industry, when.industry)):
        return False
    if not _within(lead.country, when.country):
        return False
    if property_mismatch(when.properties, lead.properties) is not None:
        return False
    if when.company_size_at_least is not None and (
        lead.company_size is None or lead.company_size < when.company_size_at_least
    ):
        return False
    return not (
        when.company_size_below is not None
        and (lead.company_size is None or lead.company_size >= when.company_size_below)
    )


def fit_points(config: ScoringConfig, lead: FitFacts) -> dict[str, int]:
    """The fit rules this lead matches, with their points."""
    return {rule.rule: rule.points for rule in config.fit if fit_matches(rule.when, lead)}


def fit_adjustments(desired: dict[str, int], recorded: dict[str, int]) -> dict[str, int]:
    """Ledger rows (rule -> points) that bring the recorded fit sums to the desired ones."""
    changes = {}
    for rule in sorted(set(desired) | set(recorded)):
        delta = desired.get(rule, 0) - recorded.get(rule, 0)
        if delta:
            changes[rule] = delta
    return changes


# -- engagement --------------------------------------------------------------------------


@dataclass(frozen=True)
class Award:
    points: int
    note: str  # why the points differ from the rule's, or ""


def capped(rule: EngagementRule, history: Sequence[tuple[datetime, int]], at: datetime) -> Award:
    """Points an event at `at` earns, given the rule's earlier (event time, points) rows.

    Each cap limits the sum of the rule's points inside any window of `per_days` days
    ending at the event; negative rules are never capped.
    """
    points = rule.points
    if points <= 0 or not rule.caps:
        return Award(points, "")
    note = ""
    for cap in rule.caps:
        start = at - timedelta(days=cap.per_days)
        used = sum(p for when, p in history if start < when <= at)
        room = max(0, cap.max_points - used)
        if room < points:
            points = room
            note = f"cap {cap.max_points} per {cap.per_days} days reached"
    return Award(points, note)


def decay_delta(
    *, balance: int, base: int, last_active: datetime, now: datetime, decay: Decay
) -> int:
    """The decay row that brings the engagement `balance` to its decayed value now.

    `base` is the engagement balance right after the lead's last engagement event at
    `last_active`; after `inactive_after_days` it halves every `half_life_days`. Only a
    positive base decays; the result is never positive (decay only takes points away).
    """
    if base <= 0:
        return 0
    idle_days = (now - last_active).total_seconds() / 86400 - decay.inactive_after_days
    if idle_days <= 0:
        return 0
    target = math.floor(base * 0.5 ** (idle_days / decay.half_life_days) + 0.5)
    return min(0, target - balance)


# -- grade and band ------------------------------------------------------------------------


def grade_of(grades: Grades, fit: int, engagement: int) -> str:
    """The grade of these fit and engagement points: fit letter A-D, engagement digit 1-3."""
    letter = next((k for k, p in sorted(grades.fit.items()) if fit >= p), "D")
    digit = next((k for k, p in sorted(grades.engagement.items()) if engagement >= p), "3")
    return f"{letter}{digit}"


def band_of(bands: Bands, grade: str) -> Band:
    """hot, warm or cold, by the grade."""
    if grade in bands.hot:
        return Band.HOT
    return Band.WARM if grade in bands.warm else Band.COLD


# -- stages ------------------------------------------------------------------------------


def sql_gate_mismatch(config: ScoringConfig, properties: Mapping[str, Any] | None) -> str | None:
    """What keeps a lead with the sql score from SQL (the gate's first failed test), or None."""
    return property_mismatch(config.sql_gate.properties, properties)


def next_stage(
    current: str, score: int, thresholds: Thresholds, *, gated: bool = False
) -> str | None:
    """The stage the score moves a lead to, or None. Leads only move forward, and only
    out of subscriber, lead, recycled or mql; sales stages are left to sales. A `gated`
    lead (the SQL gate holds it back) goes no further than mql."""
    if current not in PROMOTABLE and current != LifecycleStage.MQL:
        return None
    if score >= thresholds.sql and not gated:
        target = LifecycleStage.SQL
    elif score >= thresholds.mql:
        target = LifecycleStage.MQL
    else:
        return None
    if FUNNEL_ORDER[target] <= FUNNEL_ORDER.get(current, 0):
        return None
    return target.value


# -- content checks ----------------------------------------------------------------------


def is_pricing_url(config: ScoringConfig, url: str) -> bool:
    return any(re.search(pattern, url, re.IGNORECASE) for pattern in config.pricing_url_patterns)


def classify_inbound(config: ScoringConfig, params: Mapping[str, Any]) -> EventType:
    """An inbound WhatsApp message or SMS (its form fields) is an opt-out, an opt-in or a
    reply by this config's keywords (on SMS, Twilio's own keywords too, and HELP)."""
    return twilio_inbound_event(
        params, _keyword_set(config.opt_out_keywords), _keyword_set(config.opt_in_keywords)
    )


def classify_inbound_email(
    config: ScoringConfig, kind: str, payload: Mapping[str, Any]
) -> EventType:
    """An email to the inbound domain is an opt-out (by this config's opt-out keywords), a
    reply, or nothing to apply (an automatic reply, a bounce). Opt-in keywords do not
    apply to email: "Yes" in an email is a reply."""
    return inbound_email_event(kind, payload, _keyword_set(config.opt_out_keywords))


def _keyword_set(groups: dict[str, tuple[str, ...]]) -> frozenset[str]:
    return frozenset(fold_keyword(word) for words in groups.values() for word in words)


def channels_of(scope: Scope) -> tuple[str, ...]:
    return ("email", "whatsapp", "sms") if scope == "all" else (scope,)


@dataclass(frozen=True)
class Reason:
    """One rule behind a score, with the points it contributes."""

    rule: str
    points: int

    def __str__(self) -> str:
        return f"{self.rule} {self.points:+d}"

    def item(self) -> dict[str, Any]:
        """As escalation stores a reason: {"reason": rule, "points": n}."""
        return {"reason": self.rule, "points": self.points}


def top_reasons(breakdown: Iterable[tuple[str, int]], limit: int = 3) -> list[Reason]:
    """The rules that contribute the most points, strongest first."""
    ranked = sorted(((rule, pts) for rule, pts in breakdown if pts > 0), key=lambda r: -r[1])
    return [Reason(rule, pts) for rule, pts in ranked[:limit]]
