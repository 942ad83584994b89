"""One-click unsubscribe: GET /u/{token} shows a confirmation page, POST unsubscribes.

POST is what mail clients send for RFC 8058 (`List-Unsubscribe=One-Click`) and what the
page's button sends. It is honoured at once, across campaigns: the lead is suppressed on
the token's channel (or all) before the answer leaves, and the event goes to the inbox
for scoring. A GET never unsubscribes (link scanners follow GETs).
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine

from leadops.core.tokens import InvalidToken, verify
from leadops.delivery.compose import UNSUBSCRIBE
from leadops.delivery.suppression import leave_nurture, suppress
from leadops.engagement import inbox
from leadops.models import LEADS
from leadops.providers import inbound
from leadops.providers.inbound import MAX_ID
from leadops.web.deps import count_refusal, state_of
from leadops.web.guard import Refused, read_body
from leadops.web.pages import UNSUBSCRIBE_LOOK, page

router = APIRouter()

BODY_BYTES = 4096  # RFC 8058 one-click posts "List-Unsubscribe=One-Click"
CHANNELS = {
    "all": ("email", "whatsapp", "sms"),
    "email": ("email",),
    "whatsapp": ("whatsapp",),
    "sms": ("sms",),
}


def _read_token(request: Request, token: str) -> tuple[int, str] | None:
    state = state_of(request)
    try:
        data = verify(UNSUBSCRIBE, token, state.settings.signing_key(), now=state.clock.now())
    except InvalidToken:
        return None
    lead_id, channel = data.get("lead"), data.get("channel", "all")
    if not isinstance(lead_id, int) or isinstance(lead_id, bool) or channel not in CHANNELS:
        return None
    if not 0 < lead_id <= MAX_ID:
        return None
    return lead_id, channel


def _invalid(request: Request) -> HTMLResponse:
    state = state_of(request)
    inbox.count_rejection(state.engine, inbound.UNSUBSCRIBE, "bad_token", state.clock.now())
    return page(
        "This link is not valid",
        "<p>The unsubscribe link is incomplete or was changed. Please use the link from "
        "the latest message, or reply to it asking us to stop.</p>",
        status=400,
        look=UNSUBSCRIBE_LOOK,
    )


def apply_unsubscribe(
    engine: Engine, lead_id: int, channel: str, token: str, method: str, request: Request
) -> None:
    """Suppress the lead now and record the event for scoring."""
    state = state_of(request)
    now = state.clock.now()
    with engine.begin() as connection:
        exists = connection.execute(
            LEADS.select().with_only_columns(LEADS.c.id).where(LEADS.c.id == lead_id)
        ).first()
        if exists is None:
            return
        suppress(connection, lead_id, CHANNELS[channel], "unsubscribe", now, unsubscribed=True)
        if channel == "all":
            leave_nurture(connection, lead_id, "unsubscribed", now)
    inbox.store(engine, [inbox.unsubscribe_record(lead_id, channel, token, method)], now)


@router.get("/u/{token}")
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    """The confirmation page: one button that unsubscribes."""
    if _read_token(request, token) is None:
        return _invalid(request)
    company = escape(state_of(request).settings.company_name)
    return page(
        "Unsubscribe",
        f"<p>Stop receiving messages from {company}?</p>"
        f"<form method='post' action='/u/{escape(token)}'>"
        "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form>",
        look=UNSUBSCRIBE_LOOK,
    )


@router.post("/u/{token}")
async def unsubscribe_now(request: Request, token: str) -> HTMLResponse:
    """RFC 8058 one-click unsubscribe (and the confirmation page's button)."""
    parsed = _read_token(request, token)
    if parsed is None:
        return await run_in_threadpool(_invalid, request)
    lead_id, channel = parsed
    state = state_of(request)
    try:
        form = await read_body(request, BODY_BYTES)
    except Refused as refused:
        await count_refusal(state, inbound.UNSUBSCRIBE, refused.reason)
        return page(
            "Not unsubscribed",
            f"<p>{escape(refused.message)}</p>",
            refused.status,
            look=UNSUBSCRIBE_LOOK,
        )
    method = "one-click" if b"List-Unsubscribe=One-Click" in form else "post"
    await run_in_threadpool(
        apply_unsubscribe, state.engine, lead_id, channel, token, method, request
    )
    company = escape(state.settings.company_name)
    return page(
        "You are unsubscribed",
        f"<p>{company} will not send you any more messages. "
        "If this was a mistake, reply to any earlier message to tell us.</p>",
        look=UNSUBSCRIBE_LOOK,
    )
