"""Property-based fuzzing of every endpoint of the webhooks app.

The routes read the raw request, so the strategies build real provider payloads (SendGrid
event batches, Twilio status callbacks and inbound messages, site events, form
submissions, unsubscribe and acknowledge links), sign them with test signers (an ECDSA
P-256 key for SendGrid, Twilio's HMAC-SHA1, the site and form HMAC-SHA256) and then
mutate them: unsigned, forged, bodies changed after signing, odd header values.

Properties, for every request:
- the answer is never a 5xx;
- an unsigned or forged request changes nothing (no inbox row, no lead, no suppression,
  no form submission, no escalation) and is counted in webhook_rejections;
- whatever a signed request got stored can be applied by the next inbox pass without an
  error (one stored event must never stop every rescore).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import string
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from twilio.request_validator import RequestValidator

from leadops.core.clock import SimulatedClock
from leadops.core.tokens import sign
from leadops.delivery.compose import UNSUBSCRIBE
from leadops.engagement.rescore import run_inbox
from leadops.engagement.site import site_signature
from leadops.models import (
    ESCALATIONS,
    FORM_SUBMISSIONS,
    INBOX,
    LEADS,
    STAGE_CHANGES,
    WEBHOOK_REJECTIONS,
)
from leadops.models.events import SITE_EVENTS
from leadops.providers.sendgrid.events import SENDGRID_EVENTS
from leadops.runtime import load_runtime
from leadops.sales.escalation import escalate
from leadops.sales.messages import ack_url
from leadops.web.app import create_app
from tests.engagement import (
    INBOUND_DOMAIN,
    PUBLIC_URL,
    SITE_SECRET,
    T0,
    TWILIO_TOKEN,
    SigningKey,
    engagement_settings,
    new_signing_key,
    parse_body,
    parse_fields,
)
from tests.integration.test_escalation import runtime_for

# A fixed budget in the suite (12 examples per property, 6 where each applies the inbox
# after every request; about 40 s on both databases), the same examples on every run;
# LEADOPS_FUZZ_EXAMPLES=500 for a longer run with new random examples. In CI a failure is
# reported as found, not shrunk (shrinking can take minutes).
LONG_RUN = "LEADOPS_FUZZ_EXAMPLES" in os.environ
settings.register_profile(
    "web-fuzz",
    max_examples=int(os.environ.get("LEADOPS_FUZZ_EXAMPLES", "12")),
    deadline=None,
    database=None,
    derandomize=not LONG_RUN,
    phases=[p for p in Phase if not (os.environ.get("CI") and p is Phase.shrink)],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FUZZ = settings.get_profile("web-fuzz")
FORM_SECRET = "fuzz-form-secret-0123456789"
# The statuses Twilio documents for a message.
TWILIO_STATUSES = [
    "accepted",
    "queued",
    "sending",
    "sent",
    "failed",
    "delivered",
    "undelivered",
    "receiving",
    "received",
    "read",
]
LEAD_EMAIL = "ada@example.com"
LEAD_PHONE = "+447700900123"


# -- the world: one app, one database, one lead with a sent touch ------------------------


class World:
    def __init__(self, tmp: Path, engine: Engine, *, insecure: bool = False) -> None:
        self.key = new_signing_key()
        if insecure:
            self.settings = engagement_settings(
                tmp,
                self.key,
                sendgrid_webhook_public_key="",
                twilio_auth_token="",
                site_events_secret="",
                webhooks_insecure_dev=True,
            )
        else:
            self.settings = engagement_settings(
                tmp,
                self.key,
                inbound_email_domain=INBOUND_DOMAIN,
                inbound_email_public_key=self.key.public_b64,
            )
        self.engine = engine
        self.clock = SimulatedClock(T0)
        self.client = TestClient(create_app(self.settings, engine, self.clock))
        self.runtime = load_runtime(self.settings, engine=engine)
        with engine.begin() as connection:
            self.lead_id = int(
                connection.execute(
                    LEADS.insert().values(
                        email=LEAD_EMAIL,
                        phone=LEAD_PHONE,
                        first_name="Ada",
                        timezone="UTC",
                        lifecycle_stage="lead",
                        email_consent=True,
                        whatsapp_consent=True,
                        created_at=T0,
                        updated_at=T0,
                    )
                ).inserted_primary_key[0]
            )

    def state(self) -> tuple[Any, ...]:
        """Everything an unsigned request must not change."""
        with self.engine.connect() as connection:
            return (
                connection.execute(sa.select(sa.func.count()).select_from(INBOX)).scalar(),
                connection.execute(sa.select(LEADS).order_by(LEADS.c.id)).all(),
                connection.execute(
                    sa.select(sa.func.count()).select_from(FORM_SUBMISSIONS)
                ).scalar(),
                connection.execute(sa.select(ESCALATIONS).order_by(ESCALATIONS.c.id)).all(),
            )

    def rejections(self) -> int:
        with self.engine.connect() as connection:
            total = connection.execute(
                sa.select(sa.func.coalesce(sa.func.sum(WEBHOOK_REJECTIONS.c["count"]), 0))
            ).scalar()
        return int(total or 0)

    def apply_inbox(self) -> None:
        """The next inbox pass must apply whatever was stored."""
        run_inbox(self.runtime, self.clock.now())

    def check(self, send: Callable[[], Response], *, trusted: bool) -> Response:
        """Send one request and assert the properties for it."""
        before, refused = self.state(), self.rejections()
        response = send()
        assert response.status_code < 500, (response.status_code, response.text[:500])
        # A refusal is counted; 422 is a form submission kept in quarantine, not refused.
        if 400 <= response.status_code < 500 and response.status_code != 422:
            assert self.rejections() == refused + 1, "a 4xx must be counted"
        if not trusted:
            assert 400 <= response.status_code < 500, response.text[:300]
            assert self.state() == before, "an unsigned request changed something"
        else:
            self.apply_inbox()
        return response


@pytest.fixture
def world(tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> World:
    """On SQLite and on PostgreSQL, whose JSON refuses NUL and unpaired surrogates."""
    monkeypatch.setenv("LEADOPS_FORM_CONTACT_US_SECRET", FORM_SECRET)
    monkeypatch.setenv("LEADOPS_FORM_WEBINAR_SECRET", FORM_SECRET)
    return World(tmp_path, engine)


@pytest.fixture
def insecure(tmp_path: Path, engine: Engine) -> World:
    return World(tmp_path, engine, insecure=True)


# -- building blocks ---------------------------------------------------------------------

texts = st.text(max_size=40)
odd_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        ["", "0", "-1", "1e400", "²", "\u0661\u0662\u0663", "\uff11\uff12", "9" * 30, " 7", "0x10"]
    ),
    st.integers(min_value=0, max_value=2**70).map(str),
)
json_leaf = st.one_of(st.none(), st.booleans(), texts, odd_numbers, st.just("\ud800\x00"))
json_values = st.recursive(
    json_leaf,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
odd_text = st.one_of(
    texts,
    st.sampled_from(["\x00", "a\x00b", "é", "\r\n", "=cmd|'/c calc'!A1", "\u2028"]),
)
# Text with an unpaired surrogate: what JSON can carry and no database can store.
json_text = odd_text | st.just("\ud800")


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


mutations = st.sampled_from(["none", "truncate", "append", "flip", "deep", "binary"])


def mutate(body: bytes, how: str, data: st.DataObject) -> bytes:
    if how == "truncate" and body:
        return body[: data.draw(st.integers(0, len(body) - 1))]
    if how == "append":
        return body + data.draw(st.binary(min_size=1, max_size=20))
    if how == "flip" and body:
        at = data.draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([body[at] ^ 0x20]) + body[at + 1 :]
    if how == "deep":
        return deep(data.draw(st.sampled_from([50, 1000, 100_000])))
    if how == "binary":
        return data.draw(st.binary(max_size=200))
    return body


# A Content-Length header that disagrees with the body, or is not a number at all.
odd_lengths = st.sampled_from(
    [b"\xc2\xb2", b"\xb2", "\u0661".encode(), b"9" * 40, b"-1", b"1e3", b" ", b"+5", b"0x10"]
)


# -- SendGrid ----------------------------------------------------------------------------


@st.composite
def sendgrid_event(draw: st.DrawFn, world: World) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(SENDGRID_EVENTS)) | texts)
    event: dict[str, Any] = {
        "email": draw(st.sampled_from([LEAD_EMAIL, "x@example.com"]) | json_text),
        "timestamp": draw(
            st.integers(int(T0.timestamp()) - 86_400, int(T0.timestamp())) | odd_numbers
        ),
        "event": kind,
        "sg_event_id": draw(texts),
        "sg_message_id": draw(texts),
    }
    for name in ("lead_id", "touch_id"):
        event[name] = draw(st.just(str(world.lead_id)) | odd_numbers | st.none())
    for name in ("url", "reason", "type", "sg_machine_open", "kind", "category"):
        if draw(st.booleans()):
            event[name] = draw(json_values)
    return event


def sendgrid_post(world: World, body: bytes, headers: dict[str, Any]) -> Callable[[], Response]:
    return lambda: world.client.post("/webhooks/sendgrid", content=body, headers=headers)


def sendgrid_headers(key: SigningKey, stamp: str, body: bytes) -> dict[str, Any]:
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": key.sign(stamp, body),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


@FUZZ
@given(data=st.data())
def test_sendgrid_events(world: World, data: st.DataObject) -> None:
    events = data.draw(st.lists(sendgrid_event(world), min_size=0, max_size=4))
    body = _dumps(events) + b"\r\n"
    stamp = str(int(world.clock.now().timestamp()))
    # Correctly signed: stored or refused with a 4xx, and applicable afterwards.
    world.check(sendgrid_post(world, body, sendgrid_headers(world.key, stamp, body)), trusted=True)
    # Changed after signing, signed by another key, unsigned, or with odd header values.
    how = data.draw(mutations)
    changed = mutate(body, how, data)
    if changed != body:
        headers = sendgrid_headers(world.key, stamp, body)
        world.check(sendgrid_post(world, changed, headers), trusted=False)
    other = new_signing_key()
    world.check(sendgrid_post(world, body, sendgrid_headers(other, stamp, body)), trusted=False)
    world.check(sendgrid_post(world, body, {"Content-Type": "application/json"}), trusted=False)
    odd_stamp = data.draw(
        st.sampled_from(["²", "\uff11\uff16\uff10\uff10", "9" * 5000, "-5", "", " 1", "1.5"])
        | texts
    )
    headers = sendgrid_headers(world.key, stamp, body)
    headers["X-Twilio-Email-Event-Webhook-Timestamp"] = odd_stamp.encode("utf-8", "replace")
    if odd_stamp != stamp:
        world.check(sendgrid_post(world, body, headers), trusted=False)
    headers = sendgrid_headers(world.key, stamp, body)
    headers["Content-Length"] = data.draw(odd_lengths)
    world.check(sendgrid_post(world, body, headers), trusted=False)


# -- SendGrid Inbound Parse --------------------------------------------------------------

hostile_field = (
    texts
    | st.binary(max_size=40)
    | st.sampled_from(
        ["\x00", "{}", "[]", '{"to": 5}', '{"to": ["a@b"], "from": ""}', "<>", "=?utf-8?q?x?="]
    )
)
parse_names = st.sampled_from(
    [
        "from",
        "to",
        "cc",
        "envelope",
        "charsets",
        "headers",
        "text",
        "html",
        "subject",
        "SPF",
        "dkim",
        "email",
        "attachment-info",
        "attachments",
    ]
)


@settings(FUZZ, max_examples=max(FUZZ.max_examples // 2, 1))  # each applies the inbox
@given(data=st.data())
def test_inbound_emails(world: World, data: st.DataObject) -> None:
    to = data.draw(
        st.sampled_from([f"reply@{INBOUND_DOMAIN}", f"reply+1-{'0' * 20}@{INBOUND_DOMAIN}"])
    )
    fields: dict[str, str | bytes] = dict(
        parse_fields(to, f"Ada <{LEAD_EMAIL}>", data.draw(texts), message_id=data.draw(texts))
    )
    for name in data.draw(st.lists(parse_names, max_size=3)):
        fields[name] = data.draw(hostile_field)
    body, content_type = parse_body(fields)
    stamp = str(int(world.clock.now().timestamp()))
    path = "/webhooks/sendgrid/inbound"

    def post(content: bytes, headers: dict[str, Any]) -> Callable[[], Response]:
        return lambda: world.client.post(path, content=content, headers=headers)

    def signed(key: SigningKey) -> dict[str, Any]:
        return {
            "Content-Type": content_type,
            "X-Twilio-Email-Event-Webhook-Signature": key.sign(stamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }

    world.check(post(body, signed(world.key)), trusted=True)
    changed = mutate(body, data.draw(mutations), data)
    if changed != body:
        world.check(post(changed, signed(world.key)), trusted=False)
    world.check(post(body, signed(new_signing_key())), trusted=False)
    world.check(post(body, {"Content-Type": content_type}), trusted=False)


# -- Twilio ------------------------------------------------------------------------------


def twilio_post(
    world: World, path: str, params: dict[str, str], *, sign_with: str | None = TWILIO_TOKEN
) -> Callable[[], Response]:
    body = urlencode(params)
    headers: dict[str, Any] = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign_with is not None:
        validator = RequestValidator(sign_with)
        headers["X-Twilio-Signature"] = validator.compute_signature(PUBLIC_URL + path, params)
    return lambda: world.client.post(path, content=body, headers=headers)


statuses = st.sampled_from(sorted(TWILIO_STATUSES)) | texts
number_text = odd_numbers.map(str) | texts


@st.composite
def status_callback(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    sid = draw(st.just("SM" + "a" * 32) | st.text(string.ascii_letters + string.digits) | texts)
    status = draw(statuses)
    params = {
        "AccountSid": "AC" + "0" * 32,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": draw(statuses),
        "To": "whatsapp:" + LEAD_PHONE,
    }
    for name in ("ErrorCode", "Price", "PriceUnit", "ChannelStatusMessage"):
        if draw(st.booleans()):
            params[name] = draw(number_text)
    touch = draw(st.none() | number_text)
    path = "/webhooks/twilio/status"
    if touch is not None:
        path += "?touch_id=" + quote(touch, safe="")
    return path, {k: v for k, v in params.items() if "\x00" not in k}


@FUZZ
@given(callback=status_callback(), data=st.data())
def test_twilio_status_callbacks(
    world: World, callback: tuple[str, dict[str, str]], data: st.DataObject
) -> None:
    path, params = callback
    world.check(twilio_post(world, path, params), trusted=True)
    world.check(twilio_post(world, path, params, sign_with="not-the-token"), trusted=False)
    world.check(twilio_post(world, path, params, sign_with=None), trusted=False)
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, params)
    changed = mutate(urlencode(params).encode(), data.draw(mutations), data)
    if changed != urlencode(params).encode():
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        world.check(
            lambda: world.client.post(path, content=changed, headers=headers), trusted=False
        )


@FUZZ
@given(
    body=odd_text,
    sender=st.sampled_from(["whatsapp:" + LEAD_PHONE]) | odd_text,
    sid=st.just("SM" + "b" * 32) | texts,
    extra=st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=8), texts, max_size=3),
)
def test_twilio_inbound_messages(
    world: World, body: str, sender: str, sid: str, extra: dict[str, str]
) -> None:
    params = {**extra, "MessageSid": sid, "From": sender, "Body": body, "NumMedia": "0"}
    path = "/webhooks/twilio/inbound"
    world.check(twilio_post(world, path, params), trusted=True)
    world.check(twilio_post(world, path, params, sign_with="forged"), trusted=False)
    world.check(twilio_post(world, path, params, sign_with=None), trusted=False)


# -- site events -------------------------------------------------------------------------


@st.composite
def site_event(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": draw(texts | odd_numbers),
        "type": draw(st.sampled_from(sorted(SITE_EVENTS)) | texts),
        "email": draw(st.just(LEAD_EMAIL) | json_text),
        "occurred_at": draw(
            st.sampled_from(
                [
                    T0.isoformat(),
                    "0001-01-01T00:00:00+01:00",
                    "9999-12-31T23:59:59-01:00",
                    "2026-13-01T00:00Z",
                    "",
                ]
            )
            | texts
            | odd_numbers
        ),
    }
    if draw(st.booleans()):
        event["properties"] = draw(json_values | st.just({"url": "https://x.example/pricing"}))
    return event


def site_post(world: World, body: bytes, signature: str | None) -> Callable[[], Response]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Leadops-Signature"] = signature
    return lambda: world.client.post("/events/site", content=body, headers=headers)


@FUZZ
@given(events=st.lists(site_event(), max_size=3) | site_event(), data=st.data())
def test_site_events(world: World, events: Any, data: st.DataObject) -> None:
    body = _dumps(events)
    world.check(site_post(world, body, site_signature(SITE_SECRET, body)), trusted=True)
    world.check(site_post(world, body, site_signature("forged", body)), trusted=False)
    world.check(site_post(world, body, None), trusted=False)
    odd = data.draw(st.sampled_from(["sha256=é", "sha256=" + "0" * 64, "é" * 10]) | texts)
    world.check(
        lambda: world.client.post(
            "/events/site",
            content=body,
            headers={"X-Leadops-Signature": odd.encode("latin-1", "replace")},
        ),
        trusted=False,
    )
    changed = mutate(body, data.draw(mutations), data)
    if changed != body:
        world.check(site_post(world, changed, site_signature(SITE_SECRET, body)), trusted=False)


# -- web forms ---------------------------------------------------------------------------

FORBIDDEN = ["lifecycle_stage", "email_consent", "source", "crm_id", "created_at", "unsubscribed"]
form_fields = st.dictionaries(
    st.sampled_from(["email", "work_email", "name_first", "company", "message", *FORBIDDEN])
    | texts,
    json_text | st.sampled_from(["sql", "true", "unsubscribed", LEAD_EMAIL, "2001-01-01"]),
    max_size=6,
)


@FUZZ
@given(
    fields=form_fields,
    form=st.sampled_from(["contact-us", "webinar"]),
    encoded=st.booleans(),
    data=st.data(),
)
def test_form_submissions(
    world: World, fields: dict[str, str], form: str, encoded: bool, data: st.DataObject
) -> None:
    if encoded:
        body = urlencode(fields, errors="surrogatepass").encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        body = _dumps(fields)
        content_type = "application/json"
    signed = {
        "Content-Type": content_type,
        "X-Leadops-Form-Secret": FORM_SECRET,
        "X-Leadops-Signature": "sha256="
        + hmac.new(FORM_SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }
    path = f"/forms/lead?form={form}"

    def post(content: bytes, headers: dict[str, Any]) -> Callable[[], Response]:
        return lambda: world.client.post(path, content=content, headers=headers)

    world.check(post(body, signed), trusted=True)
    with world.engine.connect() as connection:
        leads = connection.execute(sa.select(LEADS)).mappings().all()
        scored = dict(
            connection.execute(
                sa.select(STAGE_CHANGES.c.lead_id, STAGE_CHANGES.c.to_stage).order_by(
                    STAGE_CHANGES.c.id
                )
            ).all()
        )
    for lead in leads:  # whatever the form said: only scoring moves a stage
        assert lead["lifecycle_stage"] == scored.get(lead["id"], "lead"), lead
        assert lead["crm_id"] is None and lead["unsubscribed_at"] is None, lead
        assert lead["created_at"].replace(tzinfo=UTC) == T0, lead
        if lead["id"] != world.lead_id:
            assert lead["email_consent"] is False and lead["whatsapp_consent"] is False
            assert lead["source"].startswith("web-form:"), lead
    world.check(post(body, {"Content-Type": content_type}), trusted=False)
    forged = {**signed, "X-Leadops-Form-Secret": "nope", "X-Leadops-Signature": "sha256=00"}
    world.check(post(body, forged), trusted=False)
    odd = {**signed, "Content-Length": data.draw(odd_lengths)}
    world.check(post(body, odd), trusted=False)
    if form == "webinar":
        changed = mutate(body, data.draw(mutations), data)
        if changed != body:
            world.check(post(changed, signed), trusted=False)


# -- links: unsubscribe, acknowledge, confirm --------------------------------------------

token_chars = string.ascii_letters + string.digits + "-_.=+%~ "  # no "/": another route


def variants(token: str) -> st.SearchStrategy[str]:
    """A signed token spelled otherwise: padded, cut, a character changed, or junk."""
    return st.one_of(
        st.just(token + "="),
        st.just(token + "=="),
        st.integers(1, len(token) - 1).map(lambda i: token[:i]),
        st.tuples(st.integers(0, len(token) - 1), st.sampled_from(token_chars)).map(
            lambda p: token[: p[0]] + p[1] + token[p[0] + 1 :]
        ),
        st.text(token_chars, min_size=1, max_size=80),
    )


@FUZZ
@given(data=st.data())
def test_unsubscribe_links(world: World, data: st.DataObject) -> None:
    key = world.settings.signing_key()
    token = sign(UNSUBSCRIBE, {"lead": world.lead_id, "channel": "all"}, key)
    bad = data.draw(variants(token))
    body = data.draw(st.sampled_from([b"List-Unsubscribe=One-Click", b""]) | st.binary(max_size=50))
    if bad != token:
        path = "/u/" + quote(bad, safe="")
        world.check(lambda: world.client.post(path, content=body), trusted=False)
        world.check(lambda: world.client.get(path), trusted=False)
    forged = sign(UNSUBSCRIBE, {"lead": world.lead_id, "channel": "all"}, b"k" * 32)
    world.check(lambda: world.client.post("/u/" + forged, content=body), trusted=False)
    odd_lead = data.draw(odd_numbers | texts)
    strange = sign(UNSUBSCRIBE, {"lead": odd_lead, "channel": data.draw(texts)}, key)
    response = world.client.post("/u/" + strange, content=body)
    assert response.status_code < 500


@pytest.fixture
def escalated(tmp_path: Path, sqlite_engine: Engine) -> tuple[TestClient, Any, str]:
    from tests.integration.test_escalation import NOW, add_lead

    runtime = runtime_for(tmp_path, sqlite_engine)
    lead_id = add_lead(sqlite_engine, "olivia@acme.example")
    result = escalate(sqlite_engine, lead_id, "demo_requested", "e1", 80, [], NOW, runtime=runtime)
    with sqlite_engine.connect() as connection:
        assignment = connection.execute(
            sa.select(ESCALATIONS.c.assignment_id).where(ESCALATIONS.c.id == result.escalation_id)
        ).scalar_one()
    url = ack_url(runtime.settings, result.escalation_id, assignment, NOW)
    client = TestClient(create_app(runtime.settings, sqlite_engine, SimulatedClock(NOW)))
    return client, runtime, url.split("/escalations/ack/", 1)[1]


@FUZZ
@given(data=st.data())
def test_acknowledge_links(
    escalated: tuple[TestClient, Any, str], sqlite_engine: Engine, data: st.DataObject
) -> None:
    client, _, token = escalated
    bad = data.draw(variants(token))
    body = data.draw(st.binary(max_size=50) | st.just(b"by=Mallory"))
    before = _escalations(sqlite_engine)
    if bad != token:
        path = "/escalations/ack/" + quote(bad, safe="")
        for response in (client.get(path), client.post(path, content=body)):
            assert 400 <= response.status_code < 500
        assert _escalations(sqlite_engine) == before
    odd = {"Content-Length": data.draw(odd_lengths)}
    response = client.post("/escalations/ack/" + token, content=body, headers=odd)
    assert 400 <= response.status_code < 500
    assert _escalations(sqlite_engine) == before


def _escalations(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(ESCALATIONS)).all())


@FUZZ
@given(data=st.data())
def test_form_confirmation_links(world: World, data: st.DataObject) -> None:
    from leadops.intake.forms import CONFIRM_PURPOSE

    token = sign(
        CONFIRM_PURPOSE, {"s": 1}, world.settings.signing_key(), expires_at=T0 + timedelta(days=1)
    )
    bad = data.draw(variants(token))
    body = data.draw(
        st.just(urlencode({"token": bad}).encode()) | st.binary(max_size=60) | st.just(b"token=")
    )
    world.check(
        lambda: world.client.post(
            "/forms/confirm",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        trusted=False,
    )
    if bad != token:
        world.check(
            lambda: world.client.get("/forms/confirm", params={"token": bad}), trusted=False
        )


# -- with LEADOPS_WEBHOOKS_INSECURE_DEV: nothing is signed, nothing may break ------------


@settings(FUZZ, max_examples=max(FUZZ.max_examples // 2, 1))  # seven requests, each applied
@given(
    sendgrid=st.lists(st.dictionaries(texts, json_values, max_size=4), max_size=3),
    events=st.lists(site_event(), max_size=3),
    callback=status_callback(),
    raw=st.binary(max_size=100),
)
def test_insecure_dev_mode_never_answers_5xx_and_never_stores_what_rescore_cannot_apply(
    insecure: World,
    sendgrid: list[dict[str, Any]],
    events: list[dict[str, Any]],
    callback: tuple[str, dict[str, str]],
    raw: bytes,
) -> None:
    w = insecure
    path, params = callback
    requests: Iterator[Callable[[], Response]] = iter(
        [
            lambda: w.client.post("/webhooks/sendgrid", content=_dumps(sendgrid)),
            lambda: w.client.post("/webhooks/sendgrid", content=raw),
            lambda: w.client.post("/events/site", content=_dumps(events)),
            lambda: w.client.post("/events/site", content=raw),
            lambda: w.client.post(path, content=urlencode(params)),
            lambda: w.client.post("/webhooks/twilio/inbound", content=raw),
            lambda: w.client.post("/webhooks/twilio/status", content=deep(5000)),
        ]
    )
    for send in requests:
        w.check(send, trusted=True)


# -- known-hostile values, always tried --------------------------------------------------

HOSTILE_NUMBERS = [
    "2147483648",
    "9" * 30,
    "\u00b2",
    "-1",
    "1e999",
    "\uff11",
    "99999999999999999999",
]


@FUZZ
@given(
    field=st.sampled_from(["touch_id", "ErrorCode", "Price", "SmsStatus", "MessageStatus"]),
    value=st.sampled_from(HOSTILE_NUMBERS),
    status=st.sampled_from(["failed", "undelivered", "delivered", "read"]),
)
def test_signed_status_callbacks_with_hostile_numbers_never_block_the_inbox(
    world: World, field: str, value: str, status: str
) -> None:
    params = {"MessageSid": "SM" + "c" * 32, "MessageStatus": status, "ErrorCode": "63003"}
    path = "/webhooks/twilio/status?touch_id=1"
    if field == "touch_id":
        path = "/webhooks/twilio/status?touch_id=" + quote(value, safe="")
    else:
        params[field] = value
    world.check(twilio_post(world, path, params), trusted=True)


@FUZZ
@given(
    field=st.sampled_from(["touch_id", "lead_id"]),
    value=st.sampled_from(HOSTILE_NUMBERS) | st.integers(min_value=2**31),
    kind=st.sampled_from(["open", "click", "bounce", "delivered"]),
)
def test_signed_sendgrid_events_with_hostile_ids_never_block_the_inbox(
    world: World, field: str, value: object, kind: str
) -> None:
    event = {"event": kind, "timestamp": int(T0.timestamp()), "email": LEAD_EMAIL, field: value}
    body = _dumps([event])
    stamp = str(int(T0.timestamp()))
    world.check(sendgrid_post(world, body, sendgrid_headers(world.key, stamp, body)), trusted=True)


@FUZZ
@given(
    field=st.sampled_from([*FORBIDDEN, "whatsapp_consent", "unsubscribed_at", "score"]),
    value=st.sampled_from(["sql", "customer", "unsubscribed", "true", "2001-01-01T00:00Z"]),
)
def test_a_signed_form_never_changes_an_existing_lead(world: World, field: str, value: str) -> None:
    with world.engine.connect() as connection:
        before = connection.execute(sa.select(LEADS).where(LEADS.c.id == world.lead_id)).one()
    body = _dumps({"email": LEAD_EMAIL, field: value, "lifecycle_stage": value})
    signature = hmac.new(FORM_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Leadops-Signature": "sha256=" + signature}
    response = world.client.post("/forms/lead?form=webinar", content=body, headers=headers)
    assert response.status_code in (200, 202), response.text
    with world.engine.connect() as connection:
        after = connection.execute(sa.select(LEADS).where(LEADS.c.id == world.lead_id)).one()
    assert after == before
