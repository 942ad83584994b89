"""The rep's hand-off page, at the signed link a rep's notification carries.

GET shows the lead's story and the actions, and changes nothing (mail scanners open links).
Each action is a POST form; the link's token names the escalation, the assignment it was
sent for and the person it was sent to, who is recorded as the one acting (nothing typed
into the page names the actor). A link from before a re-route still shows the lead but can
no longer act. Every form carries a one-time key (`nonce`, the activity's request_key, so a
double tap or a replayed form records once) and `csrf`, an HMAC of the link's token, the
action and the key under the app's signing key; a cross-site POST (Origin, Sec-Fetch-Site)
is refused. Refusals are counted in webhook_rejections under `escalation_ack`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadops.core.tokens import InvalidToken, verify
from leadops.engagement import inbox
from leadops.models import ActivityKind
from leadops.providers.inbound import MAX_ID
from leadops.sales.acks import Action, ActionResult, act, parse_amount, parse_retry
from leadops.sales.escalation import EscalationError
from leadops.sales.messages import ACK
from leadops.views.handoff import handoff_story
from leadops.web.deps import count_refusal, state_of
from leadops.web.guard import Refused, malformed, read_body

router = APIRouter(prefix="/escalations", tags=["escalations"])
SOURCE = "escalation_ack"  # in webhook_rejections
ACK_BODY_BYTES = 8192
MAX_FIELDS = 12
FIELDS = frozenset({"action", "nonce", "csrf", "channel", "reason", "amount", "retry_on", "note"})
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
TEMPLATE = "escalation/handoff_page.html.j2"
HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
# The forms of the page, by the ActivityKind each records.
ACTIONS = {
    "acknowledge": ActivityKind.ACKNOWLEDGED,
    "contact": ActivityKind.CONTACTED,
    "note": ActivityKind.NOTE,
    "won": ActivityKind.WON,
    "lost": ActivityKind.LOST,
    "not_ready": ActivityKind.NOT_READY,
    "disqualify": ActivityKind.DISQUALIFIED,
}
# What the page says after a POST redirected back to it (?done=<code>).
FLASH = {
    "acknowledge": "Acknowledged: the lead is yours and the re-routing clock has stopped.",
    "contact": "Contact logged.",
    "note": "Note added.",
    "won": "Closed won: the lead is now a customer.",
    "lost": "Closed lost: the lead goes back to nurture.",
    "not_ready": "Not ready: the lead goes back to nurture and comes back to sales on the date.",
    "disqualify": "Disqualified: marketing to the lead has stopped.",
    "repeated": "Already recorded: nothing was recorded twice.",
}


def _security_headers(style_nonce: str) -> dict[str, str]:
    policy = (
        "default-src 'none'; "
        f"style-src 'nonce-{style_nonce}'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    return {**HEADERS, "Content-Security-Policy": policy}


def csrf_for(key: bytes, token: str, action: str, nonce: str) -> str:
    """The form's CSRF value: bound to the signed link, the action and the one-time key."""
    message = f"handoff\n{token}\n{action}\n{nonce}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _forms(key: bytes, token: str) -> dict[str, dict[str, str]]:
    """A fresh one-time key and its CSRF value for each form of the page."""
    forms = {}
    for name in ACTIONS:
        nonce = secrets.token_urlsafe(16)
        forms[name] = {"nonce": nonce, "csrf": csrf_for(key, token, name, nonce)}
    return forms


def _page(
    request: Request,
    status: int,
    *,
    token: str | None = None,
    story: dict[str, Any] | None = None,
    **context: Any,
) -> HTMLResponse:
    state = state_of(request)
    style_nonce = secrets.token_urlsafe(16)
    values: dict[str, Any] = {
        "title": "",
        "message": "",
        "flash": "",
        "error": "",
        "story": story,
        "forms": _forms(state.settings.signing_key(), token) if token and story else {},
        "style_nonce": style_nonce,
        **context,
    }
    html = state.renderer.render(TEMPLATE, values)
    return HTMLResponse(html, status_code=status, headers=_security_headers(style_nonce))


def _bad_link(request: Request, exc: InvalidToken) -> HTMLResponse:
    return _page(
        request,
        400,
        title="This link does not work",
        message=f"{str(exc)[:1].upper()}{str(exc)[1:]}. Ask your manager for the lead, or use "
        "the link in a newer notification.",
    )


def _verified(request: Request, token: str) -> tuple[int, int, str | None]:
    """The escalation, assignment and recipient a signed link names (a refused link is
    counted in webhook_rejections)."""
    state = state_of(request)
    try:
        return _read(request, token)
    except InvalidToken:
        inbox.count_rejection(state.engine, SOURCE, "bad_token", state.clock.now())
        raise


def _read(request: Request, token: str) -> tuple[int, int, str | None]:
    state = state_of(request)
    data = verify(ACK, token, state.settings.signing_key(), now=state.clock.now())
    escalation_id, assignment_id = data.get("e"), data.get("a")
    recipient = data.get("r")
    if not isinstance(escalation_id, int) or not isinstance(assignment_id, int):
        raise InvalidToken("malformed token")
    if not 0 < escalation_id <= MAX_ID or not 0 < assignment_id <= MAX_ID:
        raise InvalidToken("malformed token")
    if recipient is not None and not isinstance(recipient, str):
        raise InvalidToken("malformed token")
    return escalation_id, assignment_id, recipient


