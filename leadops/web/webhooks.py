"""Provider and site webhooks: verify, store once in the inbox, answer fast.

Nothing is processed here: the rescore run (flows/rescore.py) applies stored events, and
a stored event that may raise a hand kicks the fast path (leadops.web.handoff). The one
exception is an SMS STOP, which suppresses SMS on arrival (leadops.engagement.sms_stop).
A request that is forged, stale, malformed or too large gets a 4xx and is counted in
webhook_rejections; an endpoint whose secret is not configured answers 503 (so the
provider retries later) unless LEADOPS_WEBHOOKS_INSECURE_DEV is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from leadops.engagement import inbox
from leadops.engagement.site import site_records, verify_site
from leadops.engagement.sms_stop import stop_sms_now
from leadops.models.events import SITE_EVENTS
from leadops.providers import inbound
from leadops.providers.sendgrid.events import sendgrid_records
from leadops.providers.sendgrid.inbound_parse import inbound_email_record
from leadops.providers.sendgrid.signature import verify_sendgrid
from leadops.providers.twilio.events import twilio_inbound_record, twilio_status_record
from leadops.providers.twilio.signature import verify_twilio
from leadops.web.deps import refuse, state_of
from leadops.web.guard import Refused, ascii_int, check_text, malformed, read_body
from leadops.web.handoff import kick

router = APIRouter()

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"
SITE_SIGNATURE = "X-Leadops-Signature"
SENDGRID_KEY = "LEADOPS_SENDGRID_WEBHOOK_PUBLIC_KEY"
INBOUND_EMAIL_KEY = "LEADOPS_INBOUND_EMAIL_PUBLIC_KEY"
MAX_FORM_FIELDS = 200
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _limit(request: Request) -> int:
    return state_of(request).settings.webhook_max_body_bytes


async def _body(request: Request) -> bytes:
    """The raw body: Content-Length checked first, read with a cap and a deadline."""
    return await read_body(request, _limit(request))


def _payloads(records: Sequence[inbound.InboxRecord]) -> None:
    for index, record in enumerate(records):
        check_text(record.payload, f"event {index}")


def _configured(request: Request, value: object, setting: str) -> None:
    """Refuse (503) before reading the body when the endpoint's secret is not set."""
    secret = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    if not secret and not state_of(request).settings.webhooks_insecure_dev:
        raise _unconfigured(setting)


def _unconfigured(setting: str) -> Refused:
    return Refused(
        503,
        "not_configured",
        f"{setting} is not set: this endpoint refuses unsigned requests "
        "(set LEADOPS_WEBHOOKS_INSECURE_DEV=true only for local development)",
    )


async def _store(request: Request, records: Sequence[inbound.InboxRecord]) -> int:
    state = state_of(request)
    stored = await run_in_threadpool(inbox.store, state.engine, records, state.clock.now())
    if stored:
        kick(request, records)
    return stored


# -- SendGrid ----------------------------------------------------------------------------


def _check_sendgrid(request: Request, body: bytes, key: str, setting: str) -> None:
    """SendGrid's ECDSA signature of timestamp + body (the Event Webhook's, and the Inbound
    Parse security policy's: the same headers and scheme), with a fresh timestamp."""
    state = state_of(request)
    if not key:
        if state.settings.webhooks_insecure_dev:
            return
        raise _unconfigured(setting)
    signature = request.headers.get(SENDGRID_SIGNATURE)
    timestamp = request.headers.get(SENDGRID_TIMESTAMP)
    if not signature or not timestamp:
        raise Refused(401, "unsigned", f"missing {SENDGRID_SIGNATURE} or {SENDGRID_TIMESTAMP}")
    stamp = ascii_int(timestamp, SENDGRID_TIMESTAMP, maximum=10**11)
    age = state.clock.now().timestamp() - stamp
    if abs(age) > state.settings.webhook_max_age_seconds:
        raise Refused(403, "stale", f"signed timestamp is {int(age)} s away from now")
    if not verify_sendgrid(key, signature, timestamp, body):
        raise Refused(403, "bad_signature", "signature does not verify")


@router.post("/webhooks/sendgrid")
async def sendgrid_events(request: Request) -> Response:
    """SendGrid Event Webhook: a JSON array of events."""
    settings = state_of(request).settings
    try:
        _configured(request, settings.sendgrid_webhook_public_key, SENDGRID_KEY)
        body = await _body(request)
        _check_sendgrid(request, body, settings.sendgrid_webhook_public_key, SENDGRID_KEY)
        records = sendgrid_records(body)
        _payloads(records)
    except Refused as refused:
        return await refuse(request, inbound.SENDGRID, refused)
    except inbound.BadPayload as exc:
        return await refuse(request, inbound.SENDGRID, malformed(str(exc)))
    stored = await _store(request, records)
    return JSONResponse({"received": len(records), "stored": stored})


