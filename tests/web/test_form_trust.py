"""A web form is untrusted input: it creates a lead pending double opt-in, or adds a source
record and fills the empty fields its declaration allows. Nothing else, for any field."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from leadops.core.clock import SimulatedClock
from leadops.core.settings import Settings
from leadops.intake.config import FormSource
from leadops.models import INBOX, LEAD_FIELD_ISSUES, LEAD_SOURCE_RECORDS, LEADS
from leadops.web.app import create_app

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=30)
SECRET = "contact-secret-0123456789"
HEADERS = {"X-Leadops-Form-Secret": SECRET}

# Each field a form must never set, with the value an attacker would post.
FORBIDDEN = {
    "lifecycle_stage": "sql",
    "email_consent": "true",
    "whatsapp_consent": "true",
    "sms_consent": "true",
    "source": "partner-list",
    "crm_id": "hs-31337",
    "created_at": "2020-01-01T00:00:00Z",
    "unsubscribed_at": "2026-11-01T00:00:00Z",
    "email_suppressed_at": "2026-11-01T00:00:00Z",
    "whatsapp_suppressed_at": "2026-11-01T00:00:00Z",
    "sms_suppressed_at": "2026-11-01T00:00:00Z",
    "score": "500",
}


@pytest.fixture
def client(settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("LEADOPS_FORM_CONTACT_US_SECRET", SECRET)
    return TestClient(create_app(settings, engine, SimulatedClock(NOW)))


def _lead(engine: Engine, email: str) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(
            connection.execute(sa.select(LEADS).where(LEADS.c.email == email)).mappings().one()
        )


def _existing(engine: Engine, email: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "email": email,
        "first_name": "Ada",
        "timezone": "Europe/London",
        "country": "GB",
        "lifecycle_stage": "subscriber",
        "source": "csv:original",
        "email_consent": False,
        "whatsapp_consent": False,
        "created_at": EARLIER,
        "updated_at": EARLIER,
    }
    values.update(fields)
    with engine.begin() as connection:
        connection.execute(LEADS.insert().values(values))
    return _lead(engine, email)


def _stored(value: Any) -> Any:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) else value


@pytest.mark.parametrize(("field", "value"), list(FORBIDDEN.items()))
def test_a_new_lead_from_a_form_takes_none_of_the_forbidden_fields(
    client: TestClient, engine: Engine, field: str, value: str
) -> None:
    body = {"email": "new@example.com", "first_name": "Nia", field: value}
    response = client.post("/forms/lead?form=contact-us", json=body, headers=HEADERS)
    assert response.status_code == 202, response.text
    lead = _lead(engine, "new@example.com")
    assert lead["lifecycle_stage"] == "lead"
    assert lead["email_consent"] is False and lead["whatsapp_consent"] is False
    assert lead["sms_consent"] is False and lead["sms_suppressed_at"] is None
    assert lead["source"] == "web-form:contact-us"
    assert lead["crm_id"] is None
    assert _stored(lead["created_at"]) == NOW
    assert lead["unsubscribed_at"] is None
    assert lead["email_suppressed_at"] is None and lead["whatsapp_suppressed_at"] is None
    assert lead["score"] == 0
    assert lead["first_name"] == "Nia"  # a declared field is taken


@pytest.mark.parametrize(
    ("field", "value"), [*FORBIDDEN.items(), ("lifecycle_stage", "unsubscribed")]
)
def test_a_form_naming_an_existing_lead_changes_none_of_the_forbidden_fields(
    client: TestClient, engine: Engine, field: str, value: str
) -> None:
    before = _existing(engine, "ada@example.com")
    body = {"email": "ADA@example.com", field: value}
    response = client.post("/forms/lead?form=contact-us", json=body, headers=HEADERS)
    assert response.status_code == 202, response.text
    after = _lead(engine, "ada@example.com")
    assert after == before  # nothing on the lead changed
    with engine.connect() as connection:
        history = connection.execute(
            sa.select(LEAD_SOURCE_RECORDS.c.action, LEAD_SOURCE_RECORDS.c.changes).where(
                LEAD_SOURCE_RECORDS.c.lead_id == before["id"]
            )
        ).all()
    assert [(row.action, row.changes) for row in history] == [("merged", None)]


def test_a_form_fills_only_the_empty_fields_it_declares(client: TestClient, engine: Engine) -> None:
    before = _existing(engine, "ada@example.com", last_name=None, company="Harbour Bank")
    body = {
        "work_email": "ada@example.com",
        "name_last": "Lovelace",  # declared, empty on the lead: filled
        "company": "Evil Corp",  # declared, but the lead has one: kept
        "industry": "banking",  # not declared by contact-us: ignored
        "message": "Please call me about pricing",  # kept with the submission only
    }
    response = client.post("/forms/lead?form=contact-us", json=body, headers=HEADERS)
    assert response.status_code == 202, response.text
    after = _lead(engine, "ada@example.com")
    assert after["last_name"] == "Lovelace"
    assert after["company"] == "Harbour Bank"
    assert after["industry"] is None
    unchanged = {"lifecycle_stage", "email_consent", "source", "crm_id", "created_at"}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}


def test_a_form_declaration_cannot_allow_a_trusted_field() -> None:
    for column in ("lifecycle_stage", "email_consent", "source", "crm_id", "created_at"):
        with pytest.raises(ValidationError, match=f"a form may not set {column}"):
            FormSource(key="bad", secret_env="LEADOPS_X", fields={"f": column})


def test_a_hand_raise_form_records_the_event_with_the_answers_and_no_stage_change(
    client: TestClient, engine: Engine
) -> None:
    before = _existing(engine, "ada@example.com", lifecycle_stage="lead")
    body = {"email": "ada@example.com", "message": "Can someone call me this week?"}
    response = client.post("/forms/lead?form=contact-us", json=body, headers=HEADERS)
    assert response.status_code == 202, response.text
    with engine.connect() as connection:
        rows = connection.execute(sa.select(INBOX)).mappings().all()
    assert [(r["source"], r["kind"]) for r in rows] == [("form", "contact_request")]
    payload = rows[0]["payload"]
    assert payload["lead_id"] == before["id"] and payload["form"] == "contact-us"
    assert payload["answers"]["message"] == "Can someone call me this week?"
    assert _lead(engine, "ada@example.com")["lifecycle_stage"] == "lead"
    again = client.post("/forms/lead?form=contact-us", json=body, headers=HEADERS)
    assert again.status_code == 200 and again.json()["repeated"] is True
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(INBOX)).scalar() == 1


def test_a_form_sets_only_declared_properties_typed_and_only_where_empty(
    client: TestClient, engine: Engine
) -> None:
    forged = {"grade": "A1", "band": "hot", "lead_status": "sal", "properties.budget": "approved"}
    body = {"email": "pat@example.com", "timeline": "tomorrow", **forged}
    assert client.post("/forms/lead?form=contact-us", json=body, headers=HEADERS).status_code == 202
    lead = _lead(engine, "pat@example.com")
    assert (lead["properties"], lead["lead_status"]) == (None, None)  # refused, not stored
    assert (lead["grade"], lead["band"]) != ("A1", "hot")
    with engine.connect() as connection:
        flagged = connection.execute(
            sa.select(LEAD_FIELD_ISSUES.c.field, LEAD_FIELD_ISSUES.c.reason).where(
                LEAD_FIELD_ISSUES.c.lead_id == lead["id"]
            )
        ).all()
    assert [tuple(row) for row in flagged] == [("properties.timeline", "invalid_property")]

    for timeline in ("This_Quarter", "now"):  # fills the empty property, then keeps it
        body = {"email": "pat@example.com", "timeline": timeline}
        assert (
            client.post("/forms/lead?form=contact-us", json=body, headers=HEADERS).status_code
            == 202
        )
    assert _lead(engine, "pat@example.com")["properties"] == {"timeline": "this_quarter"}
    with engine.connect() as connection:
        resolved = connection.execute(
            sa.select(LEAD_FIELD_ISSUES.c.resolved_at).where(
                LEAD_FIELD_ISSUES.c.lead_id == lead["id"]
            )
        ).scalar_one()
    assert resolved is not None  # the flag on the timeline resolved once it was filled


def test_a_content_form_makes_an_information_qualified_lead(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADOPS_FORM_WEBINAR_SECRET", SECRET)
    client = TestClient(create_app(settings, engine, SimulatedClock(NOW)))
    body = json.dumps({"email": "wes@example.com", "first_name": "Wes"}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(
        "/forms/lead?form=webinar",
        content=body,
        headers={"Content-Type": "application/json", "X-Leadops-Signature": signature},
    )
    assert response.status_code == 202, response.text
    lead = _lead(engine, "wes@example.com")
    assert (lead["lead_status"], lead["status_reason"]) == ("iql", "form webinar")