def _story(request: Request, link: tuple[int, int, str | None]) -> dict[str, Any] | None:
    state = state_of(request)
    return handoff_story(state.require_escalation(), *link, state.clock.now())


def _gone(request: Request) -> HTMLResponse:
    return _page(request, 404, title="Not found", message="This escalation no longer exists.")


@router.get("/ack/{token}", response_class=HTMLResponse)
def handoff_page(request: Request, token: str, done: str | None = None) -> HTMLResponse:
    """The hand-off page: the lead's story and the actions; nothing changes on GET."""
    try:
        link = _verified(request, token)
    except InvalidToken as exc:
        return _bad_link(request, exc)
    story = _story(request, link)
    if story is None:
        return _gone(request)
    return _page(request, 200, token=token, story=story, flash=FLASH.get(done or "", ""))


def _same_origin(request: Request) -> bool:
    """False for a POST a browser says came from another site (Sec-Fetch-Site, Origin).
    The page's no-referrer policy makes browsers send `Origin: null` from the page itself,
    so a null Origin says nothing (Sec-Fetch-Site and the CSRF value still apply)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    ours = {urlsplit(state_of(request).settings.public_url).netloc, request.headers.get("host")}
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc in ours


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """The page's url-encoded form, strictly: known names, each once, UTF-8 text."""
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise Refused(415, "unsupported_type", "send the page's form")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise malformed("the form is not valid") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name not in FIELDS or name in fields:
            raise malformed(f"unexpected form field {name[:40]!r}")
        if "\x00" in value:
            raise malformed("the form contains a NUL character")
        fields[name] = value
    return fields


def _checked(fields: dict[str, str], key: bytes, token: str) -> tuple[str, str]:
    """The form's action and one-time key, once its CSRF value is proven."""
    name, nonce, given = fields.get("action", ""), fields.get("nonce", ""), fields.get("csrf", "")
    if not nonce or not given:
        raise Refused(403, "csrf_missing", "the form's security token is missing; reload the page")
    if name not in ACTIONS or not NONCE.fullmatch(nonce):
        raise Refused(403, "csrf_invalid", "the form's security token is not valid")
    if not hmac.compare_digest(csrf_for(key, token, name, nonce), given):
        raise Refused(403, "csrf_invalid", "the form's security token is not valid")
    return name, nonce


def _action(name: str, fields: dict[str, str], zone: str) -> Action:
    """The Action a form asks for (EscalationError for a value that does not parse)."""
    kind = ACTIONS[name]
    reason = fields.get("reason") or None
    note = fields.get("note") or None
    if kind in (ActivityKind.LOST, ActivityKind.NOT_READY) and reason is None:
        raise EscalationError("choose a reason")
    amount = fields.get("amount", "").strip()
    retry_on = fields.get("retry_on", "").strip()
    if kind == ActivityKind.NOT_READY and not retry_on:
        raise EscalationError("choose when to try again")
    return Action(
        kind,
        channel=fields.get("channel") or None,
        reason=reason,
        amount_cents=parse_amount(amount) if amount and kind == ActivityKind.WON else None,
        retry_at=parse_retry(retry_on, zone) if retry_on else None,
        note=note,
    )


def _record(
    request: Request, token: str, link: tuple[int, int, str | None], fields: dict[str, str]
) -> tuple[str, ActionResult | None, dict[str, Any] | None, str]:
    """Check and record the form: (form name, result, story, validation error)."""
    state = state_of(request)
    name, nonce = _checked(fields, state.settings.signing_key(), token)
    story = _story(request, link)
    if story is None:
        return name, None, None, ""
    try:
        action = _action(name, fields, story["lead"]["timezone"])
        result = act(
            state.engine,
            link[0],
            action,
            now=state.clock.now(),
            by=story["actor"],
            assignment_id=link[1],
            request_key=nonce,
        )
    except EscalationError as exc:
        return name, None, story, str(exc)
    return name, result, story, ""


@router.post("/ack/{token}", response_class=HTMLResponse)
async def handoff_action(request: Request, token: str) -> Response:
    """Record one action of the page as the person the link was sent to, then show the
    page again (303) with what was recorded."""
    state = state_of(request)
    try:
        link = await run_in_threadpool(_verified, request, token)
    except InvalidToken as exc:
        return _bad_link(request, exc)
    try:
        if not _same_origin(request):
            raise Refused(403, "cross_site", "this form can only be sent from its own page")
        body = await read_body(request, ACK_BODY_BYTES)
        fields = parse_form(request.headers.get("content-type", ""), body)
        name, result, story, error = await run_in_threadpool(_record, request, token, link, fields)
    except Refused as refused:
        await count_refusal(state, SOURCE, refused.reason)
        return _page(request, refused.status, title="Not recorded", message=refused.message)
    if story is None:
        return _gone(request)
    if result is None:
        message = f"{error[:1].upper()}{error[1:]}."
        return _page(request, 422, token=token, story=story, error=message)
    if result.conflict:
        fresh = await run_in_threadpool(_story, request, link)
        message = f"Not recorded: {result.message}."
        return _page(request, 409, token=token, story=fresh or story, error=message)
    done = "repeated" if result.repeated else name
    return RedirectResponse(f"{request.url.path}?done={done}", status_code=303, headers=HEADERS)
