"""Unit tests for leadops.intake.validate.normalise_record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadops.intake import validate as v

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def norm(**raw: object) -> v.Outcome:
    return v.normalise_record(raw, default_region="US", default_timezone="UTC", now=NOW)


def ok(**raw: object) -> v.LeadRecord:
    outcome = norm(**raw)
    assert outcome.reasons == [], outcome.details
    assert outcome.record is not None
    return outcome.record


def test_email_lower_cased_and_trimmed() -> None:
    assert ok(email="  John.Doe@Example.COM ").email == "john.doe@example.com"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"email": "not-an-email"}, v.INVALID_EMAIL),
        ({"email": "a@b@c.com"}, v.INVALID_EMAIL),
        ({"phone": "12"}, v.INVALID_PHONE),
        ({"email": "not-an-email", "phone": "call me"}, v.INVALID_PHONE),
        ({}, v.MISSING_CONTACT),
        ({"email": "", "phone": " "}, v.MISSING_CONTACT),
        ({"email": "a@b.co", "lifecycle_stage": "prospect"}, v.INVALID_STAGE),
        ({"email": "a@b.co", "email_consent": "maybe"}, v.INVALID_CONSENT),
        ({"email": "a@b.co", "whatsapp_consent": "withdrawn"}, v.INVALID_CONSENT),
        ({"email": "a\x01@b.co"}, v.INVALID_CHARACTERS),
    ],
)
def test_records_refused_whole(raw: dict[str, object], reason: str) -> None:
    """No usable channel, or a stage or consent that cannot be read: quarantined whole."""
    outcome = norm(**raw)
    assert reason in outcome.reasons
    assert outcome.record is None
    assert outcome.details
    assert outcome.issues == []


@pytest.mark.parametrize(
    ("raw", "name", "reason"),
    [
        ({"email": "a@b.co", "phone": "12"}, "phone", v.INVALID_PHONE),
        ({"email": "a@b.co", "phone": "call me"}, "phone", v.INVALID_PHONE),
        ({"email": "not-an-email", "phone": "+44 7400 123456"}, "email", v.INVALID_EMAIL),
        ({"email": "a@b.co", "timezone": "Mars/Olympus"}, "timezone", v.UNKNOWN_TIMEZONE),
        ({"email": "a@b.co", "timezone": "EST5EDT-nope"}, "timezone", v.UNKNOWN_TIMEZONE),
        ({"email": "a@b.co", "created_at": "yesterday"}, "created_at", v.INVALID_CREATED_AT),
        (
            {"email": "a@b.co", "created_at": "0001-01-01T00:00+01:00"},
            "created_at",
            v.INVALID_CREATED_AT,
        ),
        ({"email": "a@b.co", "country": "XX"}, "country", v.INVALID_COUNTRY),
        ({"email": "a@b.co", "company_size": "lots"}, "company_size", v.INVALID_COMPANY_SIZE),
        (
            {"email": "a@b.co", "company_size": "99999999999"},
            "company_size",
            v.INVALID_COMPANY_SIZE,
        ),
        ({"email": "a@b.co", "first_name": "x" * 101}, "first_name", v.FIELD_TOO_LONG),
        ({"email": "a@b.co", "company": "Acme\x07"}, "company", v.INVALID_CHARACTERS),
    ],
)
def test_a_bad_field_is_flagged_and_the_lead_kept(
    raw: dict[str, object], name: str, reason: str
) -> None:
    """The record is imported for the channel it can be reached on; the bad value is
    kept on the outcome as given, and left out of the record."""
    outcome = norm(**raw)
    assert outcome.reasons == [] and outcome.record is not None
    [issue] = outcome.issues
    assert (issue.field, issue.reason, issue.value) == (name, reason, str(raw[name]))
    assert issue.detail
    if name in ("timezone",):
        assert outcome.record.timezone == "UTC"  # derived, not the bad value
    elif name == "created_at":
        assert outcome.record.created_at == NOW
    else:
        assert getattr(outcome.record, name) is None


def test_a_flagged_phone_brings_no_whatsapp_consent() -> None:
    outcome = norm(email="a@b.co", phone="12", whatsapp_consent="yes")
    assert outcome.record is not None and outcome.record.whatsapp_consent is False
    assert [i.field for i in outcome.issues] == ["phone"]


def test_reasons_accumulate() -> None:
    outcome = norm(email="bad", lifecycle_stage="nope", created_at="x")
    assert set(outcome.reasons) == {v.INVALID_EMAIL, v.INVALID_STAGE, v.INVALID_CREATED_AT}
    assert outcome.record is None


@pytest.mark.parametrize(
    ("phone", "country", "expected"),
    [
        ("07400 123456", "GB", "+447400123456"),
        ("(212) 555-0134", "US", "+12125550134"),
        ("98123 45678", "IN", "+919812345678"),
        ("+44 7400 123456", None, "+447400123456"),
        ("212-555-0134", None, "+12125550134"),  # default region US
    ],
)
def test_phone_to_e164(phone: str, country: str | None, expected: str) -> None:
    record = ok(email="a@b.co", phone=phone, country=country)
    assert record.phone == expected


def test_country_derived_from_phone() -> None:
    assert ok(phone="+44 7400 123456").country == "GB"


def test_country_upper_cased() -> None:
    assert ok(email="a@b.co", country=" gb ").country == "GB"


@pytest.mark.parametrize(
    ("country", "zone"),
    [("IN", "Asia/Kolkata"), ("GB", "Europe/London"), ("US", "America/New_York")],
)
def test_timezone_from_country_when_blank(country: str, zone: str) -> None:
    assert ok(email="a@b.co", country=country, timezone="").timezone == zone


def test_timezone_default_and_explicit() -> None:
    assert ok(email="a@b.co").timezone == "UTC"
    assert ok(email="a@b.co", country="IN", timezone="Asia/Tokyo").timezone == "Asia/Tokyo"


def test_timezone_from_indian_phone_is_canonical() -> None:
    assert ok(phone="+91 98123 45678").timezone == "Asia/Kolkata"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("51-200", 51), ("1,200", 1200), ("240", 240), ("1000+", 1000), ("", None), (None, None)],
)
def test_company_size(raw: object, expected: int | None) -> None:
    assert ok(email="a@b.co", company_size=raw).company_size == expected


def test_names_tidied() -> None:
    record = ok(email="a@b.co", first_name="  JOHN ", last_name="o'brien")
    assert (record.first_name, record.last_name) == ("John", "O'Brien")
    assert v.tidy_name("mary-jane  smith") == "Mary-Jane Smith"
    assert v.tidy_name("McDonald") == "McDonald"  # mixed case kept
    assert v.tidy_name("   ") is None


def test_whatsapp_consent_false_without_phone() -> None:
    record = ok(email="a@b.co", whatsapp_consent="yes", email_consent="yes")
    assert record.whatsapp_consent is False
    assert record.email_consent is True


def test_whatsapp_consent_kept_with_phone() -> None:
    assert ok(phone="+447400123456", whatsapp_consent="opted-in").whatsapp_consent is True


@pytest.mark.parametrize("word", ["true", "YES", "y", "1", "opted-in", "opt-in", "on"])
def test_consent_true_words(word: str) -> None:
    assert ok(email="a@b.co", email_consent=word).email_consent is True


@pytest.mark.parametrize("word", ["false", "No", "n", "0", "", None, "opted-out", "off"])
def test_consent_false_words(word: object) -> None:
    assert ok(email="a@b.co", email_consent=word).email_consent is False


def test_created_at_parsed_or_now() -> None:
    assert ok(email="a@b.co").created_at == NOW
    parsed = ok(email="a@b.co", created_at="2026-02-01T10:00+01:00").created_at
    assert parsed == datetime(2026, 2, 1, 9, tzinfo=UTC)


def test_stage_lower_cased_and_defaulted() -> None:
    assert ok(email="a@b.co", lifecycle_stage=" MQL ").lifecycle_stage == "mql"
    assert ok(email="a@b.co").lifecycle_stage == "lead"


def test_seniority_from_job_title() -> None:
    assert ok(email="a@b.co", job_title="Chief Data Officer").seniority == "c_level"
    assert ok(email="a@b.co", job_title="Head of Growth").seniority == "director"
    assert ok(email="a@b.co", job_title="Analyst").seniority == "individual"
    assert ok(email="a@b.co").seniority is None
