"""Signed acknowledge links for escalations.

GET shows a confirmation page and changes nothing (mail scanners open links); POST
acknowledges. The token names the escalation and the assignment it was sent for, so a link
from before a re-route cannot acknowledge for the rep who now holds the lead.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from leadops.core.tokens import InvalidToken, verify
from leadops.engagement import inbox
from leadops.models import Escalation, EscalationAssignment, Lead
from leadops.providers.inbound import MAX_ID
from leadops.sales.acks import acknowledge
from leadops.sales.notify import ACK, TRIGGER_LABELS
from leadops.web.deps import count_refusal, state_of
from leadops.web.guard import Refused, read_body

router = APIRouter(prefix="/escalations", tags=["escalations"])
SOURCE = "escalation_ack"  # in webhook_rejections
ACK_BODY_BYTES = 4096
HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}


def _page(request: Request, status: int, **context: Any) -> HTMLResponse:
    values: dict[str, Any] = {
        "lead": None,
        "confirm": False,
        "assignee": "",
        "acknowledger": "",
        **context,
    }
    renderer = state_of(request).renderer
    html = renderer.render("escalation/ack_page.html.j2", values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


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


def _details(request: Request, escalation_id: int, assignment_id: int) -> dict[str, Any]:
    with Session(state_of(request).engine) as session:
        escalation = session.get(Escalation, escalation_id)
        assignment = session.get(EscalationAssignment, assignment_id)
        if escalation is None or assignment is None:
            return {}
        lead = session.get(Lead, escalation.lead_id)
        names = [part for part in (lead.first_name, lead.last_name) if part] if lead else []
        return {
            "escalation_id": escalation_id,
            "trigger_label": TRIGGER_LABELS.get(escalation.trigger, escalation.trigger),
            "assignee": assignment.rep_key or "",
            "lead": {
                "name": " ".join(names) or (lead.email if lead else "") or "(no name)",
                "company": lead.company if lead else None,
                "email": lead.email if lead else None,
                "phone": lead.phone if lead else None,
            },
        }


@router.get("/ack/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> HTMLResponse:
    """Show the lead and an Acknowledge button; nothing changes on GET."""
    try:
        escalation_id, assignment_id, recipient = _verified(request, token)
    except InvalidToken as exc:
        return _page(request, 400, title="This link does not work", message=str(exc))
    details = _details(request, escalation_id, assignment_id)
    if not details:
        return _page(request, 404, title="Not found", message="This escalation no longer exists.")
    details["acknowledger"] = recipient or details["assignee"]
    return _page(
        request,
        200,
        title="Acknowledge this lead?",
        message="Acknowledging tells everyone you have it and stops the re-routing clock.",
        confirm=True,
        **details,
    )


@router.post("/ack/{token}", response_class=HTMLResponse)
async def acknowledge_link(request: Request, token: str) -> HTMLResponse:
    """Acknowledge the escalation this signed link was sent for, as the person it was sent
    to (the link says who; nothing typed into the page is trusted)."""
    try:
        escalation_id, assignment_id, recipient = await run_in_threadpool(_verified, request, token)
        await read_body(request, ACK_BODY_BYTES)  # the button's form carries nothing we use
    except InvalidToken as exc:
        return _page(request, 400, title="This link does not work", message=str(exc))
    except Refused as refused:
        await count_refusal(state_of(request), SOURCE, refused.reason)
        return _page(request, refused.status, title="Not acknowledged", message=refused.message)
    details = await run_in_threadpool(_details, request, escalation_id, assignment_id)
    if not details:
        return _page(request, 404, title="Not found", message="This escalation no longer exists.")
    state = state_of(request)
    who = recipient or details["assignee"] or "acknowledge link"
    result = await run_in_threadpool(
        acknowledge,
        state.engine,
        escalation_id,
        now=state.clock.now(),
        by=who,
        assignment_id=assignment_id,
    )
    title = "Acknowledged" if result.ok else "Not acknowledged"
    message = result.message[:1].upper() + result.message[1:] + "."
    return _page(request, 200 if result.ok else 409, title=title, message=message, **details)
