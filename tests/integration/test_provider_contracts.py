"""Contract tests: the SendGrid and Twilio channels against local fakes that validate every
request against the providers' OpenAPI files and answer like the real services."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadops.core.settings import Settings
from leadops.providers.base import (
    AmbiguousSendError,
    ChannelUnavailableError,
    OutgoingMessage,
    PermanentSendError,
    TransientSendError,
)
from leadops.providers.sendgrid.inbound_parse import reply_address
from leadops.providers.sendgrid.send import SendGridChannel
from leadops.providers.twilio.send import TwilioWhatsAppChannel
from leadops.testing.fakes import (
    BAD_REQUEST,
    DROP,
    DROP_AFTER,
    HANG,
    RATE_LIMITED,
    SERVER_ERROR,
    UNAUTHORIZED,
    FakeSendGrid,
    FakeTwilio,
    Faults,
)
from tests.conftest import make_settings

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SID = "AC" + "1" * 32
TEMPLATE = "HX" + "ab" * 16


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    fake = FakeSendGrid(api_key="SG.test-key", faults=Faults(retry_after=7), hang_seconds=5)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(account_sid=SID, auth_token="tw-token", faults=Faults(retry_after=3))
    fake.hang_seconds = 5
    fake.templates = {TEMPLATE}
    fake.start()
    yield fake
    fake.stop()


def _settings(tmp_path: Path, sendgrid: FakeSendGrid, twilio: FakeTwilio, **extra: object):
    values: dict[str, object] = {
        "email_channel": "sendgrid",
        "sendgrid_api_key": "SG.test-key",
        "sendgrid_base_url": sendgrid.url,
        "sendgrid_timeout_seconds": 0.5,
        "whatsapp_channel": "twilio",
        "twilio_account_sid": SID,
        "twilio_auth_token": "tw-token",
        "twilio_whatsapp_from": "+14155550199",
        "twilio_base_url": twilio.url,
        "twilio_timeout_seconds": 0.5,
        "reply_to_email": "replies@northwind.example",
        "public_url": "https://hooks.northwind.example",
    }
    values.update(extra)
    return make_settings(tmp_path, **values)


def email(**overrides: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "touch_id": 41,
        "lead_id": 7,
        "channel": "email",
        "to": "amara@harbor.example",
        "to_name": "Amara Nwosu",
        "campaign": "educate",
        "step": "day-1",
        "created_at": NOW,
        "subject": "Metrics that matter",
        "html": "<p>Hello Amara</p>",
        "text": "Hello Amara",
        "unsubscribe_url": "https://hooks.northwind.example/u/abc",
    }
    values.update(overrides)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def whatsapp(**overrides: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "touch_id": 42,
        "lead_id": 7,
        "channel": "whatsapp",
        "to": "+447700900123",
        "campaign": "educate",
        "step": "day-1",
        "created_at": NOW,
        "body": "Hi Amara, here is the guide.",
        "content_sid": TEMPLATE,
        "content_variables": {"1": "Amara"},
    }
    values.update(overrides)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


@pytest.fixture
def channels(
    tmp_path: Path, sendgrid: FakeSendGrid, twilio: FakeTwilio
) -> tuple[SendGridChannel, TwilioWhatsAppChannel]:
    settings = _settings(tmp_path, sendgrid, twilio)
    return SendGridChannel(settings), TwilioWhatsAppChannel(settings)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- SendGrid -------------------------------------------------------------------------------


def test_sendgrid_accepted_mail_carries_ids_categories_and_one_click_headers(
    sendgrid: FakeSendGrid, channels: tuple[SendGridChannel, TwilioWhatsAppChannel]
) -> None:
    result = channels[0].send(email())

    sendgrid.check_contract()
    [accepted] = sendgrid.log
    assert result.provider_message_id == accepted.message_id
    assert result.provider_id == f"sendgrid:{accepted.message_id}"
    mail = accepted.body
    assert mail["personalizations"] == [
        {
            "to": [{"email": "amara@harbor.example", "name": "Amara Nwosu"}],
            "custom_args": {"lead_id": "7", "touch_id": "41"},
        }
    ]
    assert mail["from"] == {"email": "hello@northwind.example", "name": "Northwind Analytics"}
    assert mail["reply_to"] == {"email": "replies@northwind.example"}
    assert mail["subject"] == "Metrics that matter"
    assert [part["type"] for part in mail["content"]] == ["text/plain", "text/html"]
    assert mail["categories"] == ["educate", "educate.day-1"]
    assert mail["headers"] == {
        "List-Unsubscribe": "<https://hooks.northwind.example/u/abc>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert "mail_settings" not in mail


def test_sendgrid_a_touch_reply_address_is_the_reply_to(
    sendgrid: FakeSendGrid, channels: tuple[SendGridChannel, TwilioWhatsAppChannel]
) -> None:
    address = reply_address("reply.northwind.example", 41, b"k" * 32)
    channels[0].send(email(reply_to=address))
    sendgrid.check_contract()
    [accepted] = sendgrid.log
    assert accepted.body["reply_to"] == {"email": address, "name": "Northwind Analytics"}


def test_sendgrid_messages_that_are_not_touches_carry_their_kind_not_a_lead(
    sendgrid: FakeSendGrid, channels: tuple[SendGridChannel, TwilioWhatsAppChannel]
) -> None:
    channels[0].send(email(kind="escalation", touch_id=5, unsubscribe_url=""))
    sendgrid.check_contract()
    [accepted] = sendgrid.log
    [personalization] = accepted.body["personalizations"]
    # A rep opening an escalation email must never score the lead it is about.
    assert personalization["custom_args"] == {"kind": "escalation", "ref_id": "5"}


def test_sendgrid_sandbox_mode_is_validated_but_not_delivered(
    tmp_path: Path, sendgrid: FakeSendGrid, twilio: FakeTwilio
) -> None:
    channel = SendGridChannel(_settings(tmp_path, sendgrid, twilio, sendgrid_sandbox=True))
    result = channel.send(email())
    sendgrid.check_contract()
    assert sendgrid.log == [] and sendgrid.answers["200"] == 1
    assert result.provider_message_id == "sandbox-41"


def test_sendgrid_invalid_address_fails_for_good_and_asks_to_suppress(
    sendgrid: FakeSendGrid, channels: tuple[SendGridChannel, TwilioWhatsAppChannel]
) -> None:
    sendgrid.bad_addresses.add("amara@harbor.example")
    with pytest.raises(PermanentSendError, match="valid address") as caught:
        channels[0].send(email())
    assert caught.value.suppress
    assert "personalizations.0.to.0.email" in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "error", "detail"),
    [
        (BAD_REQUEST, PermanentSendError, "SendGrid 400"),
        (UNAUTHORIZED, ChannelUnavailableError, "SendGrid 401"),
        (RATE_LIMITED, TransientSendError, "429"),
        (SERVER_ERROR, TransientSendError, "SendGrid 500"),
        (HANG, AmbiguousSendError, "no answer"),
        (DROP, AmbiguousSendError, "no answer"),
        (DROP_AFTER, AmbiguousSendError, "no answer"),
    ],
)
def test_sendgrid_answers_are_classified(
    sendgrid: FakeSendGrid,
    channels: tuple[SendGridChannel, TwilioWhatsAppChannel],
    answer: str,
    error: type[Exception],
    detail: str,
) -> None:
    sendgrid.script.append(answer)
    with pytest.raises(error, match=detail) as caught:
        channels[0].send(email())
    if answer == RATE_LIMITED:
        assert isinstance(caught.value, TransientSendError) and caught.value.retry_after == 7
    if answer == BAD_REQUEST:
        assert not caught.value.suppress  # type: ignore[attr-defined]
    # A hanging or dropped-after answer did deliver: exactly why it must not be retried.
    assert len(sendgrid.log) == (1 if answer in (HANG, DROP_AFTER) else 0)


def test_sendgrid_wrong_key_is_refused_by_the_fake(
    tmp_path: Path, sendgrid: FakeSendGrid, twilio: FakeTwilio
) -> None:
    channel = SendGridChannel(_settings(tmp_path, sendgrid, twilio, sendgrid_api_key="SG.other"))
    with pytest.raises(ChannelUnavailableError, match="401"):
        channel.send(email())


def test_sendgrid_connection_refused_is_retryable(
    tmp_path: Path, sendgrid: FakeSendGrid, twilio: FakeTwilio
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    channel = SendGridChannel(_settings(tmp_path, sendgrid, twilio, sendgrid_base_url=url))
    with pytest.raises(TransientSendError, match="not sent"):
        channel.send(email())


def test_sendgrid_fake_rejects_requests_outside_the_spec(sendgrid: FakeSendGrid) -> None:
    bad = {"personalizations": [{"to": [{"email": "a@b.example"}]}], "subject": "x"}  # no from
    request = urllib.request.Request(
        f"{sendgrid.url}/v3/mail/send",
        data=json.dumps(bad).encode(),
        headers={"Authorization": "Bearer SG.test-key", "Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert sendgrid.violations and "from" in sendgrid.violations[0]
    with pytest.raises(AssertionError):
        sendgrid.check_contract()


# -- Twilio ---------------------------------------------------------------------------------


def test_twilio_outside_the_window_sends_the_approved_template(
    twilio: FakeTwilio, channels: tuple[SendGridChannel, TwilioWhatsAppChannel]
) -> None:
    result = channels[1].send(whatsapp(session_open=False))

    twilio.check_contract()
    [accepted] = twilio.log
    assert result.provider_message_id == accepted.message_id
    assert accepted.message_id.startswith("SM")
    form = accepted.body
    assert form["To"] == "whatsapp:+447700900123"
    assert form["From"] == "whatsapp:+14155550199"
    assert form["ContentSid"] == TEMPLATE
    assert json.loads(form["ContentVariables"]) == {"1": "Amara"}
    assert "Body" not in form
    assert (
        form["StatusCallback"]
        == "https://hooks.northwind.example/webhooks/twilio/status?touch_id=42"
    )
    assert accepted.touch_id == "42"
    assert twilio.late_failures == []


def test_twilio_inside_the_window_sends_free_text(
    twilio: FakeTwilio, channels: tuple[SendGridChannel, TwilioWhatsAppChannel]
) -> None:
    twilio.open_sessions.add("+447700900123")
    channels[1].send(whatsapp(session_open=True))
    twilio.check_contract()
    [accepted] = twilio.log
    assert accepted.body["Body"] == "Hi Amara, here is the guide."
    assert "ContentSid" not in accepted.body
    assert twilio.late_failures == []


def test_twilio_messages_that_are_not_touches_ask_for_no_status_callback(
    twilio: FakeTwilio, channels: tuple[SendGridChannel, TwilioWhatsAppChannel]
) -> None:
    twilio.open_sessions.add("+447700900123")
    channels[1].send(whatsapp(kind="escalation", touch_id=5, session_open=True))
    twilio.check_contract()
    [accepted] = twilio.log
    assert "StatusCallback" not in accepted.body


def test_twilio_closed_window_without_template_never_leaves(
    twilio: FakeTwilio, channels: tuple[SendGridChannel, TwilioWhatsAppChannel]
) -> None:
    with pytest.raises(PermanentSendError, match="24-hour"):
        channels[1].send(whatsapp(session_open=False, content_sid="", content_variables={}))
    assert twilio.requests == 0


def test_twilio_free_text_outside_the_window_fails_late_like_twilio(twilio: FakeTwilio) -> None:
    """The fake reproduces Twilio's late 63016 failure, so a channel bug would show."""
    channel_settings = make_settings(
        Path("/nonexistent"),
        whatsapp_channel="twilio",
        twilio_account_sid=SID,
        twilio_auth_token="tw-token",
        twilio_whatsapp_from="+14155550199",
        twilio_base_url=twilio.url,
    )
    channel = TwilioWhatsAppChannel(channel_settings)
    channel.send(whatsapp(session_open=True))  # the channel believes the window is open
    assert [code for _, code in twilio.late_failures] == [63016]


