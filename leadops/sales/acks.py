"""What a rep does with an escalation: acknowledge, log a contact, add a note, close it (won,
lost, not ready, disqualified). The hand-off page (leadops.web.escalations) and the CLI call
these same functions.

Every action is one row in escalation_activities, recorded as `by` (for a signed link, the
person it was sent to). With `assignment_id` (a signed link) it is refused once the lead has
been re-routed away from that assignment. With `request_key` (the page form's one-time key)
a double tap or a replayed form records once. Acknowledging stops the SLA clock; a contact
or a close acknowledges first when nobody has (an activity each). The first contact starts
nothing and stops the speed-to-lead clock (escalations.first_contact_at). Closing `won`
makes the lead a customer; `lost` and `not_ready` recycle it into nurture (a lead not ready
is escalated again at `retry_at`, leadops.sales.scan); `disqualified` recycles it and
suppresses it on every channel, so marketing to it stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from leadops.core.clock import ensure_utc
from leadops.delivery.suppression import suppress
from leadops.engagement.status import raise_status
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    AWAITING_ACK_STATUSES,
    ESCALATION_ACTIVITIES,
    ESCALATION_ASSIGNMENTS,
    ESCALATIONS,
    LEADS,
    ActivityKind,
    Channel,
    ContactChannel,
    DisqualifyReason,
    Escalation,
    EscalationActivity,
    EscalationStatus,
    LifecycleStage,
    LostReason,
    NotReadyReason,
)
from leadops.models.vocab import LeadStatus, SuppressionReason
from leadops.sales.escalation import EscalationError

MAX_NOTE = 2000  # characters kept of a note
MAX_AMOUNT_CENTS = 10**13  # a hundred billion in the major unit: anything more is a typo
MAX_RETRY_AHEAD = timedelta(days=3 * 366)
RETRY_LOCAL_HOUR = time(9, 0)  # a retry date alone means 09:00 in the lead's time zone


class Outcome(StrEnum):
    WON = "won"
    LOST = "lost"
    NOT_READY = "not_ready"
    DISQUALIFIED = "disqualified"


# What closing does to the escalation and the lead, and which reason codes it takes.
OUTCOMES: dict[str, tuple[EscalationStatus, LifecycleStage, type[StrEnum] | None]] = {
    # won: a customer; lost or not ready: back into nurture (a lead left at `sql` would only
    # be escalated again by the next scan); disqualified: recycled too, and suppressed.
    Outcome.WON: (EscalationStatus.CLOSED_WON, LifecycleStage.CUSTOMER, None),
    Outcome.LOST: (EscalationStatus.CLOSED_LOST, LifecycleStage.RECYCLED, LostReason),
    Outcome.NOT_READY: (EscalationStatus.RECYCLED, LifecycleStage.RECYCLED, NotReadyReason),
    Outcome.DISQUALIFIED: (
        EscalationStatus.DISQUALIFIED,
        LifecycleStage.RECYCLED,
        DisqualifyReason,
    ),
}


@dataclass
class AckResult:
    ok: bool
    message: str
    escalation_id: int


@dataclass(frozen=True)
class Action:
    """One thing a rep does: an ActivityKind and what it carries."""

    kind: ActivityKind
    channel: str | None = None  # contacted: a ContactChannel
    reason: str | None = None  # lost, not_ready, disqualified: the outcome's reason code
    amount_cents: int | None = None  # won
    retry_at: datetime | None = None  # not_ready
    note: str | None = None


@dataclass
class ActionResult:
    """`ok`: recorded (or recorded before under the same request key: `repeated`);
    otherwise `conflict` says the escalation's state refused it (closed, re-routed)."""

    ok: bool
    message: str
    escalation_id: int
    repeated: bool = False
    conflict: bool = False
    escalation: Escalation | None = field(default=None, repr=False)


CLOSING = {
    ActivityKind.WON: Outcome.WON,
    ActivityKind.LOST: Outcome.LOST,
    ActivityKind.NOT_READY: Outcome.NOT_READY,
    ActivityKind.DISQUALIFIED: Outcome.DISQUALIFIED,
}


