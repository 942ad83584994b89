"""Both providers' requests go out on kept-alive connections, byte for byte the requests the
official SDKs send on their own, and a connection the server closed is replaced safely."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sendgrid import SendGridAPIClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from leadops.providers.base import OutgoingMessage
from leadops.providers.keepalive import KeepAliveTransport, NotConnected
from leadops.providers.sendgrid.send import SendGridChannel
from leadops.providers.twilio.send import TwilioWhatsAppChannel
from leadops.providers.twilio.sms import TwilioSmsChannel
from leadops.testing.fakes import FakeSendGrid, FakeTwilio, RawRequest
from tests.integration.test_provider_contracts import (
    SID,
    _free_port,
    _settings,
    email,
    whatsapp,
)

pytest_plugins = ["tests.integration.test_provider_contracts"]  # the fake fixtures


def _headers(raw: RawRequest) -> dict[str, str]:
    return {name.lower(): value for name, value in raw.headers}


def test_sendgrid_sends_the_sdks_request_on_one_connection(
    tmp_path: Path, sendgrid: FakeSendGrid, twilio: FakeTwilio
) -> None:
    sendgrid.record_raw = True
    channel = SendGridChannel(_settings(tmp_path, sendgrid, twilio))
    for n in range(3):
        channel.send(email(touch_id=100 + n))
    # The SDK on its own: a fresh urllib opener and connection, `Connection: close`.
    sdk = SendGridAPIClient("SG.test-key", host=sendgrid.url)
    sdk.client.mail.send.post(request_body=channel.request_body(email(touch_id=102)))

    kept, alone = sendgrid.raw[:3], sendgrid.raw[3]
    assert len({raw.client_port for raw in kept}) == 1  # one connection for three sends
    assert alone.client_port != kept[0].client_port
    last = kept[2]
    assert (last.method, last.path, last.body) == (alone.method, alone.path, alone.body)
    assert _headers(last) == {
        name: value for name, value in _headers(alone).items() if name != "connection"
    }
    assert _headers(alone)["connection"] == "close" and "connection" not in _headers(last)
    assert not sendgrid.violations and len(sendgrid.log) == 4


def test_twilio_sends_the_sdks_request_on_one_connection(
    tmp_path: Path, sendgrid: FakeSendGrid, twilio: FakeTwilio
) -> None:
    twilio.record_raw = True
    channel = TwilioWhatsAppChannel(_settings(tmp_path, sendgrid, twilio))
    for n in range(3):
        channel.send(whatsapp(touch_id=200 + n))
    # The SDK on its own, through requests.
    sdk = Client(SID, "tw-token", http_client=TwilioHttpClient(timeout=5))
    sdk.api.base_url = twilio.url
    sdk.messages.create(**channel.request_params(whatsapp(touch_id=202)))

    kept, alone = twilio.raw[:3], twilio.raw[3]
    assert len({raw.client_port for raw in kept}) == 1
    last = kept[2]
    assert (last.method, last.path, last.body) == (alone.method, alone.path, alone.body)
    assert _headers(last) == _headers(alone)
    assert not twilio.violations and len(twilio.log) == 4


@pytest.mark.parametrize(
    ("channel_class", "extra", "message"),
    [
        (TwilioWhatsAppChannel, {}, whatsapp(touch_id=300, session_open=True, body="Hi, Ada")),
        (
            TwilioSmsChannel,
            {"twilio_messaging_service_sid": "MG" + "1" * 32},
            whatsapp(touch_id=301, channel="sms", to="+14155550123", body="Hi, Ada & co"),
        ),
        (
            TwilioSmsChannel,
            {"twilio_sms_from": "+14155550198"},
            whatsapp(touch_id=302, channel="sms", to="+14155550123", body="Hi", kind="escalation"),
        ),
    ],
)
def test_twilio_requests_of_every_field_set_are_the_sdks(
    tmp_path: Path,
    sendgrid: FakeSendGrid,
    twilio: FakeTwilio,
    channel_class: type[TwilioWhatsAppChannel],
    extra: dict[str, str],
    message: OutgoingMessage,
) -> None:
    """Free text, a Messaging Service, a number without a status callback: each request
    built from the form worked out once is the one the SDK sends for the same arguments."""
    twilio.record_raw = True
    channel = channel_class(_settings(tmp_path, sendgrid, twilio, **extra))
    channel.send(message)
    sdk = Client(SID, "tw-token", http_client=TwilioHttpClient(timeout=5))
    sdk.api.base_url = twilio.url
    sdk.messages.create(**channel.request_params(message))

    kept, alone = twilio.raw
    assert (kept.method, kept.path, kept.body) == (alone.method, alone.path, alone.body)
    assert kept.headers == alone.headers  # names, values and order
    assert not twilio.violations and len(twilio.log) == 2


@pytest.fixture
def closing_server() -> Iterator[tuple[str, list[int]]]:
    """Answers each connection's first request with 202 (keep-alive) and then closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, address = listener.accept()
            except OSError:
                return
            with conn:
                connections.append(address[1])
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", connections
    listener.close()


def test_a_connection_the_server_closed_is_replaced_before_writing(
    closing_server: tuple[str, list[int]],
) -> None:
    url, connections = closing_server
    transport = KeepAliveTransport(url)
    for _ in range(3):
        answer = transport.exchange("POST", f"{url}/v3/mail/send", {}, b"", timeout=2)
        assert answer.status == 202
        time.sleep(0.05)  # the server's close arrives, as it would between two sends
    assert transport.connections_opened == 3 and len(connections) == 3


def test_connection_refused_is_reported_as_not_connected() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(NotConnected):
        KeepAliveTransport(url).exchange("POST", f"{url}/x", {}, b"", timeout=2)
