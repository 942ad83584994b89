"""Regression tests for hostile requests: each one used to get a 500 or be stored."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.tokens import sign
from leadops.delivery.compose import UNSUBSCRIBE
from leadops.engagement.site import site_signature
from leadops.models import INBOX
from leadops.views.webhooks import rejection_counts
from tests.engagement import (
    SITE_SECRET,
    Harness,
    engagement_settings,
    new_signing_key,
    sg_event,
    status_params,
)

SUPERSCRIPT_TWO = "\u00b2"  # str.isdigit() says True, int() refuses it
PATHS = ["/webhooks/sendgrid", "/webhooks/twilio/status", "/events/site", "/forms/lead?form=x"]


@pytest.fixture
def h(tmp_path: Path, sqlite_engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), sqlite_engine, key)


def _inbox_size(h: Harness) -> int:
    with h.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(INBOX)).scalar_one())


def _reasons(h: Harness) -> set[tuple[str, str]]:
    return {(r["source"], r["reason"]) for r in rejection_counts(h.engine)}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("length", [SUPERSCRIPT_TWO.encode("latin-1"), b"9" * 40, b"-1"])
def test_a_content_length_that_is_not_ascii_digits_or_too_large_is_a_400(
    h: Harness, path: str, length: bytes
) -> None:
    response = h.client.post(path, content=b"{}", headers={"Content-Length": length})
    assert response.status_code in (400, 413), response.text
    assert response.headers["connection"] == "close"
    assert _inbox_size(h) == 0 and _reasons(h)


@pytest.mark.parametrize("stamp", [SUPERSCRIPT_TWO, "9" * 5000, "\uff11\uff16"])
def test_a_sendgrid_timestamp_that_is_not_ascii_digits_is_a_400(h: Harness, stamp: str) -> None:
    body = b"[]"
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": h.key.sign(stamp, body),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp.encode(),
    }
    response = h.client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert ("sendgrid", "malformed") in _reasons(h)


@pytest.mark.parametrize("touch_id", [SUPERSCRIPT_TWO, "9" * 30, "2147483648"])
def test_a_touch_id_out_of_range_in_a_signed_status_callback_is_a_400(
    h: Harness, touch_id: str
) -> None:
    path = "/webhooks/twilio/status?touch_id=" + quote(touch_id)
    response = h.twilio(path, status_params("SM" + "a" * 32, "delivered"))
    assert response.status_code == 400, response.text
    assert _inbox_size(h) == 0


@pytest.mark.parametrize(
    "extra",
    [
        {"ErrorCode": "99999999999999999999"},
        {"ErrorCode": SUPERSCRIPT_TWO},
        {"Price": "1e999"},
        {"SmsStatus": "exploded"},
        {"MessageStatus": "exploded"},
        {"MessageSid": "SM\x00"},
    ],
)
def test_a_signed_status_callback_with_out_of_range_fields_is_refused_not_stored(
    h: Harness, extra: dict[str, str]
) -> None:
    params = status_params("SM" + "a" * 32, "failed")
    params.update(extra)
    response = h.twilio("/webhooks/twilio/status?touch_id=1", params)
    assert response.status_code == 400, response.text
    assert _inbox_size(h) == 0
    assert ("twilio_status", "malformed") in _reasons(h)


@pytest.mark.parametrize(
    "fields",
    [
        {"touch_id": "99999999999999999999999"},
        {"lead_id": SUPERSCRIPT_TWO},
        {"lead_id": 2**64},
        {"touch_id": 2**31},  # past PostgreSQL's INTEGER
        {"email": ["not", "text"]},
        {"url": "\ud800"},
    ],
)
def test_a_signed_sendgrid_event_with_an_unusable_field_is_refused_not_stored(
    h: Harness, fields: dict[str, object]
) -> None:
    event = sg_event("click", 1, 1, h.clock.now())
    event.update(fields)
    response = h.sendgrid([event])
    assert response.status_code == 400, response.text
    assert _inbox_size(h) == 0


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_is_a_400_everywhere(h: Harness, depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    signed = {"X-Leadops-Signature": site_signature(SITE_SECRET, body)}
    assert h.client.post("/events/site", content=body, headers=signed).status_code == 400
    stamp = str(int(h.clock.now().timestamp()))
    sendgrid = {
        "X-Twilio-Email-Event-Webhook-Signature": h.key.sign(stamp, body),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }
    assert h.client.post("/webhooks/sendgrid", content=body, headers=sendgrid).status_code == 400
    nested = json.dumps({"event": "x", "deep": json.loads(b"[" * 50 + b"]" * 50)}).encode()
    sendgrid["X-Twilio-Email-Event-Webhook-Signature"] = h.key.sign(stamp, b"[" + nested + b"]")
    response = h.client.post("/webhooks/sendgrid", content=b"[" + nested + b"]", headers=sendgrid)
    assert response.status_code == 400
    assert _inbox_size(h) == 0


def test_a_site_signature_header_with_non_ascii_text_is_a_403(h: Harness) -> None:
    headers = {"X-Leadops-Signature": "sha256=\u00e9".encode("latin-1")}
    response = h.client.post("/events/site", content=b"{}", headers=headers)
    assert response.status_code == 403


def test_an_unsubscribe_token_spelled_otherwise_unsubscribes_nobody(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com")
    token = sign(UNSUBSCRIBE, {"lead": lead_id, "channel": "all"}, h.settings.signing_key())
    for variant in (token + "=", token + "==", token.replace(".", "=.")):
        assert h.client.post(f"/u/{variant}").status_code == 400
    assert h.lead(lead_id)["unsubscribed_at"] is None
    assert ("unsubscribe", "bad_token") in _reasons(h)
    assert h.client.post(f"/u/{token}").status_code == 200
    assert h.lead(lead_id)["unsubscribed_at"] is not None