def _code(kind: type[StrEnum], value: str, what: str) -> str:
    try:
        return kind(value).value
    except ValueError:
        known = ", ".join(kind)
        raise EscalationError(f"{what} {value!r}: use {known}") from None


def check(action: Action, now: datetime) -> Action:
    """The action with its values checked; EscalationError says what is wrong."""
    note = (action.note or "").strip()[:MAX_NOTE] or None
    if action.kind == ActivityKind.NOTE and note is None:
        raise EscalationError("a note needs some text")
    channel = None
    if action.kind == ActivityKind.CONTACTED:
        channel = _code(ContactChannel, action.channel or "", "contact channel")
    reason = None
    outcome = CLOSING.get(action.kind)
    if outcome is not None:
        codes = OUTCOMES[outcome][2]
        if codes is not None and action.reason:
            reason = _code(codes, action.reason, f"{outcome.replace('_', ' ')} reason")
        if outcome == Outcome.DISQUALIFIED and reason is None:
            raise EscalationError(f"disqualifying needs a reason: {', '.join(DisqualifyReason)}")
    amount = action.amount_cents
    if amount is not None:
        if action.kind != ActivityKind.WON:
            raise EscalationError("an amount goes with won")
        if not 0 <= amount <= MAX_AMOUNT_CENTS:
            raise EscalationError("the amount must be from 0 to 100,000,000,000")
    retry_at = action.retry_at
    if retry_at is not None:
        if action.kind != ActivityKind.NOT_READY:
            raise EscalationError("a date to try again goes with not ready")
        retry_at = ensure_utc(retry_at)
        if retry_at <= now:
            raise EscalationError("the date to try again must be in the future")
        if retry_at > now + MAX_RETRY_AHEAD:
            raise EscalationError("the date to try again must be within three years")
    return Action(action.kind, channel, reason, amount, retry_at, note)


