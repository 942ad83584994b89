"""Web-form capture: POST /forms/lead, and the double opt-in confirmation pages.

POST /forms/lead?form=<key> takes JSON or form-encoded fields, authenticated by the
form's secret (header X-Leadops-Form-Secret) or signature (X-Leadops-Signature:
sha256=<hex HMAC-SHA256 of the raw body>). GET /forms/confirm?token=... shows a page
with a confirm button; POST /forms/confirm records the consent.
"""

from __future__ import annotations

import html
from datetime import timedelta
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from leadops.core.tokens import InvalidToken
from leadops.engagement import inbox
from leadops.intake import forms
from leadops.models import FormSubmissionStatus
from leadops.web.deps import count_refusal, refuse, state_of
from leadops.web.guard import Refused, malformed, read_body
from leadops.web.handoff import kick
from leadops.web.pages import FORM_LOOK, page

router = APIRouter(prefix="/forms", tags=["forms"])
SOURCE = "form"  # in webhook_rejections
CONFIRM_SOURCE = "form_confirm"
CONFIRM_BODY_BYTES = 4096


@router.post("/lead")
async def capture_lead(request: Request, form: str = Query(..., max_length=64)) -> JSONResponse:
    """Capture one form submission; the lead gets a confirmation email (double opt-in).

    A form's secret is checked before its body is read; a signed form's body is read
    (capped) and its signature checked before anything is parsed."""
    state = state_of(request)
    config = state.intake
    form_config = config.form(form)
    if form_config is None:
        return await refuse(request, SOURCE, Refused(404, "unknown_form", f"unknown form {form!r}"))
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        if form_config.auth == "secret":
            forms.authenticate(form_config, headers, None)
        body = await read_body(request, forms.MAX_BODY_BYTES)
        if form_config.auth == "signature":
            forms.authenticate(form_config, headers, body)
        fields = forms.parse_fields(headers.get("content-type", ""), body)
        key = forms.submission_key_for(fields, headers.get("idempotency-key"), state.clock.now())
    except Refused as refused:
        return await refuse(request, SOURCE, refused)
    except forms.FormError as exc:
        return await refuse(request, SOURCE, Refused(exc.status, exc.reason, exc.message))
    result = await run_in_threadpool(
        forms.submit,
        state.engine,
        state.settings,
        form_config,
        fields,
        now=state.clock.now(),
        channel=state.email,
        ttl=timedelta(hours=config.confirmation_ttl_hours),
        submission_key=key,
        rules=state.form_rules[form_config.key],
    )
    if form_config.hand_raise and result.lead_id is not None and not result.repeated:
        kick(request)
    document = {
        "submission": result.submission_id,
        "status": result.status,
        "repeated": result.repeated,
    }
    if result.status == FormSubmissionStatus.QUARANTINED:
        return JSONResponse(
            {**document, "error": "the submission is invalid", "reasons": list(result.reasons)},
            status_code=422,
        )
    return JSONResponse(document, status_code=200 if result.repeated else 202)


@router.get("/confirm", response_class=HTMLResponse)
def confirm_page(request: Request, token: str = Query(..., max_length=2000)) -> HTMLResponse:
    """The page the confirmation link opens: nothing changes until the button is pressed."""
    state = state_of(request)
    try:
        forms.check_token(state.settings, token, now=state.clock.now())
    except InvalidToken as exc:
        return _invalid(request, exc)
    return page(
        "Confirm your subscription",
        "<p>Press the button to confirm that you want to receive our emails.</p>"
        '<form method="post" action="confirm">'
        f'<input type="hidden" name="token" value="{html.escape(token)}">'
        '<button type="submit">Confirm my subscription</button></form>',
        look=FORM_LOOK,
    )


@router.post("/confirm", response_class=HTMLResponse)
async def confirm(request: Request) -> HTMLResponse:
    """Record the confirmation: the lead now has email consent (once, however many clicks)."""
    state = state_of(request)
    try:
        body = await read_body(request, CONFIRM_BODY_BYTES)
        token = _form_token(body)
    except Refused as refused:
        await count_refusal(state, CONFIRM_SOURCE, refused.reason)
        return page(
            "Link not valid",
            f"<p>{html.escape(refused.message)}</p>",
            refused.status,
            look=FORM_LOOK,
        )
    try:
        submission_id = forms.check_token(state.settings, token, now=state.clock.now())
    except InvalidToken as exc:
        return await run_in_threadpool(_invalid, request, exc)
    try:
        done = await run_in_threadpool(
            forms.confirm,
            state.engine,
            submission_id,
            now=state.clock.now(),
            origin=request.client.host if request.client else "unknown",
        )
    except ValueError:  # a signed link for a submission that no longer exists
        await count_refusal(state, CONFIRM_SOURCE, "unknown_submission")
        return page(
            "Link not valid", "<p>This confirmation link is not valid.</p>", 404, look=FORM_LOOK
        )
    text = "was already confirmed" if done.already else "is confirmed"
    return page(
        "Thank you",
        f"<p>Your subscription {text}. You can unsubscribe at any time.</p>",
        look=FORM_LOOK,
    )


def _form_token(body: bytes) -> str:
    """The `token` field of the confirm button's form-encoded body."""
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError) as exc:
        raise malformed("the form is not form-encoded ASCII") from exc
    tokens = [value for name, value in pairs if name == "token"]
    if len(tokens) != 1 or not tokens[0]:
        raise malformed("the form needs exactly one token")
    return tokens[0]


def _invalid(request: Request, exc: InvalidToken) -> HTMLResponse:
    state = state_of(request)
    reason = "expired_token" if "expired" in str(exc) else "bad_token"
    inbox.count_rejection(state.engine, CONFIRM_SOURCE, reason, state.clock.now())
    if "expired" in str(exc):
        return page(
            "Link expired",
            "<p>This confirmation link has expired. Fill in the form again to get a new one.</p>",
            410,
            look=FORM_LOOK,
        )
    return page(
        "Link not valid", "<p>This confirmation link is not valid.</p>", 400, look=FORM_LOOK
    )
