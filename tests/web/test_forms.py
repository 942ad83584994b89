"""Web-form capture with double opt-in, through the app as a browser and a website call it."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from leadops.core.clock import SimulatedClock
from leadops.core.settings import Settings
from leadops.models import LEADS, FormSubmission, Lead, LeadSourceRecord, QuarantinedRecord
from leadops.runtime import build_runtime
from leadops.testing.fakes import SERVER_ERROR, FakeSendGrid, FakeTwilio
from leadops.web.app import create_app
from tests.integration.test_delivery import fakes, provider_settings

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SECRET = "contact-secret-0123456789"
SIGNING = "webinar-secret-0123456789"
__all__ = ["fakes"]  # the providers' fixture, shared with test_delivery


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(NOW)


@pytest.fixture
def client(
    settings: Settings, engine: Engine, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> TestClient:
    monkeypatch.setenv("LEADOPS_FORM_CONTACT_US_SECRET", SECRET)
    monkeypatch.setenv("LEADOPS_FORM_WEBINAR_SECRET", SIGNING)
    return TestClient(create_app(settings, engine, clock))


def _emails(settings: Settings) -> list[Path]:
    return sorted((settings.resolved_outbox_dir / "email" / "_confirm").rglob("*.eml"))


def _link(path: Path) -> str:
    message = email.message_from_bytes(path.read_bytes())
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    match = re.search(
        r"https?://\S+/forms/confirm\?token=\S+", text.get_payload(decode=True).decode()
    )
    assert match is not None
    return match.group(0).split("/forms/", 1)[1]


def _lead(engine: Engine, address: str) -> Lead:
    with Session(engine) as session:
        return session.exec(select(Lead).where(Lead.email == address)).one()


def test_double_opt_in_grants_email_consent_once_confirmed(
    client: TestClient, settings: Settings, engine: Engine, clock: SimulatedClock
) -> None:
    body = {
        "work_email": "Lena.Berg@Example.com",
        "name_first": "lena",
        "company": "Berg AG",
        "email_consent": "true",
        "whatsapp_consent": "true",
        "phone": "+4915123454977",
    }
    headers = {"X-Leadops-Form-Secret": SECRET}
    response = client.post("/forms/lead?form=contact-us", json=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "sent"
    lead = _lead(engine, "lena.berg@example.com")
    assert lead.first_name == "Lena" and lead.source == "web-form:contact-us"
    assert lead.email_consent is False and lead.whatsapp_consent is False

    again = client.post("/forms/lead?form=contact-us", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["repeated"] is True
    [mail] = _emails(settings)  # the retry sent nothing
    link = _link(mail)

    clock.advance(timedelta(hours=5))
    page = client.get(f"/forms/{link}")
    assert page.status_code == 200 and "Confirm my subscription" in page.text
    assert _lead(engine, "lena.berg@example.com").email_consent is False  # a GET changes nothing

    token = link.split("token=", 1)[1]
    done = client.post("/forms/confirm", data={"token": token})
    assert done.status_code == 200 and "is confirmed" in done.text
    lead = _lead(engine, "lena.berg@example.com")
    assert lead.email_consent is True and lead.email_consent_at == NOW + timedelta(hours=5)
    twice = client.post("/forms/confirm", data={"token": token})
    assert "already confirmed" in twice.text
    with Session(engine) as session:
        row = session.exec(select(FormSubmission)).one()
        confirmations = session.exec(
            select(LeadSourceRecord).where(LeadSourceRecord.action == "consent_confirmed")
        ).all()
    assert row.status == "confirmed" and row.confirmed_at == NOW + timedelta(hours=5)
    assert len(confirmations) == 1


def test_signed_form_encoded_submission_and_expired_or_forged_links(
    client: TestClient, settings: Settings, engine: Engine, clock: SimulatedClock
) -> None:
    raw = b"email=max%40example.org&first_name=Max&country=DE"
    signature = hmac.new(SIGNING.encode(), raw, hashlib.sha256).hexdigest()
    content = {"Content-Type": "application/x-www-form-urlencoded"}
    bad = client.post(
        "/forms/lead?form=webinar",
        content=raw,
        headers={**content, "X-Leadops-Signature": "sha256=00"},
    )
    assert bad.status_code == 401
    ok = client.post(
        "/forms/lead?form=webinar",
        content=raw,
        headers={**content, "X-Leadops-Signature": f"sha256={signature}"},
    )
    assert ok.status_code == 202, ok.text
    token = _link(_emails(settings)[0]).split("token=", 1)[1]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.post("/forms/confirm", data={"token": forged}).status_code == 400
    clock.advance(timedelta(hours=73))
    expired = client.post("/forms/confirm", data={"token": token})
    assert expired.status_code == 410
    assert _lead(engine, "max@example.org").email_consent is False


def test_refusals_are_clear_and_invalid_leads_are_quarantined(
    client: TestClient, settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"X-Leadops-Form-Secret": SECRET}
    assert client.post("/forms/lead?form=nope", json={}, headers=headers).status_code == 404
    assert client.post("/forms/lead?form=contact-us", json={"email": "a@b.io"}).status_code == 401
    assert (
        client.post(
            "/forms/lead?form=contact-us",
            content=b"<x/>",
            headers={**headers, "Content-Type": "text/xml"},
        ).status_code
        == 415
    )
    assert (
        client.post(
            "/forms/lead?form=contact-us",
            content=b"[1]",
            headers={**headers, "Content-Type": "application/json"},
        ).status_code
        == 400
    )
    nul = client.post(
        "/forms/lead?form=contact-us", json={"email": "a\u0000@b.io"}, headers=headers
    )
    assert nul.status_code == 400
    invalid = client.post("/forms/lead?form=contact-us", json={"email": "nope"}, headers=headers)
    assert invalid.status_code == 422 and invalid.json()["reasons"] == ["invalid_email"]
    with Session(engine) as session:
        [record] = session.exec(select(QuarantinedRecord)).all()
    assert record.source == "web-form:contact-us" and record.raw["email"] == "nope"
    assert _emails(settings) == []
    monkeypatch.delenv("LEADOPS_FORM_CONTACT_US_SECRET")
    missing = client.post("/forms/lead?form=contact-us", json={"email": "a@b.io"}, headers=headers)
    assert (
        missing.status_code == 503 and "LEADOPS_FORM_CONTACT_US_SECRET" in missing.json()["error"]
    )


def test_a_lead_who_already_consented_gets_no_confirmation(
    client: TestClient, settings: Settings, engine: Engine
) -> None:
    from leadops.core.db import session_scope
    from leadops.intake.importer import import_records
    from leadops.intake.records import RawRecord

    with session_scope(engine) as session:
        import_records(
            session,
            [RawRecord(data={"email": "kim@example.com", "email_consent": "yes"}, source_ref="t")],
            source="csv",
            now=NOW,
            default_region="US",
            default_timezone="UTC",
        )
    response = client.post(
        "/forms/lead?form=contact-us",
        content=json.dumps({"email": "kim@example.com", "company": "Kim Co"}),
        headers={"X-Leadops-Form-Secret": SECRET, "Content-Type": "application/json"},
    )
    assert response.status_code == 202 and response.json()["status"] == "not_needed"
    assert _emails(settings) == []
    lead = _lead(engine, "kim@example.com")
    assert lead.email_consent is True and lead.company == "Kim Co"  # merged, consent kept


def test_an_intake_run_settles_unsent_confirmations_once(
    client: TestClient, settings: Settings, engine: Engine, clock: SimulatedClock
) -> None:
    from leadops.core.db import session_scope
    from leadops.intake.run import run_intake

    headers = {"X-Leadops-Form-Secret": SECRET}
    for address in ("p@example.com", "q@example.com"):
        response = client.post(
            "/forms/lead?form=contact-us", json={"email": address}, headers=headers
        )
        assert response.status_code == 202
    assert len(_emails(settings)) == 2
    with session_scope(engine) as session:
        p, q = session.exec(select(FormSubmission).order_by(FormSubmission.id)).all()  # type: ignore[arg-type]
        p.status = "sending"  # crashed after the email left: the outbox file proves it
        q.status = "pending"  # a temporary failure: not sent yet
        session.add_all([p, q])
    _emails(settings)[1].unlink()

    email = build_runtime(settings, engine=engine).email
    run = run_intake(engine, settings, now=clock.now(), sources=["forms"], email=email)
    assert [r.note for r in run.results] == ["confirmations sent 1, still unsent 0"]
    assert len(_emails(settings)) == 2
    with Session(engine) as session:
        statuses = [r.status for r in session.exec(select(FormSubmission))]
    assert statuses == ["sent", "sent"]
    assert (
        run_intake(engine, settings, now=clock.now(), sources=["forms"], email=email).results == []
    )


def _add_lead(engine: Engine, address: str, **fields: object) -> None:
    values: dict[str, object] = {
        "email": address,
        "timezone": "Europe/Berlin",
        "lifecycle_stage": "lead",
        "created_at": NOW - timedelta(days=3),
        "updated_at": NOW - timedelta(days=3),
    }
    values.update(fields)
    with engine.begin() as connection:
        connection.execute(LEADS.insert().values(values))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"email_suppressed_at": NOW - timedelta(days=1)}, "suppressed"),
        ({"unsubscribed_at": NOW - timedelta(days=1)}, "unsubscribed"),
    ],
)
def test_the_confirmation_is_transactional_and_never_goes_to_a_suppressed_address(
    client: TestClient, settings: Settings, engine: Engine, fields: dict[str, object], reason: str
) -> None:
    _add_lead(engine, "gone@example.com", **fields)
    headers = {"X-Leadops-Form-Secret": SECRET}
    response = client.post(
        "/forms/lead?form=contact-us", json={"email": "gone@example.com"}, headers=headers
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "skipped"
    assert _emails(settings) == []
    with Session(engine) as session:
        row = session.exec(select(FormSubmission)).one()
    assert row.status == "skipped" and row.error == f"skip: {reason}"


def test_a_confirmation_outside_the_send_window_is_held_then_sent_by_the_next_intake_run(
    client: TestClient, settings: Settings, engine: Engine, clock: SimulatedClock
) -> None:
    from leadops.intake.forms import retry_confirmations
    from leadops.models import Channel
    from leadops.providers.select import build_channels

    clock.set(datetime(2026, 12, 5, 10, 0, tzinfo=UTC))  # a Saturday
    headers = {"X-Leadops-Form-Secret": SECRET}
    body = {"email": "weekend@example.com", "country": "DE"}
    response = client.post("/forms/lead?form=contact-us", json=body, headers=headers)
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert _emails(settings) == []
    with Session(engine) as session:
        row = session.exec(select(FormSubmission)).one()
    assert row.error == "hold: outside_send_window until 2026-12-07T08:00Z"
    channel = build_channels(settings)[Channel.EMAIL]
    monday = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    assert retry_confirmations(
        engine, settings, now=monday, channel=channel, ttl=timedelta(hours=72)
    ) == (1, 0)
    assert len(_emails(settings)) == 1


def test_a_confirmation_the_provider_keeps_refusing_is_given_up_two_days_after_the_sign_up(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    from leadops.core.db import session_scope
    from leadops.intake.forms import CONFIRM_RETRY, retry_confirmations
    from leadops.models import Channel
    from leadops.providers.select import build_channels

    sendgrid, twilio = fakes
    settings = provider_settings(tmp_path, sendgrid, twilio)
    _add_lead(engine, "later@example.com", timezone="UTC")
    with session_scope(engine) as session:
        lead = session.exec(select(Lead)).one()
        session.add(
            FormSubmission(
                form="contact-us",
                submission_key="k1",
                lead_id=lead.id,
                email=lead.email,
                raw={"email": lead.email},
                submitted_at=NOW,
            )
        )
    channel = build_channels(settings)[Channel.EMAIL]

    def attempt(at: datetime) -> tuple[str, str | None]:
        sendgrid.script.append(SERVER_ERROR)
        assert retry_confirmations(
            engine, settings, now=at, channel=channel, ttl=timedelta(hours=72)
        ) == (0, 1)
        with Session(engine) as session:
            row = session.exec(select(FormSubmission)).one()
        return row.status, row.error

    status, error = attempt(NOW + timedelta(hours=1))
    assert status == "pending" and error is not None and error.startswith("retry later:")
    assert CONFIRM_RETRY.max_age == timedelta(days=2)
    status, error = attempt(NOW + timedelta(days=2))
    assert status == "failed" and error is not None and error.startswith("gave up (sign-up")
    later = NOW + timedelta(days=3)
    assert retry_confirmations(
        engine, settings, now=later, channel=channel, ttl=timedelta(hours=72)
    ) == (0, 0)
    assert sendgrid.answers == {"server_error": 2} and sendgrid.log == []
