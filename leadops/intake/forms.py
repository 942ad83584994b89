"""Web-form capture with double opt-in.

A submission is authenticated (the form's shared secret, or an HMAC-SHA256 signature of
the raw body), stored once per (form, submission key), and imported like any other lead
record, but never with consent: email consent is granted only when the lead clicks the
signed, expiring link in the confirmation email (and then presses "confirm", so a mail
scanner following links cannot confirm on the lead's behalf).

Exactly once: a repeated submission (same Idempotency-Key, `submission_id` field, or the
same fields) returns the first one's outcome and sends nothing again; the confirmation is
marked `sending` before it leaves and recorded `sent` after, like a nurture touch.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from leadops.core.db import session_scope
from leadops.core.settings import Settings
from leadops.core.tokens import sign, verify
from leadops.delivery.policy import (
    Action,
    Caps,
    Decision,
    MessageClass,
    SendWindow,
    contact_facts,
    decide,
)
from leadops.delivery.sending import POLICIES, Classified, MessageKind, SendOutcome, classify
from leadops.engagement import inbox
from leadops.engagement.status import raise_status
from leadops.intake.config import FormSource
from leadops.intake.importer import import_records
from leadops.intake.mapping import SourceRules
from leadops.intake.records import RawRecord
from leadops.models import (
    Channel,
    FormSubmission,
    FormSubmissionStatus,
    Lead,
    LeadSourceRecord,
)
from leadops.models.vocab import LeadStatus
from leadops.providers.base import ChannelSender, OutgoingMessage

log = logging.getLogger("leadops.intake.forms")

CONFIRM_PURPOSE = "form-confirm"
CONFIRM_CAMPAIGN = "_confirm"  # outbox folder of confirmation emails
SECRET_HEADER = "x-leadops-form-secret"  # noqa: S105  (a header name)
SIGNATURE_HEADER = "x-leadops-signature"
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 100
MAX_KEY_CHARS = 100
MAX_VALUE_CHARS = 10_000
CONFIRM_RETRY = POLICIES[MessageKind.CONFIRMATION]
_SURROGATES = re.compile("[\ud800-\udfff]")
_KEY = re.compile(r"[\x21-\x7e]{1,128}")  # an idempotency key: printable ASCII


class FormError(Exception):
    """A submission refused before anything was stored; `status` is the HTTP status and
    `reason` the code it is counted under in webhook_rejections."""

    def __init__(self, status: int, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


def authenticate(form: FormSource, headers: dict[str, str], body: bytes | None) -> None:
    """Check the form's secret header, or (given the body) its signature; raise FormError.

    A secret form is checked before its body is read (pass body=None)."""
    secret = form.secret()
    if secret is None:
        raise FormError(
            503, f"form {form.key!r} is not set up: {form.secret_env} is not set", "not_configured"
        )
    if form.auth == "secret":
        given = headers.get(SECRET_HEADER, "")
        ok = hmac.compare_digest(given.encode(), secret.encode())
    else:
        if body is None:
            raise ValueError("a signed form is checked with its body")
        given = headers.get(SIGNATURE_HEADER, "").removeprefix("sha256=")
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(given.lower().encode(), expected.encode())
    if not ok:
        raise FormError(401, f"form {form.key!r}: missing or wrong {form.auth}", "bad_signature")


def parse_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The submitted fields from a JSON object or a form-encoded body, as strings."""
    if len(body) > MAX_BODY_BYTES:
        raise FormError(413, f"submission is larger than {MAX_BODY_BYTES} bytes", "too_large")
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormError(400, "submission is not UTF-8") from exc
    if kind == "application/json":
        try:
            data = json.loads(text or "null")
        except RecursionError as exc:
            raise FormError(400, "invalid JSON: nested too deeply") from exc
        except ValueError as exc:
            raise FormError(400, f"invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise FormError(400, "JSON submission must be an object of fields")
        items = [(str(k), v) for k, v in data.items()]
    elif kind == "application/x-www-form-urlencoded":
        try:
            items = list(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS))
        except ValueError as exc:
            raise FormError(413, f"more than {MAX_FIELDS} fields", "too_large") from exc
    else:
        raise FormError(
            415, "send application/json or application/x-www-form-urlencoded", "unsupported_type"
        )
    if len(items) > MAX_FIELDS:
        raise FormError(413, f"more than {MAX_FIELDS} fields", "too_large")
    fields: dict[str, str] = {}
    for key, value in items:
        if isinstance(value, dict | list):
            raise FormError(400, f"field {key!r} must be a plain value")
        text = (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
        if "\x00" in key or "\x00" in text:
            raise FormError(400, f"field {key[:40]!r} contains a NUL character")
        if _SURROGATES.search(key) or _SURROGATES.search(text):
            raise FormError(400, f"field {key[:40]!r} contains an unpaired surrogate")
        if len(key) > MAX_KEY_CHARS or len(text) > MAX_VALUE_CHARS:
            raise FormError(
                413, f"field {key[:40]!r} is longer than {MAX_VALUE_CHARS} characters", "too_large"
            )
        fields[key] = text
    return fields


@dataclass
class FormResult:
    submission_id: int
    status: str
    lead_id: int | None
    repeated: bool = False
    reasons: tuple[str, ...] = ()


def submission_key_for(fields: dict[str, str], idempotency_key: str | None, now: datetime) -> str:
    """The caller's key, else the fields' hash and the UTC day: a retry the same day is
    the same submission, the same form filled in again another day is a new one."""
    given = (idempotency_key or fields.get("submission_id") or "").strip()
    if given:
        if not _KEY.fullmatch(given):
            raise FormError(400, "Idempotency-Key and submission_id: 1-128 printable ASCII")
        return given
    canonical = json.dumps(sorted(fields.items()), ensure_ascii=False)
    return f"sha256:{hashlib.sha256(canonical.encode()).hexdigest()}:{now:%Y-%m-%d}"


def _result(row: FormSubmission, *, repeated: bool, reasons: tuple[str, ...] = ()) -> FormResult:
    return FormResult(row.id or 0, row.status, row.lead_id, repeated, reasons)


def submit(
    engine: Engine,
    settings: Settings,
    form: FormSource,
    fields: dict[str, str],
    *,
    now: datetime,
    channel: ChannelSender,
    ttl: timedelta,
    idempotency_key: str | None = None,
    submission_key: str | None = None,
    rules: SourceRules,
) -> FormResult:
    """Store and import one authenticated submission; send its confirmation email.

    `submission_key` (from `submission_key_for`) defaults to the one the fields give;
    `rules` (the runtime's `form_rules` for this form: its `values`, the industries and
    the fit rules) map its values and score the lead's fit."""
    key = submission_key or submission_key_for(fields, idempotency_key, now)
    data = lead_data(form, fields)
    with Session(engine) as session:
        earlier = _find(session, form.key, key)
    if earlier is not None:
        return _result(earlier, repeated=True)
    try:
        with session_scope(engine) as session:
            report = import_records(
                session,
                [RawRecord(data=data, source_ref=f"form:{form.key}:{key[:40]}")],
                source=form.source_name,
                now=now,
                default_region=settings.default_region,
                default_timezone=settings.default_timezone,
                consent_override={
                    "email_consent": False,
                    "whatsapp_consent": False,
                    "sms_consent": False,
                },
                fill_only=frozenset(form.fields.values()),
                rules=rules,
            )
            lead = session.get(Lead, report.lead_ids[0]) if report.lead_ids else None
            if lead is None:
                status = FormSubmissionStatus.QUARANTINED
            elif form.double_opt_in and lead.email and not lead.email_consent:
                status = FormSubmissionStatus.PENDING
            else:
                status = FormSubmissionStatus.NOT_NEEDED
            row = FormSubmission(
                form=form.key,
                submission_key=key,
                lead_id=lead.id if lead else None,
                email=lead.email if lead else None,
                raw=fields,
                status=status,
                submitted_at=now,
            )
            session.add(row)
            session.flush()
            if not form.hand_raise and lead is not None and lead.id is not None and report.created:
                # gave its details for content: information qualified (a lead the form
                # created; a form never changes an existing lead)
                raise_status(
                    session.connection(), [lead.id], LeadStatus.IQL, f"form {form.key}", now
                )
            if form.hand_raise and lead is not None and lead.id is not None:
                record = inbox.form_record(
                    lead.id, form.key, row.id or 0, key, form.hand_raise, fields, now
                )
                inbox.store_in(session.connection(), [record], now)
    except IntegrityError:  # the same submission arrived concurrently and won
        with Session(engine) as session:
            existing = _find(session, form.key, key)
        if existing is None:
            raise
        return _result(existing, repeated=True)
    reasons = tuple(sorted(report.quarantined))
    if row.status == FormSubmissionStatus.PENDING:
        row = send_confirmation(engine, settings, row.id or 0, now=now, channel=channel, ttl=ttl)
    return _result(row, repeated=False, reasons=reasons)


def lead_data(form: FormSource, fields: dict[str, str]) -> dict[str, object]:
    """The lead fields a submission may give: only the form's declared `fields`, mapped to
    their lead columns, and the form's own source. Nothing else reaches the lead."""
    data: dict[str, object] = {}
    for name, value in fields.items():
        column = form.fields.get(name.lower())
        if column is not None and (value.strip() or column not in data):
            data[column] = value
    data["source"] = form.source_name
    return data


def _find(session: Session, form: str, key: str) -> FormSubmission | None:
    query = select(FormSubmission).where(
        FormSubmission.form == form, FormSubmission.submission_key == key
    )
    return session.exec(query).first()


def confirmation_url(settings: Settings, submission_id: int, expires_at: datetime) -> str:
    token = sign(
        CONFIRM_PURPOSE, {"s": submission_id}, settings.signing_key(), expires_at=expires_at
    )
    return f"{settings.public_url.rstrip('/')}/forms/confirm?token={token}"


def confirmation_message(
    settings: Settings, row: FormSubmission, lead: Lead, url: str, expires_at: datetime
) -> OutgoingMessage:
    company = settings.company_name
    name = lead.first_name or ""
    greeting = f"Hello {name}," if name else "Hello,"
    until = f"{expires_at:%Y-%m-%d %H:%M} UTC"
    text = (
        f"{greeting}\n\nplease confirm that you want to receive emails from {company}:\n\n"
        f"{url}\n\nThe link works until {until}. If you did not sign up, ignore this email "
        f"and you will not hear from us.\n\n{company}\n{settings.postal_address}\n"
    )
    e = html.escape
    body = (
        f"<p>{e(greeting)}</p><p>please confirm that you want to receive emails from "
        f'{e(company)}:</p><p><a href="{e(url)}">Confirm my subscription</a></p>'
        f"<p>The link works until {e(until)}. If you did not sign up, ignore this email and "
        f"you will not hear from us.</p><p>{e(company)}<br>{e(settings.postal_address)}</p>"
    )
    return OutgoingMessage(
        touch_id=row.id or 0,
        lead_id=lead.id or 0,
        channel=Channel.EMAIL,
        to=lead.email or "",
        to_name=" ".join(p for p in (lead.first_name, lead.last_name) if p),
        campaign=CONFIRM_CAMPAIGN,
        step=row.form,
        kind="confirmation",
        created_at=row.submitted_at,
        subject=f"Please confirm your subscription to {company}",
        text=text,
        html=body,
    )


def confirmation_policy(settings: Settings, lead: Lead, now: datetime) -> Decision:
    """The contact policy's answer for a confirmation email: a transactional message (no
    marketing consent needed; unsubscribe, suppression and the send window apply)."""
    window = SendWindow(
        settings.send_window_start, settings.send_window_end, settings.weekday_numbers
    )
    return decide(
        channel=Channel.EMAIL,
        lead=contact_facts(lead),
        now=now,
        window=window,
        caps=Caps(settings.cap_per_day, settings.cap_per_week),
        recent_sends=(),
        message_class=MessageClass.TRANSACTIONAL,
    )


def confirmation_outcome(
    answer: Classified, submitted_at: datetime, now: datetime
) -> tuple[FormSubmissionStatus, str | None]:
    """The status and error a confirmation send leaves its submission in: pending again
    while CONFIRM_RETRY allows (retried at the next intake pass), failed after; an
    ambiguous send stays `sending` (it may have arrived) for an operator."""
    outcome = answer.outcome
    if outcome == SendOutcome.SENT:
        return FormSubmissionStatus.SENT, None
    if outcome in (SendOutcome.RETRY, SendOutcome.CHANNEL_STOPPED):
        if CONFIRM_RETRY.gives_up(0, since=submitted_at, now=now):
            return FormSubmissionStatus.FAILED, f"gave up (sign-up too old): {answer.error}"
        return FormSubmissionStatus.PENDING, f"retry later: {answer.error}"
    if outcome == SendOutcome.FAILED:
        return FormSubmissionStatus.FAILED, answer.error
    return FormSubmissionStatus.SENDING, f"ambiguous: {answer.error}"


def send_confirmation(
    engine: Engine,
    settings: Settings,
    submission_id: int,
    *,
    now: datetime,
    channel: ChannelSender,
    ttl: timedelta,
) -> FormSubmission:
    """Send the confirmation email of a pending submission, at most once."""
    with session_scope(engine) as session:
        row = session.get(FormSubmission, submission_id, with_for_update=True)
        if row is None or row.status != FormSubmissionStatus.PENDING:
            raise ValueError(f"form submission {submission_id} is not pending")
        lead = session.get(Lead, row.lead_id)
        assert lead is not None
        decision = confirmation_policy(settings, lead, now)
        if decision.action != Action.SEND:
            held = decision.action == Action.HOLD
            row.status = FormSubmissionStatus.PENDING if held else FormSubmissionStatus.SKIPPED
            row.error = f"{decision.action}: {decision.reason}" + (
                f" until {decision.retry_at:%Y-%m-%dT%H:%MZ}" if decision.retry_at else ""
            )
            session.add(row)
            log.info("confirmation for form submission %d: %s", submission_id, row.error)
            return row
        row.status = FormSubmissionStatus.SENDING
        session.add(row)
    expires_at = now + ttl
    message = confirmation_message(
        settings, row, lead, confirmation_url(settings, submission_id, expires_at), expires_at
    )
    provider_id, failure = None, None
    try:
        provider_id = channel.send(message).provider_id
    except Exception as exc:  # classified below: it may have arrived unless it says not
        failure = exc
    status, error = confirmation_outcome(classify(failure), row.submitted_at, now)
    if error:
        log.warning("confirmation for form submission %d: %s", submission_id, error)
    with session_scope(engine) as session:
        row = session.get(FormSubmission, submission_id)
        assert row is not None
        row.status = status
        row.provider_id = provider_id
        row.error = error
        if status == FormSubmissionStatus.SENT:
            row.confirmation_sent_at = now
        session.add(row)
    return row


@dataclass
class Confirmation:
    submission_id: int
    email: str | None
    already: bool


def check_token(settings: Settings, token: str, *, now: datetime) -> int:
    """The submission id a confirmation token names; raises InvalidToken."""
    data = verify(CONFIRM_PURPOSE, token, settings.signing_key(), now=now)
    return int(data["s"])


def confirm(engine: Engine, submission_id: int, *, now: datetime, origin: str) -> Confirmation:
    """Record the confirmation and grant email consent, once (a second click changes nothing)."""
    with session_scope(engine) as session:
        row = session.get(FormSubmission, submission_id, with_for_update=True)
        if row is None or row.lead_id is None:
            raise ValueError(f"form submission {submission_id} does not exist")
        if row.status == FormSubmissionStatus.CONFIRMED:
            return Confirmation(submission_id, row.email, already=True)
        lead = session.get(Lead, row.lead_id, with_for_update=True)
        assert lead is not None
        row.status = FormSubmissionStatus.CONFIRMED
        row.confirmed_at = now
        row.confirmed_from = origin[:200]
        changes: dict[str, Any] = {}
        if not lead.email_consent:
            changes = {"email_consent": [False, True]}
            lead.email_consent = True
            lead.email_consent_at = now
            lead.updated_at = now
        session.add(
            LeadSourceRecord(
                lead_id=lead.id or 0,
                source=f"web-form:{row.form}",
                source_ref=f"form-submission:{submission_id}",
                action="consent_confirmed",
                changes=changes or None,
                data={"form": row.form, "submitted_at": row.submitted_at.isoformat()},
                received_at=now,
            )
        )
        session.add_all([row, lead])
        return Confirmation(submission_id, row.email, already=False)


def retry_confirmations(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    channel: ChannelSender,
    ttl: timedelta,
) -> tuple[int, int]:
    """Send confirmations left pending by a temporary failure, and settle those left
    `sending` by a crash: `sent` when the channel proves it, else left for an operator.
    Returns (sent now, still unsettled)."""
    with Session(engine) as session:
        rows = session.exec(
            select(FormSubmission).where(
                FormSubmission.status.in_(  # type: ignore[attr-defined]
                    [FormSubmissionStatus.PENDING, FormSubmissionStatus.SENDING]
                )
            )
        ).all()
    sent = unsettled = 0
    for row in rows:
        if row.status == FormSubmissionStatus.SENDING:
            proof = channel.find_sent(row.id or 0, CONFIRM_CAMPAIGN, row.form)
            if proof is None:
                unsettled += 1
                continue
            with session_scope(engine) as session:
                current = session.get(FormSubmission, row.id)
                if current is not None and current.status == FormSubmissionStatus.SENDING:
                    current.status = FormSubmissionStatus.SENT
                    current.provider_id = proof
                    current.confirmation_sent_at = current.confirmation_sent_at or now
                    session.add(current)
            continue
        result = send_confirmation(engine, settings, row.id or 0, now=now, channel=channel, ttl=ttl)
        if result.status == FormSubmissionStatus.SENT:
            sent += 1
        else:
            unsettled += 1
    return sent, unsettled
