"""The webhook endpoints over HTTP: signatures, refusals, the inbox and what a rescore does."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.clock import SimulatedClock
from leadops.engagement.scoring import Reason
from leadops.models import INBOX, LEADS, SCORE_LEDGER, TOUCHES
from leadops.providers.sendgrid.signature import verify_sendgrid
from leadops.views.webhooks import rejection_counts
from leadops.web.app import create_app
from tests.engagement import (
    PUBLIC_URL,
    Harness,
    engagement_settings,
    inbound_params,
    new_signing_key,
    sg_event,
    status_params,
)


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


@pytest.fixture
def lite(tmp_path: Path, sqlite_engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), sqlite_engine, key)


def _inbox_size(h: Harness) -> int:
    with h.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(INBOX)).scalar_one())


def _rejections(h: Harness) -> dict[tuple[str, str], int]:
    return {(r["source"], r["reason"]): r["count"] for r in rejection_counts(h.engine)}


# -- SendGrid ----------------------------------------------------------------------------

# SendGrid's published test vector, from sendgrid-python test/unit/test_eventwebhook.py.
SG_VECTOR_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe6"
    "2gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SG_VECTOR_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15Tlu"
    "LtEZtM="
)
SG_VECTOR_TIMESTAMP = "1600112502"
SG_VECTOR_PAYLOAD = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": (
                    "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"
                ),
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"
).encode()


def test_sendgrid_published_vector_verifies_and_a_flipped_byte_does_not() -> None:
    assert verify_sendgrid(
        SG_VECTOR_KEY, SG_VECTOR_SIGNATURE, SG_VECTOR_TIMESTAMP, SG_VECTOR_PAYLOAD
    )
    for index in (0, 40, len(SG_VECTOR_PAYLOAD) - 3):
        flipped = bytearray(SG_VECTOR_PAYLOAD)
        flipped[index] ^= 0x01
        assert not verify_sendgrid(
            SG_VECTOR_KEY, SG_VECTOR_SIGNATURE, SG_VECTOR_TIMESTAMP, bytes(flipped)
        )
    assert not verify_sendgrid(SG_VECTOR_KEY, SG_VECTOR_SIGNATURE, "1600112503", SG_VECTOR_PAYLOAD)
    assert not verify_sendgrid(SG_VECTOR_KEY, "not base64!", SG_VECTOR_TIMESTAMP, SG_VECTOR_PAYLOAD)


def test_the_app_accepts_the_published_vector_when_its_time_is_fresh(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    from datetime import UTC, datetime

    from fastapi.testclient import TestClient

    settings = engagement_settings(tmp_path, new_signing_key())
    settings = settings.model_copy(update={"sendgrid_webhook_public_key": SG_VECTOR_KEY})
    clock = SimulatedClock(datetime.fromtimestamp(1600112502 + 30, UTC))
    client = TestClient(create_app(settings, sqlite_engine, clock))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": SG_VECTOR_SIGNATURE,
        "X-Twilio-Email-Event-Webhook-Timestamp": SG_VECTOR_TIMESTAMP,
    }
    ok = client.post("/webhooks/sendgrid", content=SG_VECTOR_PAYLOAD, headers=headers)
    assert ok.status_code == 200 and ok.json() == {"received": 1, "stored": 1}
    tampered = SG_VECTOR_PAYLOAD.replace(b"Bounced", b"Bounces")
    assert client.post("/webhooks/sendgrid", content=tampered, headers=headers).status_code == 403


def test_sendgrid_events_score_once_and_a_replay_changes_nothing(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com", company_size=250)
    h.tick()
    touch = h.touch(lead_id, "email")
    at = h.clock.now()
    events = [
        sg_event("processed", lead_id, touch["id"], at),
        sg_event("delivered", lead_id, touch["id"], at, response="250 OK"),
        sg_event("open", lead_id, touch["id"], at, sg_machine_open=False, useragent="Mozilla/5.0"),
        sg_event("click", lead_id, touch["id"], at, url="https://northwind.example/guide"),
    ]
    response = h.sendgrid(events)
    assert response.status_code == 200
    assert response.json() == {"received": 4, "stored": 4}

    report = h.rescore()
    assert report.events_total == 4
    assert h.ledger(lead_id) == [("email_open", 5), ("email_click", 10), ("company-200-plus", 10)]
    assert h.lead(lead_id)["score"] == 25
    assert h.lead(lead_id)["last_engaged_at"] == at
    assert h.touch(lead_id, "email")["status"] == "delivered"

    h.clock.advance(timedelta(minutes=5))
    replay = h.sendgrid(events)  # SendGrid retries: same events, a new signature
    assert replay.status_code == 200 and replay.json()["stored"] == 0
    again = h.rescore()
    assert again.events_total == 0 and again.ledger_rows == 0 and again.fit_rows == 0
    assert h.lead(lead_id)["score"] == 25
    assert len(h.ledger(lead_id)) == 3


def test_machine_opens_never_make_a_lead_sales_ready(lite: Harness) -> None:
    h = lite
    lead_id = h.add_lead("ada@example.com", seniority="vp", company_size=500)
    h.tick()
    touch = h.touch(lead_id, "email")
    at = h.clock.now()
    opens = [
        sg_event("open", lead_id, touch["id"], at + timedelta(hours=n), n=n, sg_machine_open=True)
        for n in range(40)
    ]
    human = [
        sg_event("open", lead_id, touch["id"], at + timedelta(hours=n), n=100 + n)
        for n in range(40)
    ]
    assert h.sendgrid(opens + human).status_code == 200
    h.clock.advance(timedelta(days=2))
    report = h.rescore()
    ledger = h.ledger(lead_id)
    assert sum(p for rule, p in ledger if rule == "email_open_machine") == 0
    assert sum(p for rule, p in ledger if rule == "email_open") == 15  # capped per 7 days
    assert len([1 for rule, _ in ledger if rule.startswith("email_open")]) == 80
    assert h.lead(lead_id)["score"] == 15 + 15 + 10  # opens + senior buyer + company size
    assert h.lead(lead_id)["lifecycle_stage"] == "mql"
    assert report.sales_ready == []


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "unsigned"),
        ({"X-Twilio-Email-Event-Webhook-Timestamp": "soon"}, 400, "malformed"),
    ],
)
def test_sendgrid_refuses_unsigned_and_malformed_headers(
    lite: Harness, headers: dict[str, str], status: int, reason: str
) -> None:
    if headers:
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "MEUCIQ=="
    response = lite.client.post("/webhooks/sendgrid", content=b"[]", headers=headers)
    assert response.status_code == status
    assert _rejections(lite) == {("sendgrid", reason): 1}
    assert _inbox_size(lite) == 0


def test_sendgrid_refuses_forged_stale_malformed_and_oversized_requests(lite: Harness) -> None:
    h = lite
    event = sg_event("open", 1, 1, h.clock.now())
    good = h.sendgrid([event])
    assert good.status_code == 200

    body = json.dumps([event]).encode()
    stamp = str(int(h.clock.now().timestamp()))
    forged = h.client.post(
        "/webhooks/sendgrid",
        content=body.replace(b"open", b"click"),
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": h.key.sign(stamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        },
    )
    assert forged.status_code == 403 and "signature" in forged.json()["error"]
    old = str(int((h.clock.now() - timedelta(hours=1)).timestamp()))
    assert h.sendgrid([event], timestamp=old).status_code == 403
    not_array = h.sendgrid({"event": "open"})  # type: ignore[arg-type]
    assert not_array.status_code == 400 and "array" in not_array.json()["error"]
    no_time = h.sendgrid([{"event": "open", "email": "a@b.c"}])
    assert no_time.status_code == 400 and "timestamp" in no_time.json()["error"]
    huge = [event] * 10_000
    assert h.sendgrid(huge).status_code == 413
    assert _rejections(h) == {
        ("sendgrid", "bad_signature"): 1,
        ("sendgrid", "stale"): 1,
        ("sendgrid", "malformed"): 2,
        ("sendgrid", "too_large"): 1,
    }
    assert _inbox_size(h) == 1


def test_unconfigured_secrets_refuse_requests_unless_the_insecure_dev_flag_is_set(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    from fastapi.testclient import TestClient

    from tests.conftest import make_settings

    strict = TestClient(create_app(make_settings(tmp_path), sqlite_engine))
    body = json.dumps([sg_event("open", 1, 1, strict.app.state.leadops.clock.now())])
    for path, content in (
        ("/webhooks/sendgrid", body),
        ("/webhooks/twilio/status", "MessageSid=SM1&MessageStatus=sent"),
        ("/webhooks/twilio/inbound", "MessageSid=SM1&From=whatsapp%3A%2B1"),
        ("/events/site", "{}"),
    ):
        response = strict.post(path, content=content)
        assert response.status_code == 503, path
        assert "is not set" in response.json()["error"]
    dev = TestClient(create_app(make_settings(tmp_path, webhooks_insecure_dev=True), sqlite_engine))
    assert dev.post("/webhooks/sendgrid", content=body).status_code == 200


# -- Twilio ------------------------------------------------------------------------------


def test_twilio_status_callbacks_update_the_touch_and_record_the_sid(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com", "+447700900123")
    h.tick()
    touch = h.touch(lead_id, "whatsapp")
    with h.engine.begin() as connection:  # as if the send's answer had been lost
        connection.execute(
            sa.update(TOUCHES).where(TOUCHES.c.id == touch["id"]).values(provider_message_id=None)
        )
    path = f"/webhooks/twilio/status?touch_id={touch['id']}"
    sid = "SM" + "a" * 32
    for status in ("sent", "delivered", "read"):
        assert h.twilio(path, status_params(sid, status)).status_code == 204
    assert h.twilio(path, status_params(sid, "read")).status_code == 204  # a retry
    h.rescore()
    after = h.touch(lead_id, "whatsapp")
    assert (after["status"], after["provider_message_id"]) == ("delivered", sid)
    assert ("whatsapp_read", 5) in h.ledger(lead_id)
    assert _inbox_size(h) == 3


def test_twilio_failure_with_an_invalid_number_suppresses_whatsapp(lite: Harness) -> None:
    h = lite
    lead_id = h.add_lead("ada@example.com", "+447700900123")
    h.tick()
    touch = h.touch(lead_id, "whatsapp")
    path = f"/webhooks/twilio/status?touch_id={touch['id']}"
    params = status_params("SM" + "b" * 32, "undelivered", ErrorCode="63003")
    assert h.twilio(path, params).status_code == 204
    h.rescore()
    lead = h.lead(lead_id)
    assert lead["whatsapp_suppressed_at"] is not None
    assert lead["whatsapp_suppression_reason"] == "invalid_number"
    assert lead["email_suppressed_at"] is None
    failed = h.touch(lead_id, "whatsapp")
    assert failed["status"] == "failed" and "63003" in failed["error"]


def test_twilio_signature_covers_the_public_url_and_every_field(lite: Harness) -> None:
    h = lite
    params = status_params("SM" + "c" * 32, "delivered")
    from twilio.request_validator import RequestValidator

    from tests.engagement import TWILIO_TOKEN

    wrong_url = RequestValidator(TWILIO_TOKEN).compute_signature(
        "http://internal:8000/webhooks/twilio/status?touch_id=1", params
    )
    response = h.client.post(
        "/webhooks/twilio/status?touch_id=1",
        data=params,
        headers={"X-Twilio-Signature": wrong_url},
    )
    assert response.status_code == 403
    good = RequestValidator(TWILIO_TOKEN).compute_signature(
        PUBLIC_URL + "/webhooks/twilio/status?touch_id=1", params
    )
    tampered = dict(params, MessageStatus="failed")
    response = h.client.post(
        "/webhooks/twilio/status?touch_id=1", data=tampered, headers={"X-Twilio-Signature": good}
    )
    assert response.status_code == 403
    assert h.twilio("/webhooks/twilio/status?touch_id=x", params).status_code == 400
    assert h.twilio("/webhooks/twilio/status", {"MessageSid": "SM1"}).status_code == 400
    assert _inbox_size(h) == 0
    assert _rejections(h) == {
        ("twilio_status", "bad_signature"): 2,
        ("twilio_status", "malformed"): 2,
    }


@pytest.mark.parametrize("word", ["STOP", "stop", " Unsubscribe. ", "BAJA", "Stopp"])
def test_an_opt_out_keyword_suppresses_and_stops_the_sequence(lite: Harness, word: str) -> None:
    h = lite
    lead_id = h.add_lead("ada@example.com", "+447700900123")
    h.tick()
    response = h.twilio(
        "/webhooks/twilio/inbound", inbound_params("SM" + "d" * 32, "+447700900123", word)
    )
    assert response.status_code == 200 and "<Response>" in response.text
    report = h.rescore()
    lead = h.lead(lead_id)
    assert lead["whatsapp_suppressed_at"] is not None
    assert lead["email_suppressed_at"] is not None  # opt-out scope: all (config/scoring.yaml)
    assert lead["unsubscribed_at"] is not None
    assert ("unsubscribe", -25) in h.ledger(lead_id)
    assert report.sequences_stopped == {"whatsapp_opt_out": 1}
    assert report.sales_ready == []

    h.clock.advance(timedelta(days=10))
    h.tick()  # day 10 is due: nothing goes out on either channel
    with h.engine.connect() as connection:
        statuses = connection.execute(
            sa.select(TOUCHES.c.status, TOUCHES.c.step).where(TOUCHES.c.lead_id == lead_id)
        ).all()
    assert {step for _, step in statuses} == {"day-1"}


def test_start_after_stop_opts_back_in_on_whatsapp(lite: Harness) -> None:
    h = lite
    lead_id = h.add_lead("ada@example.com", "+447700900123")
    h.twilio("/webhooks/twilio/inbound", inbound_params("SM1", "+447700900123", "STOP"))
    h.rescore()
    h.twilio("/webhooks/twilio/inbound", inbound_params("SM2", "+447700900123", "START"))
    h.rescore()
    lead = h.lead(lead_id)
    assert lead["whatsapp_suppressed_at"] is None and lead["whatsapp_consent"]
    assert lead["unsubscribed_at"] is None
    assert lead["email_suppressed_at"] is not None  # the email opt-out stands


def test_a_reply_opens_the_window_stops_the_sequence_and_is_a_hand_raise(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com", "+447700900123")
    h.tick()
    h.clock.advance(timedelta(hours=2))
    params = inbound_params("SM" + "e" * 32, "+447700900123", "Yes please, call me tomorrow")
    assert h.twilio("/webhooks/twilio/inbound", params).status_code == 200
    assert h.twilio("/webhooks/twilio/inbound", params).status_code == 200  # retried
    report = h.rescore()
    lead = h.lead(lead_id)
    assert lead["last_inbound_at"] == h.clock.now()
    assert ("reply", 15) in h.ledger(lead_id)
    assert report.sequences_stopped == {"replied": 1}
    assert [(r.lead_id, r.trigger, r.score) for r in report.sales_ready] == [(lead_id, "reply", 15)]
    assert report.sales_ready[0].reasons == (Reason("reply", 15),)
    assert lead["whatsapp_suppressed_at"] is None


# -- unsubscribe -------------------------------------------------------------------------


def test_one_click_unsubscribe_is_honoured_at_once_and_scored_once(h: Harness) -> None:
    from leadops.delivery.compose import unsubscribe_url

    lead_id = h.add_lead("ada@example.com", "+447700900123")
    h.tick()
    h.clock.advance(timedelta(days=8))
    h.tick()  # nothing new yet: day 10 is tomorrow
    path = unsubscribe_url(h.settings, lead_id).removeprefix(PUBLIC_URL)

    page = h.client.get(path)
    assert page.status_code == 200 and "<form method='post'" in page.text
    assert h.lead(lead_id)["unsubscribed_at"] is None  # a GET never unsubscribes

    done = h.client.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and "unsubscribed" in done.text
    lead = h.lead(lead_id)
    assert lead["unsubscribed_at"] == h.clock.now()
    assert lead["email_suppressed_at"] is not None and lead["whatsapp_suppressed_at"] is not None
    assert h.client.post(path).status_code == 200  # clicked twice
    h.rescore()
    h.rescore()
    assert [row for row in h.ledger(lead_id) if row[0] == "unsubscribe"] == [("unsubscribe", -25)]

    h.clock.advance(timedelta(days=1))
    h.tick()
    with h.engine.connect() as connection:
        touches = connection.execute(
            sa.select(TOUCHES.c.step, TOUCHES.c.status, TOUCHES.c.hold_reason).where(
                TOUCHES.c.lead_id == lead_id
            )
        ).all()
    assert {step for step, status, _ in touches if status == "sent"} == {"day-1"}, touches

    assert h.client.get(path + "x").status_code == 400
    assert h.client.post("/u/forged.token").status_code == 400


# -- site events -------------------------------------------------------------------------


def test_site_events_score_pricing_and_hand_raises_and_report_unknown_types(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com")
    at = h.clock.now().isoformat()
    events = [
        {
            "id": "ev-1",
            "type": "page_view",
            "email": "Ada@Example.com",
            "occurred_at": at,
            "properties": {"url": "https://northwind.example/pricing?plan=team"},
        },
        {
            "id": "ev-2",
            "type": "page_view",
            "email": "ada@example.com",
            "occurred_at": at,
            "properties": {"url": "https://northwind.example/blog/pricing-tips"},
        },
        {"id": "ev-3", "type": "demo_requested", "email": "ada@example.com", "occurred_at": at},
        {"id": "ev-4", "type": "webinar_attended", "email": "ada@example.com", "occurred_at": at},
    ]
    response = h.site(events)
    assert response.status_code == 202
    assert response.json() == {"received": 4, "stored": 4, "unknown_types": ["webinar_attended"]}
    assert h.site(events[0]).json()["stored"] == 0  # a single object, already stored

    report = h.rescore()
    assert h.ledger(lead_id) == [("pricing_page", 10), ("demo_requested", 25)]
    assert report.unknown_site_types == {"webinar_attended": 1}
    assert [(r.trigger, r.score) for r in report.sales_ready] == [("demo_requested", 35)]

    bad = h.client.post("/events/site", content=b"{}", headers={"X-Leadops-Signature": "sha256=00"})
    assert bad.status_code == 403
    unsigned = h.client.post("/events/site", content=b"{}")
    assert unsigned.status_code == 401
    assert (
        h.site([{"type": "page_view", "email": "a@b.c", "occurred_at": "yesterday"}])
        .json()["error"]
        .startswith("event 0 (page_view): occurred_at")
    )


def test_inbox_rows_name_the_lead_and_what_was_applied(lite: Harness) -> None:
    h = lite
    lead_id = h.add_lead("ada@example.com")
    h.site(
        {
            "id": "x",
            "type": "trial_started",
            "email": "ada@example.com",
            "occurred_at": h.clock.now().isoformat(),
        }
    )
    h.site(
        {
            "id": "y",
            "type": "trial_started",
            "email": "nobody@example.com",
            "occurred_at": h.clock.now().isoformat(),
        }
    )
    h.rescore()
    with h.engine.connect() as connection:
        rows = connection.execute(
            sa.select(INBOX.c.status, INBOX.c.lead_id, INBOX.c.result).order_by(INBOX.c.id)
        ).all()
        total = connection.execute(
            sa.select(sa.func.sum(SCORE_LEDGER.c.points)).where(SCORE_LEDGER.c.lead_id == lead_id)
        ).scalar_one()
        score = connection.execute(
            sa.select(LEADS.c.score).where(LEADS.c.id == lead_id)
        ).scalar_one()
    assert [tuple(r) for r in rows] == [
        ("processed", lead_id, "trial_started +25"),
        ("ignored", None, "no matching lead"),
    ]
    assert score == total == 25


def test_sendgrid_events_of_rep_notifications_never_score_a_lead(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com")
    at = h.clock.now()
    event = {
        "email": "ada@example.com",  # even when the address is a lead's
        "timestamp": int(at.timestamp()),
        "event": "open",
        "sg_event_id": "rep-open-1",
        "sg_message_id": "msg5.filterdrecv-5645d9c87f-abcde-1-5F5FC76C-9.0",
        "kind": "escalation",
        "ref_id": "5",
    }
    assert h.sendgrid([event]).status_code in (200, 202, 204)
    report = h.rescore()
    assert all(rule != "email_open" for rule, _ in h.ledger(lead_id))
    assert report.events_total == 0