@pytest.mark.parametrize(
    ("configure", "code", "suppress"),
    [
        (lambda fake: fake.bad_numbers.add("+447700900123"), "21211", True),
        (lambda fake: setattr(fake, "templates", set()), "21655", False),
    ],
)
def test_twilio_permanent_errors_carry_twilio_reason(
    twilio: FakeTwilio,
    channels: tuple[SendGridChannel, TwilioWhatsAppChannel],
    configure: object,
    code: str,
    suppress: bool,
) -> None:
    configure(twilio)  # type: ignore[operator]
    with pytest.raises(PermanentSendError, match=code) as caught:
        channels[1].send(whatsapp())
    assert caught.value.suppress is suppress
    assert twilio.log == []


@pytest.mark.parametrize(
    ("answer", "error", "detail"),
    [
        (BAD_REQUEST, PermanentSendError, "Twilio 400"),
        (UNAUTHORIZED, ChannelUnavailableError, "20003"),
        (RATE_LIMITED, TransientSendError, "20429"),
        (SERVER_ERROR, AmbiguousSendError, "Twilio 500"),
        (HANG, AmbiguousSendError, "no answer"),
        (DROP, AmbiguousSendError, "dropped"),
        (DROP_AFTER, AmbiguousSendError, "dropped"),
    ],
)
def test_twilio_answers_are_classified(
    twilio: FakeTwilio,
    channels: tuple[SendGridChannel, TwilioWhatsAppChannel],
    answer: str,
    error: type[Exception],
    detail: str,
) -> None:
    twilio.script.append(answer)
    with pytest.raises(error, match=detail) as caught:
        channels[1].send(whatsapp())
    if answer == RATE_LIMITED:
        assert isinstance(caught.value, TransientSendError) and caught.value.retry_after == 3
    assert len(twilio.log) == (1 if answer in (HANG, DROP_AFTER) else 0)


