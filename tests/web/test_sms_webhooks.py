"""Inbound SMS and SMS status callbacks, from the signed webhook to the lead: Twilio's
opt-out, opt-in and help keywords, replies, and refusals that suppress SMS."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from leadops.models.events import EventType
from leadops.providers.twilio.events import inbound_channel, twilio_inbound_event
from tests.engagement import Harness, engagement_settings, new_signing_key, status_params

PHONE = "+14155550142"


@pytest.fixture
def h(tmp_path: Path, sqlite_engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), sqlite_engine, key)


def sms_params(sid: str, body: str, phone: str = PHONE) -> dict[str, str]:
    """An inbound SMS as Twilio posts it (no whatsapp: prefix, no WaId)."""
    return {
        "AccountSid": "AC" + "0" * 32,
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "From": phone,
        "To": "+14155550100",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "FromCountry": "US",
        "ApiVersion": "2010-04-01",
    }


def _sms_lead(h: Harness) -> int:
    lead_id = h.add_lead(
        "ada@example.com", PHONE, lifecycle_stage="mql", whatsapp_consent=False, sms_consent=True
    )
    h.tick()  # enrolls in connect: day-1 email and SMS go out
    assert h.touch(lead_id, "sms")["status"] == "sent"
    return lead_id


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", EventType.OPTED_OUT),
        (" stopall ", EventType.OPTED_OUT),
        ("Revoke.", EventType.OPTED_OUT),
        ("baja", EventType.OPTED_OUT),  # a configured keyword (scoring.yaml)
        ("Start", EventType.RESUBSCRIBED),
        ("UNSTOP", EventType.RESUBSCRIBED),
        ("help", EventType.HELP),
        ("INFO", EventType.HELP),
        ("stop calling me at work", EventType.REPLIED),
    ],
)
def test_sms_keywords(body: str, expected: EventType) -> None:
    params = sms_params("SM1", body)
    assert inbound_channel(params) == "sms"
    assert twilio_inbound_event(params, {"STOP", "BAJA"}, {"START"}) == expected


def test_only_an_sms_stop_suppresses_on_arrival(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com", PHONE, sms_consent=True)
    for n, params in enumerate(
        [
            sms_params("", "STOP") | {"From": "whatsapp:" + PHONE},  # WhatsApp: at rescore
            sms_params("", "stop it, you are texting too often"),  # a reply, not a keyword
            sms_params("", "STOP", phone="+14155550999"),  # another number
        ]
    ):
        params["MessageSid"] = params["SmsMessageSid"] = f"SM{n:032d}"
        assert h.twilio("/webhooks/twilio/inbound", params).status_code == 200
    assert h.lead(lead_id)["sms_suppressed_at"] is None


def test_whatsapp_keeps_its_own_keywords() -> None:
    params = sms_params("SM1", "HELP") | {"From": "whatsapp:" + PHONE}
    assert inbound_channel(params) == "whatsapp"
    assert twilio_inbound_event(params, {"STOP"}, {"START"}) == EventType.REPLIED


def test_stop_suppresses_sms_only_and_start_lifts_it(h: Harness) -> None:
    lead_id = _sms_lead(h)
    assert (
        h.twilio("/webhooks/twilio/inbound", sms_params("SM" + "1" * 32, "STOP")).status_code == 200
    )
    # suppressed on arrival, before any rescore run
    assert h.lead(lead_id)["sms_suppressed_at"] == h.clock.now()
    h.rescore()
    lead = h.lead(lead_id)
    assert (lead["sms_suppression_reason"], lead["sms_suppressed_at"]) == (
        "sms_opt_out",
        h.clock.now(),
    )
    assert lead["email_suppressed_at"] is None and lead["unsubscribed_at"] is None
    assert any(rule == "unsubscribe" for rule, _ in h.ledger(lead_id))

    h.twilio("/webhooks/twilio/inbound", sms_params("SM" + "2" * 32, "START"))
    h.rescore()
    lead = h.lead(lead_id)
    assert lead["sms_suppressed_at"] is None and lead["sms_consent"] is True


def test_help_is_not_a_reply_and_a_text_reply_stops_the_sequence(h: Harness) -> None:
    lead_id = _sms_lead(h)
    h.twilio("/webhooks/twilio/inbound", sms_params("SM" + "3" * 32, "HELP"))
    h.rescore()
    assert h.lead(lead_id)["sms_suppressed_at"] is None
    assert not any(rule == "reply" for rule, _ in h.ledger(lead_id))

    h.twilio("/webhooks/twilio/inbound", sms_params("SM" + "4" * 32, "Sounds good, call me"))
    h.rescore()
    assert any(rule == "reply" for rule, _ in h.ledger(lead_id))
    assert h.lead(lead_id)["last_inbound_at"] is None  # no WhatsApp window opened by SMS


@pytest.mark.parametrize(
    ("code", "reason"),
    [("21610", "sms_opt_out"), ("30005", "invalid_number"), ("30003", None)],
)
def test_a_failed_sms_callback_suppresses_sms(h: Harness, code: str, reason: str | None) -> None:
    lead_id = _sms_lead(h)
    touch = h.touch(lead_id, "sms")
    params = status_params("SM" + "5" * 32, "undelivered", ErrorCode=code)
    params.update({"From": "+14155550100", "To": PHONE, "ChannelPrefix": "sms"})
    response = h.twilio(f"/webhooks/twilio/status?touch_id={touch['id']}", params)
    assert response.status_code == 204
    h.rescore()
    lead = h.lead(lead_id)
    assert h.touch(lead_id, "sms")["status"] == "failed"
    # 30005 (unknown destination) is an invalid number in scoring.yaml; 30003 (handset
    # unreachable, perhaps switched off) is one failed message
    assert lead["sms_suppression_reason"] == reason
    assert lead["whatsapp_suppressed_at"] is None
