"""SMS through Twilio's Messages API, against the fake that validates every request against
Twilio's OpenAPI file: the request, the refusals that suppress, and exactly-once dispatch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.clock import SimulatedClock
from leadops.models import LEADS, TOUCHES
from leadops.nurture.tick import run_tick
from leadops.providers.base import OutgoingMessage, PermanentSendError
from leadops.providers.twilio.sms import TwilioSmsChannel
from leadops.runtime import load_runtime
from leadops.testing.fakes import FakeTwilio
from tests.conftest import make_settings

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday, inside every window
SID = "AC" + "2" * 32
SERVICE = "MG" + "3" * 32


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(account_sid=SID, auth_token="tw-token")
    fake.start()
    yield fake
    fake.stop()


def _settings(tmp_path: Path, twilio: FakeTwilio, **extra: object):
    values: dict[str, object] = {
        "sms_channel": "twilio",
        "twilio_account_sid": SID,
        "twilio_auth_token": "tw-token",
        "twilio_base_url": twilio.url,
        "twilio_timeout_seconds": 2,
        "public_url": "https://hooks.northwind.example",
    }
    values.update(extra)
    return make_settings(tmp_path, **values)


def sms(**overrides: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "touch_id": 51,
        "lead_id": 7,
        "channel": "sms",
        "to": "+14155550123",
        "campaign": "connect",
        "step": "day-1",
        "created_at": NOW,
        "body": "Northwind: Hi Amara, the case study: https://x.example/c\nReply STOP to opt out",
    }
    values.update(overrides)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def test_sms_from_a_number_with_a_status_callback(tmp_path: Path, twilio: FakeTwilio) -> None:
    channel = TwilioSmsChannel(_settings(tmp_path, twilio, twilio_sms_from="+14155550199"))
    result = channel.send(sms())
    twilio.check_contract()
    [accepted] = twilio.log
    assert result.provider_message_id == accepted.message_id
    assert accepted.message_id.startswith("SM")
    form = accepted.body
    assert (form["To"], form["From"]) == ("+14155550123", "+14155550199")
    assert form["Body"].endswith("Reply STOP to opt out")
    assert "MessagingServiceSid" not in form and "ContentSid" not in form
    assert form["StatusCallback"] == (
        "https://hooks.northwind.example/webhooks/twilio/status?touch_id=51"
    )


def test_sms_through_a_messaging_service(tmp_path: Path, twilio: FakeTwilio) -> None:
    settings = _settings(tmp_path, twilio, twilio_messaging_service_sid=SERVICE)
    TwilioSmsChannel(settings).send(sms(kind="escalation"))
    twilio.check_contract()
    [accepted] = twilio.log
    assert accepted.body["MessagingServiceSid"] == SERVICE
    assert "From" not in accepted.body
    assert "StatusCallback" not in accepted.body  # only nurture touches get callbacks


@pytest.mark.parametrize(
    ("configure", "code", "reason"),
    [
        (lambda fake: fake.opted_out.add("+14155550123"), "21610", "sms_opt_out"),
        (lambda fake: fake.bad_numbers.add("+14155550123"), "21211", "invalid_number"),
    ],
)
def test_refusals_suppress_sms_with_a_reason_code(
    tmp_path: Path, twilio: FakeTwilio, configure: object, code: str, reason: str
) -> None:
    configure(twilio)  # type: ignore[operator]
    channel = TwilioSmsChannel(_settings(tmp_path, twilio, twilio_sms_from="+14155550199"))
    with pytest.raises(PermanentSendError, match=code) as caught:
        channel.send(sms())
    assert (caught.value.suppress, caught.value.reason) == (True, reason)
    assert twilio.log == []


def test_settings_refuse_sms_without_a_sender(tmp_path: Path, twilio: FakeTwilio) -> None:
    with pytest.raises(ValueError, match="MESSAGING_SERVICE_SID or LEADOPS_TWILIO_SMS_FROM"):
        _settings(tmp_path, twilio)
    with pytest.raises(ValueError, match="Messaging Service SID"):
        _settings(tmp_path, twilio, twilio_messaging_service_sid="MG123")
    with pytest.raises(ValueError, match=r"E\.164"):
        _settings(tmp_path, twilio, twilio_sms_from="415-555-0199")


def _leads(engine: Engine) -> dict[str, int]:
    phones = {"ok": "+14155550101", "stopped": "+14155550102", "bad": "+14155550103"}
    rows = [
        {
            "email": None,
            "phone": phone,
            "first_name": name.title(),
            "timezone": "UTC",
            "lifecycle_stage": "mql",
            "email_consent": False,
            "whatsapp_consent": False,
            "sms_consent": True,
            "sms_consent_at": NOW,
            "score": 0,
            "created_at": NOW - timedelta(days=1),
            "updated_at": NOW,
        }
        for name, phone in phones.items()
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(LEADS), rows)
        found = conn.execute(sa.select(LEADS.c.id, LEADS.c.phone)).all()
    by_phone = {phone: lead_id for lead_id, phone in found}
    return {name: by_phone[phone] for name, phone in phones.items()}


def test_dispatch_sends_each_sms_once_and_suppresses_refused_numbers(
    tmp_path: Path, sqlite_engine: Engine, twilio: FakeTwilio
) -> None:
    leads = _leads(sqlite_engine)
    twilio.opted_out.add("+14155550102")
    twilio.bad_numbers.add("+14155550103")
    settings = _settings(
        tmp_path,
        twilio,
        twilio_messaging_service_sid=SERVICE,
        database_url=sqlite_engine.url.render_as_string(hide_password=False),
    )
    runtime = load_runtime(settings, engine=sqlite_engine)
    clock = SimulatedClock(NOW)
    run_tick(runtime, clock)
    clock.set(NOW + timedelta(hours=1))
    run_tick(runtime, clock)  # nothing is sent again
    runtime.dispose()

    twilio.check_contract()
    assert twilio.duplicates() == {}
    [accepted] = twilio.log
    assert accepted.body["To"] == "+14155550101"
    assert accepted.body["Body"].startswith("Northwind Analytics: Hi Ok")
    with sqlite_engine.connect() as conn:
        touches = {
            lead_id: (status, provider_message_id)
            for lead_id, status, provider_message_id in conn.execute(
                sa.select(TOUCHES.c.lead_id, TOUCHES.c.status, TOUCHES.c.provider_message_id)
            )
        }
        reasons = dict(conn.execute(sa.select(LEADS.c.id, LEADS.c.sms_suppression_reason)).all())
    assert touches[leads["ok"]] == ("sent", accepted.message_id)
    assert touches[leads["stopped"]][0] == touches[leads["bad"]][0] == "failed"
    assert reasons == {
        leads["ok"]: None,
        leads["stopped"]: "sms_opt_out",
        leads["bad"]: "invalid_number",
    }
