"""Validate and normalise one incoming lead record, whatever source it came from.

`normalise_record` returns either a clean `LeadRecord` or the list of reason codes that
send the record to quarantine. It never raises on bad data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import timezone as phone_timezone

from leadops.core.clock import parse_instant
from leadops.intake.places import country_code, country_zones, is_known_timezone
from leadops.models import LifecycleStage
from leadops.models.properties import PropertiesConfig

# Reason codes; stable strings that reports and `leadops quarantine` group by.
INVALID_EMAIL = "invalid_email"
INVALID_PHONE = "invalid_phone"
MISSING_CONTACT = "missing_contact"
INVALID_STAGE = "invalid_lifecycle_stage"
UNKNOWN_TIMEZONE = "unknown_timezone"
INVALID_COUNTRY = "invalid_country"
INVALID_CREATED_AT = "invalid_created_at"
INVALID_CONSENT = "invalid_consent"
INVALID_COMPANY_SIZE = "invalid_company_size"
FIELD_TOO_LONG = "field_too_long"
DUPLICATE = "duplicate"
INVALID_CHARACTERS = "invalid_characters"
UNKNOWN_PROPERTY = "unknown_property"
INVALID_PROPERTY = "invalid_property"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
MAX_ISSUE_CHARS = 10_000
MAX_COMPANY_SIZE = 10_000_000

TRUE_WORDS = frozenset({"true", "yes", "y", "1", "opted-in", "opt-in", "on"})
FALSE_WORDS = frozenset({"false", "no", "n", "0", "", "opted-out", "opt-out", "off"})
FIELD_LIMITS = {
    "first_name": 100,
    "last_name": 100,
    "company": 200,
    "job_title": 200,
    "industry": 100,
    "source": 100,
    "crm_id": 64,
}

SENIORITY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("c_level", re.compile(r"\b(ceo|cto|cfo|coo|cmo|cio|cro|chief|founder|owner|president)\b")),
    ("vp", re.compile(r"\b(vp|svp|evp|vice president)\b")),
    ("director", re.compile(r"\b(director|head of|head)\b")),
    ("manager", re.compile(r"\b(manager|lead|principal)\b")),
    ("intern", re.compile(r"\b(intern|trainee|student)\b")),
)


@dataclass
class LeadRecord:
    """A validated, normalised lead, ready to be inserted or merged."""

    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    job_title: str | None = None
    seniority: str | None = None
    company_size: int | None = None
    industry: str | None = None
    country: str | None = None
    timezone: str = "UTC"
    lifecycle_stage: str = LifecycleStage.LEAD
    source: str | None = None
    crm_id: str | None = None
    email_consent: bool = False
    whatsapp_consent: bool = False
    sms_consent: bool = False
    created_at: datetime | None = None
    properties: dict[str, Any] | None = None  # declared custom properties, read by type


@dataclass(frozen=True)
class FieldIssue:
    """A field whose value failed validation; the record was imported without it."""

    field: str
    value: str | None  # as the source gave it
    reason: str
    detail: str


@dataclass
class Outcome:
    """A LeadRecord (`record`), perhaps with flagged fields (`issues`), or None with the
    reasons that send the whole record to quarantine."""

    record: LeadRecord | None
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    issues: list[FieldIssue] = field(default_factory=list)

    def reject(self, reason: str, detail: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)
        self.details.append(detail)

    def flag(self, name: str, value: object, reason: str, detail: str) -> None:
        text = None if value is None else str(value)[:MAX_ISSUE_CHARS]
        self.issues.append(FieldIssue(name, text, reason, detail))


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


NAME_PARTICLE = re.compile(r"\b(O|D)'(\w)")
STAGES = frozenset(s.value for s in LifecycleStage)
STAGE_LIST = ", ".join(s.value for s in LifecycleStage)


def tidy_name(value: object) -> str | None:
    """Trim and collapse spaces; fix ALL-CAPS or all-lower names, keep mixed case as given."""
    text = _clean(value)
    if text is None:
        return None
    if text.isupper() or text.islower():
        text = "-".join(part[:1].upper() + part[1:].lower() for part in text.split("-"))
        text = " ".join(word[:1].upper() + word[1:] for word in text.split(" "))
        if "'" in text:
            text = NAME_PARTICLE.sub(lambda m: f"{m.group(1)}'{m.group(2).upper()}", text)
    return text


def seniority_of(job_title: str | None) -> str | None:
    if not job_title:
        return None
    lowered = job_title.lower()
    for level, pattern in SENIORITY_PATTERNS:
        if pattern.search(lowered):
            return level
    return "individual"


def parse_bool(value: object) -> bool | None:
    """true/false, yes/no, 1/0 (blank is false); None when it is none of those."""
    text = (_clean(value) or "").lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    return None


def parse_company_size(value: object) -> int | None:
    """An employee count: `240`, `1,200`, `51-200` (lower bound), `1000+`. Raises ValueError."""
    text = (_clean(value) or "").replace(",", "").replace(" ", "")
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,9})(?:\+|-\d{1,9})?", text)
    if not match or int(match.group(1)) > MAX_COMPANY_SIZE:
        raise ValueError(
            f"company_size {str(value)[:100]!r} is not a number up to {MAX_COMPANY_SIZE:,} "
            "or a range like 51-200"
        )
    return int(match.group(1))


# A plain ASCII dot-atom local part: the common case, checked here without the full parser.
SIMPLE_LOCAL_PART = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str | None:
    """The normalised domain (email-validator's rules), or None when it is not valid."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def normalise_email(value: object) -> str:
    """The canonical form used for dedupe: validated syntax, lower-cased. Raises ValueError.

    email-validator decides; a plain ASCII local part with an already-validated domain
    takes a cached shortcut that gives the same answer (most lists repeat few domains)."""
    text = _clean(value)
    if text is None:
        raise ValueError("empty email")
    local, at, domain = text.rpartition("@")
    if at and len(local) <= 64 and len(text) <= 254 and SIMPLE_LOCAL_PART.fullmatch(local):
        normalised = _domain(domain)
        if normalised is not None and len(local) + 1 + len(normalised) <= 254:
            return f"{local}@{normalised}".lower()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return result.normalized.lower()


def normalise_phone(value: object, region: str) -> phonenumbers.PhoneNumber:
    text = _clean(value)
    if text is None:
        raise ValueError("empty phone")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(str(exc)) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{text!r} is not a valid phone number for region {region}")
    return number


@lru_cache(maxsize=8192)
def _phone_facts(text: str, region: str) -> tuple[str, str | None, tuple[str, ...]]:
    """(E.164, region of the number, its known time zones). Raises ValueError."""
    number = normalise_phone(text, region)
    zones = tuple(z for z in phone_timezone.time_zones_for_number(number) if is_known_timezone(z))
    return (
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.region_code_for_number(number),
        zones,
    )


def _zone_for(country: str | None, zones: tuple[str, ...]) -> str | None:
    if zones:
        canonical = country_zones().get(country or "", [])
        # phonenumbers may use old names (Asia/Calcutta); keep only current zone.tab names.
        if len(zones) == 1 and (zones[0] in canonical or not canonical):
            return zones[0]
    if country and country in country_zones():
        return country_zones()[country][0]
    return None


@dataclass
class _Fields:
    """A raw record's fields as validation reads them; problems go on `outcome`."""

    raw: dict[str, object]
    outcome: Outcome
    garbled: set[str]  # fields with control characters

    @classmethod
    def of(cls, raw: dict[str, object], outcome: Outcome) -> _Fields:
        garbled = {
            name
            for name, value in raw.items()
            if isinstance(value, str) and CONTROL_CHARACTERS.search(value)
        }
        return cls(raw, outcome, garbled)

    def given(self, name: str) -> str | None:
        """The field's cleaned text; None (and flagged) when it has control characters."""
        if name in self.garbled:
            self.outcome.flag(
                name, self.raw.get(name), INVALID_CHARACTERS, f"{name} contains control characters"
            )
            return None
        return _clean(self.raw.get(name))


def _contact(fields: _Fields, record: LeadRecord, default_region: str) -> tuple[str, ...]:
    """Country, email and phone (the phone read in the lead's country, else the default
    region; a country left unknown is the number's). Returns the number's time zones."""
    outcome, raw = fields.outcome, fields.raw
    country = None
    country_text = fields.given("country")
    if country_text is not None:
        country = country_code(country_text)
        if country is None:
            outcome.flag(
                "country",
                raw.get("country"),
                INVALID_COUNTRY,
                f"country {country_text[:100]!r} is not an ISO 3166 alpha-2 code or country name",
            )
    record.country = country

    email = fields.given("email")
    if email:
        try:
            record.email = normalise_email(email)
        except ValueError as exc:
            outcome.flag("email", raw.get("email"), INVALID_EMAIL, f"email {email[:100]!r}: {exc}")

    phone = fields.given("phone")
    zones: tuple[str, ...] = ()
    if phone:
        try:
            record.phone, number_region, zones = _phone_facts(phone, country or default_region)
            if record.country is None:
                record.country = number_region
        except ValueError as exc:
            outcome.flag("phone", raw.get("phone"), INVALID_PHONE, f"phone {phone[:100]!r}: {exc}")
    return zones


def _identity_and_firmographics(fields: _Fields, record: LeadRecord) -> None:
    """The length-limited text fields (names, company, job title, industry, source, CRM
    id), then seniority (from the job title) and company size."""
    for name, limit in FIELD_LIMITS.items():
        value = tidy_name(fields.given(name)) if name.endswith("_name") else fields.given(name)
        if value is not None and len(value) > limit:
            fields.outcome.flag(
                name,
                fields.raw.get(name),
                FIELD_TOO_LONG,
                f"{name} is {len(value)} characters (max {limit})",
            )
            value = None
        setattr(record, name, value)
    record.seniority = seniority_of(record.job_title)

    try:
        record.company_size = parse_company_size(fields.given("company_size"))
    except ValueError as exc:
        fields.outcome.flag(
            "company_size", fields.raw.get("company_size"), INVALID_COMPANY_SIZE, str(exc)
        )


def _stage(fields: _Fields, record: LeadRecord) -> None:
    """The lifecycle stage (blank: lead); one that cannot be read refuses the record."""
    stage_text = _clean(fields.raw.get("lifecycle_stage"))
    stage = (stage_text or LifecycleStage.LEAD).lower()
    if stage not in STAGES or "lifecycle_stage" in fields.garbled:
        fields.outcome.reject(
            INVALID_STAGE, f"lifecycle_stage {stage[:100]!r} is not one of {STAGE_LIST}"
        )
    record.lifecycle_stage = stage


def _time_zone(
    fields: _Fields, record: LeadRecord, zones: tuple[str, ...], default_timezone: str
) -> None:
    """The time zone given, else the phone number's or the country's, else the default."""
    zone = fields.given("timezone")
    if zone is not None and not is_known_timezone(zone):
        fields.outcome.flag(
            "timezone",
            fields.raw.get("timezone"),
            UNKNOWN_TIMEZONE,
            f"timezone {zone[:100]!r} is not an IANA time zone",
        )
        zone = None
    record.timezone = zone or _zone_for(record.country, zones) or default_timezone


def _consent(fields: _Fields, record: LeadRecord) -> None:
    """Email, WhatsApp and SMS consent; a value that cannot be read refuses the record."""
    raw = fields.raw
    for channel in ("email_consent", "whatsapp_consent", "sms_consent"):
        consent = parse_bool(raw.get(channel))
        if consent is None or channel in fields.garbled:
            fields.outcome.reject(
                INVALID_CONSENT, f"{channel} {str(raw.get(channel))[:100]!r} is not true/false"
            )
            consent = False
        setattr(record, channel, consent)
    if record.phone is None:  # WhatsApp and SMS consent need a number to message
        record.whatsapp_consent = record.sms_consent = False


def _created_at(fields: _Fields, record: LeadRecord, now: datetime) -> None:
    """The creation time given (ISO 8601), else `now`."""
    created = fields.given("created_at")
    record.created_at = now
    if created is not None:
        try:
            record.created_at = parse_instant(created)
        except (ValueError, OverflowError):
            fields.outcome.flag(
                "created_at",
                fields.raw.get("created_at"),
                INVALID_CREATED_AT,
                f"created_at {created[:100]!r} is not an ISO 8601 time; imported as now",
            )


def _custom_properties(
    fields: _Fields, record: LeadRecord, declared: PropertiesConfig | None
) -> None:
    """The properties.NAME fields: each declared property read by its type; an undeclared
    one, or a value its type refuses, is flagged (and never stored)."""
    values: dict[str, Any] = {}
    for key in fields.raw:
        if not key.startswith("properties."):
            continue
        name = key.split(".", 1)[1]
        definition = declared.get(name) if declared is not None else None
        if definition is None:
            detail = f"{name[:64]!r} is not a declared property (config/properties.yaml)"
            fields.outcome.flag(key[:64], fields.raw.get(key), UNKNOWN_PROPERTY, detail)
            continue
        try:
            value = definition.read(fields.given(key))
        except ValueError as exc:
            fields.outcome.flag(key, fields.raw.get(key), INVALID_PROPERTY, str(exc))
            continue
        if value is not None:
            values[name] = value
    record.properties = values or None


def normalise_record(
    raw: dict[str, object],
    *,
    default_region: str,
    default_timezone: str,
    now: datetime,
    properties: PropertiesConfig | None = None,
) -> Outcome:
    """Validate one raw record (canonical column names) into a LeadRecord or reasons.

    A bad optional field (country, time zone, company size, an over-long text, a bad
    creation time) or a bad email or phone next to a usable one is flagged on the outcome
    and left out of the record: the lead is imported for the channels it can be reached
    on. The whole record is refused when no channel is usable, or when the stage or a
    consent value cannot be read (guessing either could message someone who opted out).
    `properties` are the declared custom properties the record's properties.NAME fields
    may set.
    """
    outcome = Outcome(record=None)
    record = LeadRecord()
    fields = _Fields.of(raw, outcome)
    zones = _contact(fields, record, default_region)
    _identity_and_firmographics(fields, record)
    _stage(fields, record)
    _time_zone(fields, record, zones, default_timezone)
    _consent(fields, record)
    _created_at(fields, record, now)
    _custom_properties(fields, record, properties)

    no_channel = record.email is None and record.phone is None
    if no_channel and not any(i.field in ("email", "phone") for i in outcome.issues):
        outcome.reject(MISSING_CONTACT, "neither email nor phone is given")
    if outcome.reasons or no_channel:
        for issue in outcome.issues:  # refused whole: every problem is a reason
            outcome.reject(issue.reason, issue.detail)
        outcome.issues = []
        return outcome
    outcome.record = record
    return outcome
