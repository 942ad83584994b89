"""Campaigns as files: config/campaigns/<key>.yaml, validated and versioned by content."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func
from sqlmodel import Session, col, select

from leadops.core.configfile import ConfigError, load_model
from leadops.core.settings import WEEKDAY_NAMES
from leadops.delivery.conditions import Condition, Goal, WaitFor
from leadops.delivery.policy import SendWindow
from leadops.delivery.utm import UtmConfig
from leadops.models import CampaignPause, CampaignVersion, Channel

CAMPAIGN_KEY_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")


def check_whatsapp_template(value: dict[str, Any]) -> dict[str, Any]:
    """`content_sid` (an approved template, HX + 32 hex) and its `content_variables`,
    each a Jinja expression over the template context, e.g. "{{ lead.first_name }}"."""
    unknown = set(value) - {"content_sid", "content_variables"}
    if unknown:
        raise ValueError(f"unknown whatsapp key(s) {sorted(unknown)}")
    sid = value.get("content_sid")
    if sid is not None and not (isinstance(sid, str) and CONTENT_SID.fullmatch(sid)):
        raise ValueError(f"content_sid {sid!r} is not a Twilio ContentSid (HX + 32 hex)")
    variables = value.get("content_variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str | int) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ValueError("content_variables must map names to template strings")
    if variables and sid is None:
        raise ValueError("content_variables given without a content_sid")
    return value


# What an experiment counts as success for each lead who got the step: a click on one of
# its emails, a WhatsApp reply to it, or the campaign's goal (never an open: privacy
# proxies open emails nobody read).
ExperimentMetric = Literal["clicked", "replied", "goal"]


class Variant(BaseModel):
    """One arm of a step's A/B test: its own templates (templates/email/<campaign>/
    <step>.<variant>.<part>.j2, each part falling back to the step's), and optionally
    its own send day and WhatsApp template. The first variant is the control."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=CAMPAIGN_KEY_PATTERN, max_length=32)
    weight: int = Field(default=1, ge=0, le=1000)  # 0: no new lead gets it (promoted away)
    name: str = ""
    day: int | None = Field(default=None, ge=1)
    whatsapp: dict[str, Any] | None = None

    @field_validator("whatsapp")
    @classmethod
    def _whatsapp_template(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_whatsapp_template(value)


class Step(BaseModel):
    """One message of a sequence: sent on `day` of the cycle on each of `channels`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=CAMPAIGN_KEY_PATTERN, max_length=64)
    day: int = Field(ge=1)
    name: str
    channels: tuple[Channel, ...] = Field(min_length=1)
    whatsapp: dict[str, Any] = Field(default_factory=dict)
    # An A/B test of this step (leadops.nurture.experiments): two or more variants with
    # weights, judged on `metric` (default: clicked when the step has email, else replied).
    variants: tuple[Variant, ...] = ()
    metric: ExperimentMetric | None = None
    # Behaviour rules (leadops.delivery.conditions): sent only `when` the condition holds
    # and not if `unless` holds, else skipped; `wait_for` an event until the step's day.
    when: Condition | None = Field(default=None, description="sent only when this holds")
    unless: Condition | None = Field(default=None, description="skipped when this holds")
    wait_for: WaitFor | None = Field(
        default=None, description="sent after this event, at the latest on the step's day"
    )

    def rules(self) -> str:
        """The step's behaviour rules in words (empty: none)."""
        parts = [
            f"{name} {rule.describe()}"
            for name, rule in (("when", self.when), ("unless", self.unless))
            if rule is not None
        ]
        if self.wait_for is not None:
            parts.append(f"wait_for {self.wait_for.describe_wait()}")
        return "; ".join(parts)

    @field_validator("whatsapp")
    @classmethod
    def _whatsapp_template(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_whatsapp_template(value)

    @field_validator("channels")
    @classmethod
    def _no_repeats(cls, value: tuple[Channel, ...]) -> tuple[Channel, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: tuple[Variant, ...]) -> tuple[Variant, ...]:
        if len(value) == 1:
            raise ValueError("an A/B test needs at least two variants (the first is the control)")
        keys = [variant.key for variant in value]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(f"variant keys must be unique, {repeated} used twice")
        if value and not any(variant.weight for variant in value):
            raise ValueError("at least one variant needs a weight above 0")
        return value

    @model_validator(mode="after")
    def _metric_needs_variants(self) -> Step:
        if self.metric is not None and not self.variants:
            raise ValueError("metric: a metric is set but the step has no variants")
        return self

    def variant(self, key: str | None) -> Variant | None:
        """The variant `key` of this step (None for None: the step itself)."""
        if key is None:
            return None
        for variant in self.variants:
            if variant.key == key:
                return variant
        raise KeyError(f"step {self.key!r} has no variant {key!r}")

    def day_of(self, variant: str | None) -> int:
        """The send day of the step for a lead on `variant`."""
        chosen = self.variant(variant)
        return chosen.day if chosen is not None and chosen.day is not None else self.day

    def whatsapp_of(self, variant: str | None) -> dict[str, Any]:
        """The WhatsApp template of the step for a lead on `variant`."""
        chosen = self.variant(variant)
        return chosen.whatsapp if chosen is not None and chosen.whatsapp else self.whatsapp

    @property
    def experiment_metric(self) -> ExperimentMetric:
        if self.metric is not None:
            return self.metric
        return "clicked" if Channel.EMAIL in self.channels else "replied"


class SendHours(BaseModel):
    """Local hours [start, end) a campaign's messages may go out (the lead's time zone)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> SendHours:
        if self.start >= self.end:
            raise ValueError("send_window.start must be before send_window.end")
        return self


# The calendar keys of a campaign: left out of its checksum while unset, so a campaign
# file without them keeps the version it had before they existed.
CALENDAR_KEYS = ("starts_at", "ends_at", "blackout_dates", "send_days", "send_window")
# Optional keys of a campaign and of its steps, left out of the checksum while unset (the
# same reason as the calendar keys).
OPTIONAL_CAMPAIGN_KEYS = ("goal",)
OPTIONAL_STEP_KEYS = ("when", "unless", "wait_for")


class Campaign(BaseModel):
    """A sequence of steps over a cycle of `cycle_days` days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=CAMPAIGN_KEY_PATTERN, max_length=64)
    name: str
    description: str = ""
    cycle_days: int = Field(default=30, ge=1, le=365)
    links: dict[str, str] = Field(default_factory=dict)
    steps: tuple[Step, ...] = Field(min_length=1)
    # UTM tags on `links` (leadops.delivery.utm); on by default.
    utm: UtmConfig = Field(default_factory=UtmConfig)
    # A lead that finishes this campaign without engaging during it is sunset: marketing
    # suppressed on every channel (reason `sunset`) until it engages again.
    sunset: bool = False

    # The calendar: leads enroll from `starts_at` until before `ends_at` (enrollments in
    # flight at the end finish their steps); nothing goes out on a blackout date (a date
    # in the lead's time zone, like the send window); `send_days` and `send_window`
    # replace the settings' send_weekdays and send_window_start/end for this campaign.
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    blackout_dates: tuple[date, ...] = ()
    send_days: tuple[str, ...] | None = None
    send_window: SendHours | None = None
    # The share of enrolling leads held out (enrolled with arm "holdout", sent nothing),
    # to measure the lift of the whole campaign (leadops.nurture.experiments).
    holdout: float = Field(default=0.0, ge=0.0, le=0.5)
    # The campaign ends for a lead when its goal happens (leadops.delivery.conditions).
    goal: Goal | None = Field(default=None, description="the campaign ends when it happens")

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _utc_instant(cls, value: Any) -> Any:
        """A date means its midnight UTC; a time without a zone is UTC."""
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, time(0), tzinfo=UTC)
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    @field_validator("send_days")
    @classmethod
    def _known_days(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        days = tuple(day.lower()[:3] for day in value)
        bad = [day for day, short in zip(value, days, strict=True) if short not in WEEKDAY_NAMES]
        if bad:
            raise ValueError(f"unknown weekday(s) {bad}; use {', '.join(WEEKDAY_NAMES)}")
        if not days:
            raise ValueError("send_days needs at least one day")
        return days

    @model_validator(mode="after")
    def _dates_in_order(self) -> Campaign:
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("ends_at: the campaign must end after it starts")
        return self

    def enrolls_at(self, now: datetime) -> bool:
        """Whether leads may enroll at `now` (inside starts_at .. ends_at)."""
        if self.starts_at is not None and now < self.starts_at:
            return False
        return self.ends_at is None or now < self.ends_at

    def send_window_from(self, default: SendWindow) -> SendWindow:
        """The settings' window with this campaign's own days, hours and blackouts."""
        hours = self.send_window
        days = default.weekdays
        if self.send_days is not None:
            days = frozenset(WEEKDAY_NAMES.index(day) for day in self.send_days)
        return SendWindow(
            start=hours.start if hours else default.start,
            end=hours.end if hours else default.end,
            weekdays=days,
            blackouts=default.blackouts | frozenset(self.blackout_dates),
        )

    @model_validator(mode="after")
    def _steps_fit_the_cycle(self) -> Campaign:
        # Messages start with the offending field's path so the loader can name its line.
        seen: set[str] = set()
        for index, step in enumerate(self.steps):
            if step.key in seen:
                raise ValueError(
                    f"steps.{index}.key: step keys must be unique, {step.key!r} is used twice"
                )
            seen.add(step.key)
            if step.day > self.cycle_days:
                raise ValueError(
                    f"steps.{index}.day: step {step.key!r} is on day {step.day}, "
                    f"after the {self.cycle_days}-day cycle"
                )
            if index and step.day < self.steps[index - 1].day:
                raise ValueError(f"steps.{index}.day: steps must be in day order")
            for number, variant in enumerate(step.variants):
                if variant.day is not None and variant.day > self.cycle_days:
                    raise ValueError(
                        f"steps.{index}.variants.{number}.day: variant {variant.key!r} is on "
                        f"day {variant.day}, after the {self.cycle_days}-day cycle"
                    )
            for rule in OPTIONAL_STEP_KEYS:
                condition = getattr(step, rule)
                for name in ("opened", "clicked"):
                    key = getattr(condition, name, None)
                    if key is not None and key not in seen - {step.key}:
                        raise ValueError(
                            f"steps.{index}.{rule}.{name}: {key!r} is not an earlier step "
                            f"of this campaign (a condition looks at steps before it)"
                        )
        return self

    def has_rules(self) -> bool:
        """Whether a step has a condition or a wait, or the campaign a goal."""
        return self.goal is not None or any(
            getattr(step, key) is not None for step in self.steps for key in OPTIONAL_STEP_KEYS
        )

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(f"campaign {self.key!r} has no step {key!r}")

    def checksum(self) -> str:
        data = self.model_dump(mode="json")
        for key in CALENDAR_KEYS + OPTIONAL_CAMPAIGN_KEYS:
            if data[key] in (None, []):
                del data[key]
        for step in data["steps"]:
            for key in OPTIONAL_STEP_KEYS:
                if step[key] is None:
                    del step[key]
        if self.utm == UtmConfig():  # a campaign without a `utm:` block keeps its checksum
            del data["utm"]
        if not self.holdout:  # the same for a campaign without experiments
            del data["holdout"]
        for step in data["steps"]:
            if not step["variants"] and step["metric"] is None:
                del step["variants"], step["metric"]
        if not self.sunset:  # nor one without `sunset: true`
            del data["sunset"]
        canonical = json.dumps(data, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_campaign(path: Path) -> Campaign:
    """Load one campaign file; its key is the file name without `.yaml`."""
    campaign = load_model(path, Campaign, defaults={"key": path.stem})
    if campaign.key != path.stem:
        raise ConfigError(path, 1, f"key {campaign.key!r} does not match the file name")
    return campaign


def load_campaigns(config_dir: Path) -> dict[str, Campaign]:
    """Load every config/campaigns/*.yaml; fail on the first invalid file."""
    folder = config_dir / "campaigns"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(folder, None, "no campaign files (*.yaml) found")
    return {campaign.key: campaign for campaign in map(load_campaign, files)}


def whatsapp_steps_without_template(campaigns: dict[str, Campaign]) -> list[str]:
    """The WhatsApp steps (`campaign/step`) that have no approved template (content_sid)."""
    return [
        f"{campaign.key}/{step.key}"
        for campaign in campaigns.values()
        for step in campaign.steps
        if Channel.WHATSAPP in step.channels and not step.whatsapp.get("content_sid")
    ]


def register_versions(
    session: Session, campaigns: dict[str, Campaign], now: datetime
) -> dict[str, CampaignVersion]:
    """Record each campaign's current content as a version (new only when it changed)."""
    current: dict[str, CampaignVersion] = {}
    for key, campaign in campaigns.items():
        checksum = campaign.checksum()
        existing = session.exec(
            select(CampaignVersion).where(
                col(CampaignVersion.campaign) == key, col(CampaignVersion.checksum) == checksum
            )
        ).one_or_none()
        if existing is None:
            latest = session.exec(
                select(func.max(CampaignVersion.version)).where(
                    col(CampaignVersion.campaign) == key
                )
            ).one()
            existing = CampaignVersion(
                campaign=key,
                version=(latest or 0) + 1,
                checksum=checksum,
                definition=campaign.model_dump(mode="json"),
                created_at=now,
            )
            session.add(existing)
            session.flush()
        current[key] = existing
    return current


def open_pauses(session: Session, now: datetime) -> dict[str, CampaignPause]:
    """The campaigns paused at `now` (not resumed yet), by key."""
    pauses = session.exec(
        select(CampaignPause).where(
            col(CampaignPause.resumed_at).is_(None), col(CampaignPause.paused_at) <= now
        )
    )
    return {pause.campaign: pause for pause in pauses}


def campaign_of(version: CampaignVersion) -> Campaign:
    """The campaign exactly as it was stored for `version`."""
    return Campaign.model_validate(version.definition)


class StoredCampaigns:
    """Stored campaign versions by id, loaded once each (what enrollments follow)."""

    def __init__(self) -> None:
        self._by_id: dict[int, Campaign] = {}

    def get(self, session: Session, version_id: int) -> Campaign:
        if version_id not in self._by_id:
            version = session.get(CampaignVersion, version_id)
            if version is None:
                raise LookupError(f"campaign version {version_id} is missing from the database")
            self._by_id[version_id] = campaign_of(version)
        return self._by_id[version_id]

    def loaded(self) -> dict[int, Campaign]:
        return self._by_id
