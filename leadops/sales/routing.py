"""Who gets a sales-ready lead: config/routing.yaml and the routing decision.

Rules run in the order the file lists them (default: account owner, territory, industry,
language, weighted round-robin; source and company size tier on request). Only eligible
reps are ever chosen: active, inside their
own working hours and under their capacity of open escalations. The account owner wins
when eligible; each match rule then narrows the pool to the reps that match (a rule that
matches nobody is passed over); weighted round-robin picks among what is left: the rep with
the fewest recent assignments relative to their weight (with `performance:` on, the
weight scaled by leadops.sales.performance). No eligible rep: the fallback queue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from leadops.core.clock import known_timezone
from leadops.core.configfile import load_model
from leadops.core.settings import WEEKDAY_NAMES
from leadops.models.properties import PropertyTests, check_tests, load_properties, property_mismatch
from leadops.models.vocab import Band
from leadops.sales.performance import Factor, PerformanceConfig
from leadops.sales.triggers import NOT_HAND_RAISES, raised_on

_MATCH = ("territory", "industry", "language", "grade", "band", "properties")
MATCH_RULES = (*_MATCH, "source", "size_tier")
RULES = ("account_owner", *MATCH_RULES, "round_robin")
DEFAULT_RULES = ("account_owner", "territory", "industry", "language", "round_robin")
NotifyChannel = Literal["email", "whatsapp", "sms", "slack"]
# The hand-off intro's channels: email, WhatsApp, or the channel the hand was raised on.
IntroChannel = Literal["email", "whatsapp", "raised_on"]
HTTP_URL = re.compile(r"^https?://[^\s/?#]+\.[^\s/?#]+[^\s]*$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ENV_REF = re.compile(r"^env:([A-Z_][A-Z0-9_]*)$")
DEFAULT_PERSONAL_DOMAINS = (  # noqa: SIM905
    "gmail.com googlemail.com yahoo.com hotmail.com outlook.com live.com icloud.com me.com "
    "aol.com proton.me protonmail.com gmx.de gmx.net web.de"
).split()

_EMAIL_ONLY: list[NotifyChannel] = ["email"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Strict):
    """Someone who is notified: a rep, the manager or the fallback queue."""

    name: str = Field(min_length=1, max_length=100)
    email: str | None = Field(default=None, max_length=320)
    whatsapp: str | None = None
    sms: str | None = None  # a mobile number (E.164) for text messages
    # An environment variable holding the Slack incoming-webhook URL (a secret), as env:NAME.
    slack_webhook_url: str | None = None
    notify: list[NotifyChannel] = Field(default_factory=lambda: _EMAIL_ONLY.copy(), min_length=1)
    timezone: str = "UTC"  # times in their messages, and a rep's working hours
    # For the lead's hand-off intro (a rep or the fallback queue): a line about them, and
    # where the lead books a meeting with them.
    about: str | None = Field(default=None, min_length=1, max_length=300)
    booking_url: str | None = Field(default=None, max_length=500)

    @field_validator("booking_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not HTTP_URL.match(value):
            raise ValueError(f"{value!r} is not an http(s) link such as https://cal.example/ana")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return known_timezone(value)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("whatsapp", "sms")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not E164.match(value):
            raise ValueError(f"{value!r} is not an E.164 number such as +447700900123")
        return value

    @field_validator("slack_webhook_url")
    @classmethod
    def _slack(cls, value: str | None) -> str | None:
        if value is not None and not ENV_REF.match(value):
            raise ValueError(
                "a Slack webhook URL is a secret: put it in an environment variable and "
                "write env:VARIABLE_NAME here"
            )
        return value

    @model_validator(mode="after")
    def _reachable(self) -> Contact:
        needs = {
            "email": self.email,
            "whatsapp": self.whatsapp,
            "sms": self.sms,
            "slack": self.slack_webhook_url,
        }
        for index, channel in enumerate(self.notify):
            if not needs[channel]:
                field = "slack_webhook_url" if channel == "slack" else channel
                raise ValueError(f"notify.{index}: notify by {channel} needs {field}")
        return self

    @property
    def slack_env(self) -> str | None:
        match = ENV_REF.match(self.slack_webhook_url or "")
        return match.group(1) if match else None


class WorkingHours(_Strict):
    start: time = time(9, 0)
    end: time = time(17, 30)
    days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = [day.lower()[:3] for day in value]
        bad = [day for day, short in zip(value, days, strict=True) if short not in WEEKDAY_NAMES]
        if bad:
            raise ValueError(f"unknown weekday(s) {bad}; use {', '.join(WEEKDAY_NAMES)}")
        if not days:
            raise ValueError("at least one working day is needed")
        return days

    @model_validator(mode="after")
    def _order(self) -> WorkingHours:
        if self.start >= self.end:
            raise ValueError("end: working hours must end after they start")
        return self

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(WEEKDAY_NAMES.index(day) for day in self.days)


class Rep(Contact):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    territories: list[str] = Field(default_factory=list)
    industries: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    # The rep takes leads of these grades (A1 to D3) / bands, or whose custom properties
    # pass these tests (the grade, band and properties rules).
    grades: list[Annotated[str, StringConstraints(pattern=r"^[A-D][1-3]$")]] = Field(
        default_factory=list
    )
    bands: list[Band] = Field(default_factory=list)
    properties: PropertyTests | None = None
    sources: list[str] = Field(default_factory=list)  # lead sources (the source rule)
    size_tiers: list[str] = Field(default_factory=list)  # size_tiers: names (size_tier rule)
    weight: int = Field(default=1, ge=1, le=100)
    capacity: int = Field(default=10, ge=1)
    hours: WorkingHours = Field(default_factory=WorkingHours)
    active: bool = True

    @field_validator("industries", "languages", "sources")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [item.strip().lower() for item in value]


DEFAULT_INTRO_CHANNELS: list[IntroChannel] = ["raised_on", "email"]
TierName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
TriggerName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
IntroChannels = Annotated[list[IntroChannel], Field(min_length=1)]


class IntroConfig(_Strict):
    """Which escalations send the lead the hand-off intro, and on which channels in order
    (the first the contact policy allows is used). Without `triggers`, every hand-raise
    (not sql_threshold, imported_sql or retry_due) sends it on the channel the hand was
    raised on, else by email."""

    triggers: dict[TriggerName, IntroChannels] | None = None

    def channels(self, trigger: str) -> list[str]:
        """The intro's channels for an escalation's trigger, in order; empty: no intro."""
        if self.triggers is None:
            wanted = [] if trigger in NOT_HAND_RAISES else DEFAULT_INTRO_CHANNELS
        else:
            wanted = self.triggers.get(trigger, [])
        ordered: list[str] = []
        for channel in wanted:
            name = raised_on(trigger) if channel == "raised_on" else channel
            if name not in ordered:
                ordered.append(name)
        return ordered


class RoutingConfig(_Strict):
    sla_minutes: int = Field(default=15, ge=1, le=7 * 24 * 60)
    max_reroutes: int = Field(default=2, ge=0, le=20)
    balance_days: int = Field(default=30, ge=1, le=365)
    rules: list[str] = Field(default_factory=lambda: list(DEFAULT_RULES))
    regions: dict[str, list[str]] = Field(default_factory=dict)
    country_languages: dict[str, str] = Field(default_factory=dict)
    default_language: str = "en"
    accounts: dict[str, str] = Field(default_factory=dict)
    personal_domains: list[str] = Field(default_factory=lambda: list(DEFAULT_PERSONAL_DOMAINS))
    manager: Contact
    fallback_queue: Contact
    reps: list[Rep] = Field(min_length=1)
    intro: IntroConfig = Field(default_factory=IntroConfig)
    # Company size tiers: name -> least employee count (a lead gets the highest it reaches).
    size_tiers: dict[TierName, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)

    @field_validator("rules")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        for index, rule in enumerate(value):
            if rule not in RULES:
                raise ValueError(f"rule {index} {rule!r} is unknown; use {', '.join(RULES)}")
        if len(set(value)) != len(value):
            raise ValueError("a rule is listed twice")
        if not value or value[-1] != "round_robin":
            raise ValueError("the last rule must be round_robin")
        return value

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {
            name: [country.upper() for country in countries] for name, countries in value.items()
        }

    @field_validator("country_languages")
    @classmethod
    def _languages(cls, value: dict[str, str]) -> dict[str, str]:
        return {country.upper(): language.lower() for country, language in value.items()}

    @field_validator("accounts", "personal_domains", mode="after")
    @classmethod
    def _domains(cls, value: object) -> object:
        if isinstance(value, dict):
            return {domain.lower(): rep for domain, rep in value.items()}
        if isinstance(value, list):
            return [domain.lower() for domain in value]
        return value

    @model_validator(mode="after")
    def _references(self) -> RoutingConfig:
        keys = [rep.key for rep in self.reps]
        for index, key in enumerate(keys):
            if keys.index(key) != index:
                raise ValueError(f"reps.{index}.key: rep key {key!r} is used twice")
        for index, rep in enumerate(self.reps):
            for position, territory in enumerate(rep.territories):
                if territory not in self.regions and not re.fullmatch(r"[A-Z]{2}", territory):
                    raise ValueError(
                        f"reps.{index}.territories.{position}: {territory!r} is neither a "
                        "country code (ISO 3166 alpha-2, upper case) nor a region under regions:"
                    )
        for index, rep in enumerate(self.reps):
            for position, tier in enumerate(rep.size_tiers):
                if tier not in self.size_tiers:
                    raise ValueError(
                        f"reps.{index}.size_tiers.{position}: {tier!r} is not a tier under "
                        "size_tiers:"
                    )
        for domain, rep_key in self.accounts.items():
            if rep_key not in keys:
                raise ValueError(f"accounts.{domain}: unknown rep {rep_key!r}")
        return self

    def rep(self, key: str) -> Rep:
        for rep in self.reps:
            if rep.key == key:
                return rep
        raise KeyError(f"no rep {key!r} in routing.yaml")

    def countries_of(self, rep: Rep) -> frozenset[str]:
        countries: set[str] = set()
        for territory in rep.territories:
            countries.update(self.regions.get(territory, [territory]))
        return frozenset(countries)

    def size_tier_of(self, employees: int | None) -> str | None:
        """The size tier of a company of `employees` (None: unknown, below every tier)."""
        if employees is None:
            return None
        reached = [(m, t) for t, m in self.size_tiers.items() if employees >= m]
        return max(reached)[1] if reached else None

    def language_of(self, country: str | None) -> str:
        return self.country_languages.get((country or "").upper(), self.default_language)

    def account_domain(self, email: str | None) -> str | None:
        """The company domain of an email address; None for free-mail domains."""
        if not email or "@" not in email:
            return None
        domain = email.rsplit("@", 1)[1].strip().lower()
        return None if domain in self.personal_domains else domain


def load_routing(path: Path, config_dir: Path | None = None) -> RoutingConfig:
    """Load and validate routing.yaml (the reps' property tests against properties.yaml
    in `config_dir`, default the file's folder); errors are ConfigError naming file and
    line."""
    config = load_model(path, RoutingConfig)
    tests = [(("reps", i, "properties"), rep.properties) for i, rep in enumerate(config.reps)]
    check_tests(path, load_properties(config_dir or path.parent), tests)
    return config


# -- working hours ------------------------------------------------------------------------


def in_working_hours(rep: Rep, now: datetime) -> bool:
    local = now.astimezone(rep.zone)
    return local.weekday() in rep.hours.weekdays and rep.hours.start <= local.time() < rep.hours.end


def _periods(rep: Rep, start: datetime) -> list[tuple[datetime, datetime]]:
    """Working periods (UTC) from the day of `start` for the next 15 days."""
    local = start.astimezone(rep.zone)
    periods = []
    for offset in range(15):
        day = (local + timedelta(days=offset)).date()
        if day.weekday() not in rep.hours.weekdays:
            continue
        begin = datetime.combine(day, rep.hours.start, tzinfo=rep.zone)
        end = datetime.combine(day, rep.hours.end, tzinfo=rep.zone)
        periods.append((begin.astimezone(start.tzinfo), end.astimezone(start.tzinfo)))
    return periods


def add_working_minutes(rep: Rep, start: datetime, minutes: int) -> datetime:
    """The moment `minutes` of the rep's working time have passed after `start`."""
    remaining = timedelta(minutes=minutes)
    for begin, end in _periods(rep, start):
        if end <= start:
            continue
        begin = max(begin, start)
        if end - begin >= remaining:
            return begin + remaining
        remaining -= end - begin
    raise ValueError(f"rep {rep.key} has no working time in the next two weeks")


# -- the decision -------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadProfile:
    """What routing looks at."""

    account_domain: str | None
    country: str | None
    industry: str | None
    language: str
    grade: str | None = None
    band: str | None = None
    properties: Mapping[str, Any] | None = None
    source: str | None = None
    size_tier: str | None = None  # from the company size and size_tiers:


@dataclass(frozen=True)
class Loads:
    """Per rep: open escalations, assignments in the balance window, weight factors."""

    open: Mapping[str, int]
    recent: Mapping[str, int]
    performance: Mapping[str, Factor] | None = None

    def weight(self, rep: Rep) -> float:
        factor = (self.performance or {}).get(rep.key)
        return rep.weight * (factor.factor if factor else 1.0)


@dataclass(frozen=True)
class RouteDecision:
    rep: Rep | None  # None: the fallback queue
    rule: str  # account_owner, territory+industry, round_robin, fallback...
    detail: str


def ineligible_reason(rep: Rep, now: datetime, loads: Loads) -> str | None:
    if not rep.active:
        return "inactive"
    if not in_working_hours(rep, now):
        return "outside working hours"
    if loads.open.get(rep.key, 0) >= rep.capacity:
        return f"at capacity ({rep.capacity} open)"
    return None


def _matches(config: RoutingConfig, rep: Rep, rule: str, lead: LeadProfile) -> bool:
    if rule == "territory":
        return bool(lead.country) and (lead.country or "").upper() in config.countries_of(rep)
    if rule == "industry":
        return bool(lead.industry) and (lead.industry or "").strip().lower() in rep.industries
    if rule == "language":
        return lead.language in rep.languages
    if rule == "grade":
        return lead.grade is not None and lead.grade in rep.grades
    if rule == "band":
        return lead.band is not None and lead.band in rep.bands
    if rule == "properties":
        tests = rep.properties
        return tests is not None and property_mismatch(tests, lead.properties) is None
    if rule in ("source", "size_tier"):
        value = (getattr(lead, rule) or "").strip().lower()
        return bool(value) and value in getattr(rep, f"{rule}s")
    raise ValueError(rule)


def route(
    config: RoutingConfig,
    lead: LeadProfile,
    *,
    now: datetime,
    loads: Loads,
    owner: str | None = None,
    exclude: Set[str] = frozenset(),
) -> RouteDecision:
    """Choose a rep for `lead` at `now`. `owner` is the rep who last held the lead's
    company (a rep named under `accounts:` wins over it); `exclude` reps already tried."""
    unavailable: dict[str, str] = {}
    pool: list[Rep] = []
    for rep in config.reps:
        why = "already tried" if rep.key in exclude else ineligible_reason(rep, now, loads)
        if why is None:
            pool.append(rep)
        else:
            unavailable[rep.key] = why
    if not pool:
        skipped = "; ".join(f"{key}: {why}" for key, why in unavailable.items())
        return RouteDecision(None, "fallback", f"no eligible rep ({skipped})")

    matched: list[str] = []
    for rule in config.rules:
        if rule == "account_owner":
            owner = config.accounts.get(lead.account_domain or "") or owner  # named first
            if owner is None:
                continue
            chosen = next((rep for rep in pool if rep.key == owner), None)
            if chosen is not None:
                return RouteDecision(chosen, "account_owner", f"owns {lead.account_domain}")
            why = unavailable.get(owner, "not in routing.yaml")
            matched.append(f"owner {owner} unavailable: {why}")
        elif rule in MATCH_RULES:
            narrowed = [rep for rep in pool if _matches(config, rep, rule, lead)]
            if narrowed:
                pool = narrowed
                matched.append(rule)
        else:  # round_robin, always last
            order = {rep.key: index for index, rep in enumerate(config.reps)}
            chosen = min(
                pool,
                key=lambda rep: (
                    loads.recent.get(rep.key, 0) / loads.weight(rep),
                    -loads.weight(rep),
                    order[rep.key],
                ),
            )
            names = [name for name in matched if not name.startswith("owner")]
            rule_name = "+".join(names) if names else "round_robin"
            notes = [name for name in matched if name.startswith("owner")]
            detail = f"weighted round-robin among {', '.join(rep.key for rep in pool)}"
            if loads.performance is not None:
                detail += "; performance weights " + "; ".join(
                    _weight_note(rep, loads) for rep in pool
                )
            return RouteDecision(chosen, rule_name, "; ".join([*notes, detail]))
    raise AssertionError("the rules always end with round_robin")


def _weight_note(rep: Rep, loads: Loads) -> str:
    factor = (loads.performance or {}).get(rep.key)
    return f"{rep.key} {rep.weight}->{loads.weight(rep):.2f} ({factor.note if factor else 'x1.00'})"
