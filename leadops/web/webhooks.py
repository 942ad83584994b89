"""Provider and site webhooks: verify, store once in the inbox, answer fast.

Nothing is processed here: the rescore run (flows/rescore.py) applies stored events.
A request that is forged, stale, malformed or too large gets a 4xx and is counted in
webhook_rejections; an endpoint whose secret is not configured answers 503 (so the
provider retries later) unless LEADOPS_WEBHOOKS_INSECURE_DEV is set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from leadops import inbox
from leadops.signatures import verify_sendgrid, verify_site, verify_twilio
from leadops.web.app import state_of

log = logging.getLogger("leadops.webhooks")

router = APIRouter()

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"
SITE_SIGNATURE = "X-Leadops-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class Refused(Exception):
    """The request is refused: `status` and a message safe to show the caller."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


async def _refuse(request: Request, source: str, refused: Refused) -> JSONResponse:
    state = state_of(request)
    await run_in_threadpool(
        inbox.count_rejection, state.engine, source, refused.reason, state.clock.now()
    )
    log.warning("%s webhook refused (%s): %s", source, refused.reason, refused.message)
    return JSONResponse({"error": refused.message}, status_code=refused.status)


async def _body(request: Request) -> bytes:
    """The raw body, refusing anything above LEADOPS_WEBHOOK_MAX_BODY_BYTES."""
    limit = state_of(request).settings.webhook_max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, "too_large", f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, "too_large", f"body larger than {limit} bytes")
    return bytes(body)


def _unconfigured(setting: str) -> Refused:
    return Refused(
        503,
        "not_configured",
        f"{setting} is not set: this endpoint refuses unsigned requests "
        "(set LEADOPS_WEBHOOKS_INSECURE_DEV=true only for local development)",
    )


async def _store(request: Request, records: Sequence[inbox.InboxRecord]) -> int:
    state = state_of(request)
    return await run_in_threadpool(inbox.store, state.engine, records, state.clock.now())


# -- SendGrid ----------------------------------------------------------------------------


def _check_sendgrid(request: Request, body: bytes) -> None:
    state = state_of(request)
    key = state.settings.sendgrid_webhook_public_key
    if not key:
        if state.settings.webhooks_insecure_dev:
            return
        raise _unconfigured("LEADOPS_SENDGRID_WEBHOOK_PUBLIC_KEY")
    signature = request.headers.get(SENDGRID_SIGNATURE)
    timestamp = request.headers.get(SENDGRID_TIMESTAMP)
    if not signature or not timestamp:
        raise Refused(401, "unsigned", f"missing {SENDGRID_SIGNATURE} or {SENDGRID_TIMESTAMP}")
    if not timestamp.isdigit():
        raise Refused(400, "malformed", f"{SENDGRID_TIMESTAMP} must be Unix seconds")
    age = state.clock.now().timestamp() - int(timestamp)
    if abs(age) > state.settings.webhook_max_age_seconds:
        raise Refused(403, "stale", f"signed timestamp is {int(age)} s away from now")
    if not verify_sendgrid(key, signature, timestamp, body):
        raise Refused(403, "bad_signature", "signature does not verify")


@router.post("/webhooks/sendgrid")
async def sendgrid_events(request: Request) -> Response:
    """SendGrid Event Webhook: a JSON array of events."""
    try:
        body = await _body(request)
        _check_sendgrid(request, body)
        records = inbox.sendgrid_records(body)
    except Refused as refused:
        return await _refuse(request, inbox.SENDGRID, refused)
    except inbox.BadPayload as exc:
        return await _refuse(request, inbox.SENDGRID, Refused(400, "malformed", str(exc)))
    stored = await _store(request, records)
    return JSONResponse({"received": len(records), "stored": stored})


# -- Twilio ------------------------------------------------------------------------------


def _twilio_params(request: Request, body: bytes) -> dict[str, str]:
    state = state_of(request)
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "malformed", f"body is not form-encoded: {exc}") from exc
    params = dict(pairs)
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
    try:
        body = await _body(request)
        params = _twilio_params(request, body)
        if raw_touch is not None and not raw_touch.isdigit():
            raise Refused(400, "malformed", "touch_id must be a number")
        record = inbox.twilio_status_record(params, int(raw_touch) if raw_touch else None)
    except Refused as refused:
        return await _refuse(request, inbox.TWILIO_STATUS, refused)
    except inbox.BadPayload as exc:
        return await _refuse(request, inbox.TWILIO_STATUS, Refused(400, "malformed", str(exc)))
    await _store(request, [record])
    return Response(status_code=204)


@router.post("/webhooks/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    """An inbound WhatsApp message: a reply, or an opt-out/opt-in keyword."""
    try:
        body = await _body(request)
        record = inbox.twilio_inbound_record(_twilio_params(request, body))
    except Refused as refused:
        return await _refuse(request, inbox.TWILIO_INBOUND, refused)
    except inbox.BadPayload as exc:
        return await _refuse(request, inbox.TWILIO_INBOUND, Refused(400, "malformed", str(exc)))
    await _store(request, [record])
    return Response(EMPTY_TWIML, media_type="application/xml")


# -- site events -------------------------------------------------------------------------


@router.post("/events/site")
async def site_events(request: Request) -> Response:
    """Signed events from the website or product (a JSON object or array of objects)."""
    state = state_of(request)
    try:
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
        records = inbox.site_records(body)
    except Refused as refused:
        return await _refuse(request, inbox.SITE, refused)
    except inbox.BadPayload as exc:
        return await _refuse(request, inbox.SITE, Refused(400, "malformed", str(exc)))
    stored = await _store(request, records)
    unknown = sorted({r.kind for r in records if r.kind not in inbox.SITE_EVENTS})
    return JSONResponse(
        {"received": len(records), "stored": stored, "unknown_types": unknown}, status_code=202
    )