@router.post("/webhooks/sendgrid/inbound")
async def sendgrid_inbound(request: Request) -> Response:
    """SendGrid Inbound Parse: one email to the inbound domain (a reply to a nurture email),
    multipart/form-data, signed by the Parse webhook's security policy."""
    settings = state_of(request).settings
    key = settings.inbound_email_public_key
    try:
        _configured(request, key, INBOUND_EMAIL_KEY)
        body = await read_body(request, settings.inbound_email_max_bytes)
        _check_sendgrid(request, body, key, INBOUND_EMAIL_KEY)
        record = await run_in_threadpool(
            inbound_email_record,
            body,
            request.headers.get("content-type", ""),
            domain=settings.inbound_email_domain,
            key=settings.signing_key(),
        )
        _payloads([record])
    except Refused as refused:
        return await refuse(request, inbound.SENDGRID_INBOUND, refused)
    except inbound.BadPayload as exc:
        return await refuse(request, inbound.SENDGRID_INBOUND, malformed(str(exc)))
    stored = await _store(request, [record])
    return JSONResponse({"received": 1, "stored": stored, "kind": record.kind})


# -- Twilio ------------------------------------------------------------------------------


def _twilio_params(request: Request, body: bytes) -> dict[str, str]:
    state = state_of(request)
    try:
        pairs = parse_qsl(
            body.decode(),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise malformed(f"body is not form-encoded: {exc}") from exc
    params = dict(pairs)
    check_text(params, "form fields")
    token = state.settings.twilio_auth_token
    if token is None or not token.get_secret_value():
        if state.settings.webhooks_insecure_dev:
            return params
        raise _unconfigured("LEADOPS_TWILIO_AUTH_TOKEN")
    signature = request.headers.get(TWILIO_SIGNATURE)
    if not signature:
        raise Refused(401, "unsigned", f"missing {TWILIO_SIGNATURE}")
    url = state.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not verify_twilio(token.get_secret_value(), url, params, signature):
        raise Refused(403, "bad_signature", "signature does not verify for " + url)
    return params


@router.post("/webhooks/twilio/status")
async def twilio_status(request: Request) -> Response:
    """Twilio message status callback; the StatusCallback URL carries ?touch_id=<id>."""
    raw_touch = request.query_params.get("touch_id")
    token = state_of(request).settings.twilio_auth_token
    try:
        _configured(request, token, "LEADOPS_TWILIO_AUTH_TOKEN")
        body = await _body(request)
        params = _twilio_params(request, body)
        touch_id = ascii_int(raw_touch, "touch_id") if raw_touch else None
        record = twilio_status_record(params, touch_id)
    except Refused as refused:
        return await refuse(request, inbound.TWILIO_STATUS, refused)
    except inbound.BadPayload as exc:
        return await refuse(request, inbound.TWILIO_STATUS, malformed(str(exc)))
    await _store(request, [record])
    return Response(status_code=204)


@router.post("/webhooks/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    """An inbound WhatsApp message or SMS (a From without `whatsapp:`): a reply, or an
    opt-out, opt-in or (SMS) help keyword."""
    token = state_of(request).settings.twilio_auth_token
    try:
        _configured(request, token, "LEADOPS_TWILIO_AUTH_TOKEN")
        body = await _body(request)
        record = twilio_inbound_record(_twilio_params(request, body))
    except Refused as refused:
        return await refuse(request, inbound.TWILIO_INBOUND, refused)
    except inbound.BadPayload as exc:
        return await refuse(request, inbound.TWILIO_INBOUND, malformed(str(exc)))
    await _store(request, [record])
    state = state_of(request)
    await run_in_threadpool(stop_sms_now, state.engine, record.payload, state.clock.now())
    return Response(EMPTY_TWIML, media_type="application/xml")


# -- site events -------------------------------------------------------------------------


@router.post("/events/site")
async def site_events(request: Request) -> Response:
    """Signed events from the website or product (a JSON object or array of objects)."""
    state = state_of(request)
    try:
        _configured(request, state.settings.site_events_secret, "LEADOPS_SITE_EVENTS_SECRET")
        body = await _body(request)
        secret = state.settings.site_events_secret
        if secret is None or not secret.get_secret_value():
            if not state.settings.webhooks_insecure_dev:
                raise _unconfigured("LEADOPS_SITE_EVENTS_SECRET")
        else:
            header = request.headers.get(SITE_SIGNATURE)
            if not header:
                raise Refused(401, "unsigned", f"missing {SITE_SIGNATURE}: sha256=<hex HMAC>")
            if not verify_site(secret.get_secret_value(), body, header):
                raise Refused(403, "bad_signature", "signature does not verify")
        records = site_records(body)
        _payloads(records)
    except Refused as refused:
        return await refuse(request, inbound.SITE, refused)
    except inbound.BadPayload as exc:
        return await refuse(request, inbound.SITE, malformed(str(exc)))
    stored = await _store(request, records)
    unknown = sorted({r.kind for r in records if r.kind not in SITE_EVENTS})
    return JSONResponse(
        {"received": len(records), "stored": stored, "unknown_types": unknown}, status_code=202
    )