def test_twilio_connection_refused_is_retryable(
    tmp_path: Path, sendgrid: FakeSendGrid, twilio: FakeTwilio
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    channel = TwilioWhatsAppChannel(_settings(tmp_path, sendgrid, twilio, twilio_base_url=url))
    with pytest.raises(TransientSendError, match="unreachable"):
        channel.send(whatsapp())


def test_twilio_fake_rejects_requests_outside_the_spec(twilio: FakeTwilio) -> None:
    import base64

    auth = base64.b64encode(f"{SID}:tw-token".encode()).decode()
    request = urllib.request.Request(
        f"{twilio.url}/2010-04-01/Accounts/{SID}/Messages.json",
        data=b"ContentSid=nothx&From=whatsapp%3A%2B14155550199",  # no To, bad ContentSid
        headers={
            "Authorization": f"Basic {auth}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert twilio.violations and "HX" in twilio.violations[0]


def test_settings_refuse_a_provider_without_credentials(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="LEADOPS_SENDGRID_API_KEY"):
        make_settings(tmp_path, email_channel="sendgrid")
    with pytest.raises(ValidationError, match="LEADOPS_TWILIO_AUTH_TOKEN"):
        make_settings(
            tmp_path,
            whatsapp_channel="twilio",
            twilio_account_sid=SID,
            twilio_whatsapp_from="+14155550199",
        )
    assert isinstance(make_settings(tmp_path), Settings)