def parse_amount(text: str) -> int:
    """An amount in the currency's major unit ("1250", "1,250.50") as minor units (cents)."""
    cleaned = text.strip().replace(",", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise EscalationError(f"amount {text!r}: write a number such as 1250 or 1250.50") from None
    if not value.is_finite() or value < 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise EscalationError(f"amount {text!r}: a positive number with at most two decimals")
    if value * 100 > MAX_AMOUNT_CENTS:
        raise EscalationError(f"amount {text!r} is too large")
    return int(value * 100)


def parse_retry(text: str, zone: str) -> datetime:
    """When to try again: a date (09:00 that day in `zone`, the lead's time zone) or an ISO
    date and time with its offset."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return ensure_utc(datetime.combine(day, RETRY_LOCAL_HOUR, ZoneInfo(zone)))
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EscalationError(f"date to try again {text!r}: use YYYY-MM-DD") from None
    if moment.tzinfo is None:
        raise EscalationError(f"date to try again {text!r}: give its UTC offset or a date alone")
    return ensure_utc(moment)


def retry_for(engine: Engine, escalation_id: int, text: str) -> datetime:
    """`parse_retry` in the time zone of the escalation's lead."""
    with Session(engine) as session:
        escalation = session.get(Escalation, escalation_id)
        if escalation is None:
            raise EscalationError(f"no escalation with id {escalation_id}")
        zone = session.execute(
            select(LEADS.c.timezone).where(LEADS.c.id == escalation.lead_id)
        ).scalar_one()
    return parse_retry(text, zone)


def _acknowledged(
    session: Session, escalation: Escalation, now: datetime, by: str, *, closing: bool
) -> bool:
    """Acknowledge in the caller's transaction, guarded against a concurrent change; the
    assignment ends as acknowledged, or as closed when `closing` (the close ends it)."""
    e = ESCALATIONS.c
    current = escalation.assignment_id
    done = session.execute(
        update(ESCALATIONS)
        .where(
            e.id == escalation.id,
            e.assignment_id == current,
            e.status.in_(AWAITING_ACK_STATUSES),
        )
        .values(
            status=EscalationStatus.ACKNOWLEDGED,
            acknowledged_at=now,
            acknowledged_by=by,
            updated_at=now,
        )
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    raise_status(session.connection(), [escalation.lead_id], LeadStatus.SAL, "acknowledged", now)
    if closing:
        return True
    session.execute(
        update(ESCALATION_ASSIGNMENTS)
        .where(ESCALATION_ASSIGNMENTS.c.id == current, ESCALATION_ASSIGNMENTS.c.ended_at.is_(None))
        .values(ended_at=now, end_reason="acknowledged")
    )
    return True


def _activity(
    escalation: Escalation, action: Action, now: datetime, by: str, key: str | None
) -> EscalationActivity:
    assert escalation.id is not None
    return EscalationActivity(
        escalation_id=escalation.id,
        lead_id=escalation.lead_id,
        assignment_id=escalation.assignment_id,
        kind=action.kind,
        channel=action.channel,
        reason=action.reason,
        amount_cents=action.amount_cents,
        retry_at=action.retry_at,
        note=action.note,
        by=by,
        request_key=key,
        at=now,
    )


def _close(
    session: Session, escalation: Escalation, action: Action, now: datetime, by: str
) -> bool:
    outcome = CLOSING[action.kind]
    status, stage, _ = OUTCOMES[outcome]
    e = ESCALATIONS.c
    done = session.execute(
        update(ESCALATIONS)
        .where(
            e.id == escalation.id,
            e.assignment_id == escalation.assignment_id,
            e.status.in_(ACTIVE_ESCALATION_STATUSES),
        )
        .values(
            status=status,
            closed_at=now,
            closed_by=by,
            close_note=action.note,
            outcome_reason=action.reason,
            amount_cents=action.amount_cents,
            retry_at=action.retry_at,
            sla_due_at=None,
            updated_at=now,
        )
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(
        update(ESCALATION_ASSIGNMENTS)
        .where(
            ESCALATION_ASSIGNMENTS.c.id == escalation.assignment_id,
            ESCALATION_ASSIGNMENTS.c.ended_at.is_(None),
        )
        .values(ended_at=now, end_reason=f"closed {outcome}")
    )
    session.execute(
        update(LEADS)
        .where(LEADS.c.id == escalation.lead_id)
        .values(lifecycle_stage=stage, updated_at=now)
    )
    if outcome == Outcome.DISQUALIFIED:
        channels = [Channel.EMAIL.value, Channel.WHATSAPP.value, Channel.SMS.value]
        suppress(
            session.connection(), escalation.lead_id, channels, SuppressionReason.DISQUALIFIED, now
        )
        reason = action.reason or DisqualifyReason.OTHER
        raise_status(
            session.connection(), [escalation.lead_id], LeadStatus.DISQUALIFIED, reason, now
        )
    return True


def _refusal(escalation: Escalation, assignment_id: int | None) -> str | None:
    """Why the escalation cannot be acted on now (through this link), or None."""
    if escalation.status not in ACTIVE_ESCALATION_STATUSES:
        return f"escalation {escalation.id} is already {escalation.status}"
    if assignment_id is not None and assignment_id != escalation.assignment_id:
        holder = escalation.rep_key or "the fallback queue"
        return f"this link is out of date: the lead was re-routed to {holder}"
    return None


def act(
    engine: Engine,
    escalation_id: int,
    action: Action,
    *,
    now: datetime,
    by: str,
    assignment_id: int | None = None,
    request_key: str | None = None,
) -> ActionResult:
    """Record one action as `by`. Raises EscalationError for an unknown escalation or an
    invalid action; a refusal by the escalation's state is a result with `conflict`."""
    now = ensure_utc(now)
    action = check(action, now)
    by = by.strip()[:200] or "unknown"
    a = ESCALATION_ACTIVITIES.c
    with Session(engine, expire_on_commit=False) as session:
        escalation = session.get(Escalation, escalation_id)
        if escalation is None:
            raise EscalationError(f"no escalation with id {escalation_id}")
        if request_key is not None:
            earlier = session.execute(
                select(a.kind).where(a.escalation_id == escalation_id, a.request_key == request_key)
            ).first()
            if earlier is not None:
                return ActionResult(True, "already recorded", escalation_id, repeated=True)
        refused = _refusal(escalation, assignment_id)
        if refused is not None:
            return ActionResult(False, refused, escalation_id, conflict=True)
        changed = "the escalation changed meanwhile; reload and try again"
        ack = Action(ActivityKind.ACKNOWLEDGED)
        if escalation.status in AWAITING_ACK_STATUSES:
            closing = action.kind in CLOSING
            if not _acknowledged(session, escalation, now, by, closing=closing):
                session.rollback()
                return ActionResult(False, changed, escalation_id, conflict=True)
            if action.kind != ActivityKind.ACKNOWLEDGED:
                session.add(_activity(escalation, ack, now, by, None))
        elif action.kind == ActivityKind.ACKNOWLEDGED:
            when = f"{escalation.acknowledged_at:%Y-%m-%d %H:%M} UTC"
            message = f"already acknowledged by {escalation.acknowledged_by} at {when}"
            return ActionResult(True, message, escalation_id, repeated=True)
        if action.kind in CLOSING and not _close(session, escalation, action, now, by):
            session.rollback()
            return ActionResult(False, changed, escalation_id, conflict=True)
        if action.kind == ActivityKind.CONTACTED:
            session.execute(
                update(ESCALATIONS)
                .where(ESCALATIONS.c.id == escalation_id, ESCALATIONS.c.first_contact_at.is_(None))
                .values(
                    first_contact_at=now, first_contact_by=by, first_contact_channel=action.channel
                )
            )
        session.add(_activity(escalation, action, now, by, request_key))
        try:
            session.commit()
        except IntegrityError:  # the same form arrived twice at once; the other one won
            session.rollback()
            return ActionResult(True, "already recorded", escalation_id, repeated=True)
        session.refresh(escalation)
        return ActionResult(True, _done(action, by), escalation_id, escalation=escalation)


def _done(action: Action, by: str) -> str:
    """What was recorded, in words."""
    words = {
        ActivityKind.ACKNOWLEDGED: "acknowledged",
        ActivityKind.CONTACTED: f"{action.channel} logged",
        ActivityKind.NOTE: "note added",
        ActivityKind.WON: "closed won",
        ActivityKind.LOST: "closed lost",
        ActivityKind.NOT_READY: "not ready: back to nurture",
        ActivityKind.DISQUALIFIED: "disqualified: marketing to the lead stops",
    }
    return f"{words[action.kind]} by {by}"


def acknowledge(
    engine: Engine,
    escalation_id: int,
    *,
    now: datetime,
    by: str,
    assignment_id: int | None = None,
    request_key: str | None = None,
) -> AckResult:
    """Acknowledge an escalation. With `assignment_id` (a signed link), only while that
    assignment is the current one. Acknowledging twice is harmless."""
    result = act(
        engine,
        escalation_id,
        Action(ActivityKind.ACKNOWLEDGED),
        now=now,
        by=by,
        assignment_id=assignment_id,
        request_key=request_key,
    )
    return AckResult(result.ok, result.message, escalation_id)


def close(
    engine: Engine,
    escalation_id: int,
    outcome: str,
    *,
    now: datetime,
    by: str,
    note: str | None = None,
    reason: str | None = None,
    amount_cents: int | None = None,
    retry_at: datetime | None = None,
) -> Escalation:
    """Close an escalation (see the module docstring for what each outcome does); closing
    again with the same outcome is harmless, another outcome is an EscalationError."""
    if outcome not in OUTCOMES:
        raise EscalationError(f"outcome {outcome!r}: use {', '.join(OUTCOMES)}")
    kind = ActivityKind(outcome)
    action = Action(kind, reason=reason, amount_cents=amount_cents, retry_at=retry_at, note=note)
    with Session(engine, expire_on_commit=False) as session:
        escalation = session.get(Escalation, escalation_id)
        if escalation is not None and escalation.status == OUTCOMES[outcome][0]:
            return escalation
    result = act(engine, escalation_id, action, now=now, by=by)
    if not result.ok or result.escalation is None:
        raise EscalationError(result.message)
    return result.escalation


def escalation_activities(session: Session, escalation_id: int) -> list[dict[str, Any]]:
    """The escalation's activities, oldest first."""
    a = ESCALATION_ACTIVITIES.c
    rows = session.execute(
        select(ESCALATION_ACTIVITIES).where(a.escalation_id == escalation_id).order_by(a.at, a.id)
    ).all()
    return [dict(row._mapping) for row in rows]
