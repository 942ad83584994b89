"""Helpers for engagement tests: signing keys, signed requests, leads with sent touches."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine
from twilio.request_validator import RequestValidator

from leadops.core.clock import SimulatedClock
from leadops.core.settings import Settings
from leadops.engagement.report import RescoreReport
from leadops.engagement.rescore import run_rescore
from leadops.engagement.site import site_signature
from leadops.models import LEADS, SCORE_LEDGER, TOUCHES
from leadops.nurture.runtime import Runtime
from leadops.nurture.tick import run_tick
from leadops.runtime import load_runtime
from leadops.web.app import create_app
from tests.conftest import make_settings

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday, inside the send window
PUBLIC_URL = "https://hooks.northwind.example"
TWILIO_TOKEN = "twilio-test-auth-token-0123456789"
SITE_SECRET = "site-events-test-secret"


@dataclass
class SigningKey:
    private: ec.EllipticCurvePrivateKey
    public_b64: str

    def sign(self, timestamp: str, body: bytes) -> str:
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()


def new_signing_key() -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(private, base64.b64encode(der).decode())


def engagement_settings(tmp_path: Path, key: SigningKey, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "public_url": PUBLIC_URL,
        "sendgrid_webhook_public_key": key.public_b64,
        "twilio_auth_token": TWILIO_TOKEN,
        "site_events_secret": SITE_SECRET,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


class Harness:
    """The app and the rescore run on one database and one simulated clock."""

    def __init__(self, settings: Settings, engine: Engine, key: SigningKey) -> None:
        self.settings = settings
        self.engine = engine
        self.key = key
        self.clock = SimulatedClock(T0)
        self.runtime: Runtime = load_runtime(settings, engine=engine)
        self.client = TestClient(create_app(settings, engine, self.clock))

    # -- data --------------------------------------------------------------------------

    def add_lead(self, email: str, phone: str | None = None, **fields: Any) -> int:
        values: dict[str, Any] = {
            "email": email,
            "phone": phone,
            "first_name": "Ada",
            "timezone": "UTC",
            "lifecycle_stage": "lead",
            "email_consent": True,
            "whatsapp_consent": phone is not None,
            "created_at": T0,
            "updated_at": T0,
            "last_engaged_at": T0,
        }
        values.update(fields)
        with self.engine.begin() as connection:
            return int(connection.execute(LEADS.insert().values(values)).inserted_primary_key[0])

    def tick(self) -> None:
        run_tick(self.runtime, self.clock)

    def touch(self, lead_id: int, channel: str) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(TOUCHES)
                .where(TOUCHES.c.lead_id == lead_id, TOUCHES.c.channel == channel)
                .order_by(TOUCHES.c.id)
            ).first()
        assert row is not None, f"lead {lead_id} has no {channel} touch"
        return row._asdict()

    def lead(self, lead_id: int) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(LEADS).where(LEADS.c.id == lead_id)).one()
        return row._asdict()

    def ledger(self, lead_id: int) -> list[tuple[str, int]]:
        s = SCORE_LEDGER.c
        with self.engine.connect() as connection:
            return [
                (rule, points)
                for rule, points in connection.execute(
                    sa.select(s.rule, s.points).where(s.lead_id == lead_id).order_by(s.id)
                ).all()
            ]

    def rescore(self) -> RescoreReport:
        return run_rescore(self.runtime, self.clock.now())

    # -- requests ----------------------------------------------------------------------

    def sendgrid(self, events: list[dict[str, Any]], *, timestamp: str | None = None) -> Response:
        body = json.dumps(events).encode() + b"\r\n"
        stamp = timestamp or str(int(self.clock.now().timestamp()))
        return self.client.post(
            "/webhooks/sendgrid",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Signature": self.key.sign(stamp, body),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            },
        )

    def twilio(self, path: str, params: dict[str, str]) -> Response:
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, params)
        return self.client.post(
            path,
            content=urlencode(params),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )

    def site(self, events: Any) -> Response:
        body = json.dumps(events).encode()
        return self.client.post(
            "/events/site",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Leadops-Signature": site_signature(SITE_SECRET, body),
            },
        )


def sg_event(kind: str, lead_id: int, touch_id: int, at: datetime, **extra: Any) -> dict[str, Any]:
    """A SendGrid event as the Event Webhook posts it (custom_args at the top level)."""
    stamp = int(at.timestamp())
    event = {
        "email": extra.pop("email", "ada@example.com"),
        "timestamp": stamp,
        "event": kind,
        "sg_event_id": f"{kind}-{lead_id}-{touch_id}-{stamp}-{extra.pop('n', 0)}",
        "sg_message_id": f"msg{touch_id}.filterdrecv-5645d9c87f-abcde-1-5F5FC76C-9.0",
        "smtp-id": f"<msg{touch_id}@ismtpd0001p1lon1.sendgrid.net>",
        "category": ["nurture"],
        "lead_id": str(lead_id),
        "touch_id": str(touch_id),
    }
    event.update(extra)
    return event


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    params = {
        "AccountSid": "AC" + "0" * 32,
        "From": "whatsapp:+14155238886",
        "To": "whatsapp:+447700900123",
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
    }
    params.update(extra)
    return params


def inbound_params(sid: str, phone: str, body: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "From": f"whatsapp:{phone}",
        "To": "whatsapp:+14155238886",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "WaId": phone.lstrip("+"),
        "ProfileName": "Ada",
        "MessageType": "text",
        "ApiVersion": "2010-04-01",
    }


# -- SendGrid Inbound Parse ---------------------------------------------------------------

INBOUND_DOMAIN = "reply.northwind.example"
PARSE_BOUNDARY = "xYzZY"  # the boundary SendGrid's own Inbound Parse examples use


def parse_fields(
    to: str,
    sender: str = "Ada Lovelace <ada@harbourbank.example>",
    text: str = "Yes, let's talk.",
    *,
    subject: str = "Re: Your metrics guide",
    message_id: str = "<CAF=reply-1@mail.harbourbank.example>",
    headers: str = "",
    spf: str = "pass",
) -> dict[str, str]:
    """The fields of an Inbound Parse post (default, parsed mode) as SendGrid documents
    them: `envelope` and `charsets` are JSON strings, `SPF` upper case, `dkim` not JSON."""
    address = sender.rpartition("<")[2].rstrip(">")
    domain = address.rpartition("@")[2]
    return {
        "headers": (
            f"Received: by mx0047p1mdw1.sendgrid.net with SMTP id 7zB0UrTv3W\r\n"
            f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\nDate: Tue, 1 Dec 2026 13:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\n" + headers
        ),
        "dkim": f"{{@{domain} : pass}}" if spf == "pass" else "none",
        "to": to,
        "from": sender,
        "text": text,
        "html": "<div>" + text.split("\n")[0] + "</div>",
        "sender_ip": "209.85.220.41",
        "envelope": json.dumps({"to": [to.rpartition("<")[2].rstrip(">")], "from": address}),
        "attachments": "0",
        "subject": subject,
        "spam_score": "0.011",
        "charsets": json.dumps(
            {"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8", "text": "UTF-8", "html": "UTF-8"}
        ),
        "SPF": spf,
    }


def parse_body(
    fields: Mapping[str, str | bytes], files: Sequence[tuple[str, str, str, bytes]] = ()
) -> tuple[bytes, str]:
    """A multipart/form-data body of these fields and attachment parts (name, filename,
    type, bytes), and its Content-Type."""
    body = b""
    for name, value in fields.items():
        body += (
            (
                f'--{PARSE_BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            ).encode()
            + (value if isinstance(value, bytes) else value.encode())
            + b"\r\n"
        )
    for name, filename, kind, data in files:
        body += (
            (
                f"--{PARSE_BOUNDARY}\r\nContent-Disposition: form-data; "
                f'name="{name}"; filename="{filename}"\r\nContent-Type: {kind}\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    body += f"--{PARSE_BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={PARSE_BOUNDARY}"


def post_inbound_email(
    client: TestClient,
    key: SigningKey,
    body: bytes,
    content_type: str,
    timestamp: str,
    path: str = "/webhooks/sendgrid/inbound",
) -> Response:
    """POST an Inbound Parse body signed as SendGrid's Parse security policy signs it."""
    return client.post(
        path,
        content=body,
        headers={
            "Content-Type": content_type,
            "X-Twilio-Email-Event-Webhook-Signature": key.sign(timestamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
    )
