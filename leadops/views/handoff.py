"""The rep's hand-off page, read only: the lead's story (why now, the score breakdown, what
the lead wrote and answered, recent touches and engagement, their local time) and what was
done with the escalation. Nothing here writes; the actions are leadops.sales.acks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from leadops.engagement.ledger import breakdowns
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    AWAITING_ACK_STATUSES,
    FORM_SUBMISSIONS,
    INBOX,
    ContactChannel,
    DisqualifyReason,
    Escalation,
    EscalationAssignment,
    LostReason,
    NotReadyReason,
)
from leadops.models.events import EventType
from leadops.providers.inbound import SENDGRID_INBOUND, TWILIO_INBOUND
from leadops.providers.twilio.events import inbound_text
from leadops.sales.acks import escalation_activities
from leadops.sales.messages import notification_context
from leadops.sales.runtime import EscalationRuntime

ANSWER_SUBMISSIONS = 3  # the lead's latest form submissions shown
ANSWER_FIELDS = 20  # fields shown of each
ANSWER_CHARS = 1000  # characters shown of each value
RECENT_EVENTS = 12
# What the lead did, as the page lists it (delivery receipts and the like are left out).
ENGAGEMENT_EVENTS = {
    EventType.OPENED: "opened an email",
    EventType.READ: "read a WhatsApp message",
    EventType.CLICKED: "clicked a link",
    EventType.REPLIED: "replied",
    EventType.HAND_RAISE: "raised a hand",
    EventType.ACTIVITY: "was active on the site",
}
COUNTED = {EventType.OPENED: "opens", EventType.CLICKED: "clicks", EventType.REPLIED: "replies"}


def _label(code: str) -> str:
    return code.replace("_", " ").capitalize()


def _amount(cents: int | None) -> str | None:
    """An amount in minor units as the page shows it: 1,250.50."""
    return None if cents is None else f"{cents // 100:,}.{cents % 100:02d}"


def choices() -> dict[str, list[dict[str, str]]]:
    """The codes each form on the page offers, with labels."""
    return {
        name: [{"code": c.value, "label": _label(c.value)} for c in codes]
        for name, codes in (
            ("channels", ContactChannel),
            ("lost", LostReason),
            ("not_ready", NotReadyReason),
            ("disqualify", DisqualifyReason),
        )
    }


def _answers(session: Session, lead_id: int) -> list[dict[str, Any]]:
    """The lead's latest form submissions (their message and answers), newest first."""
    f = FORM_SUBMISSIONS.c
    rows = session.execute(
        select(f.form, f.submitted_at, f.raw)
        .where(f.lead_id == lead_id)
        .order_by(f.submitted_at.desc(), f.id.desc())
        .limit(ANSWER_SUBMISSIONS)
    ).all()
    found = []
    for form, at, raw in rows:
        fields = [
            {"name": str(name)[:100], "value": str(value)[:ANSWER_CHARS]}
            for name, value in list((raw or {}).items())[:ANSWER_FIELDS]
            if str(value).strip()
        ]
        found.append({"form": form, "at": at, "fields": fields})
    return found


def _reply_text(source: str, payload: dict[str, Any]) -> str:
    """What the lead wrote in an inbound message: a WhatsApp message's text, or the new
    text of an email reply (quotes and signature already cut at the webhook)."""
    if source == TWILIO_INBOUND:
        return inbound_text(payload)
    if source == SENDGRID_INBOUND:
        return str(payload.get("text") or "")
    return ""


def _events(session: Session, lead_id: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The lead's recent engagement (newest first, a reply with its text) and totals."""
    i = INBOX.c
    rows = session.execute(
        select(i.received_at, i.event, i.kind, i.source, i.payload)
        .where(i.lead_id == lead_id, i.event.in_(list(ENGAGEMENT_EVENTS)))
        .order_by(i.received_at.desc(), i.id.desc())
        .limit(RECENT_EVENTS)
    ).all()
    events = []
    for at, event, kind, source, payload in rows:
        text = _reply_text(source, payload or {})[:ANSWER_CHARS]
        what = ENGAGEMENT_EVENTS[EventType(event)]
        if event in (EventType.HAND_RAISE, EventType.ACTIVITY):
            what += f" ({kind.replace('_', ' ')})"
        events.append({"at": at, "what": what, "text": text})
    totals: dict[str, int] = {
        str(event): int(n)
        for event, n in session.execute(
            select(i.event, func.count())
            .where(i.lead_id == lead_id, i.event.in_(list(COUNTED)))
            .group_by(i.event)
        ).all()
    }
    counts = {label: int(totals.get(event, 0)) for event, label in COUNTED.items()}
    return events, counts


def handoff_story(
    runtime: EscalationRuntime,
    escalation_id: int,
    assignment_id: int,
    recipient: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """Everything the hand-off page shows for the signed link naming this escalation,
    assignment and recipient; None when either no longer exists."""
    with Session(runtime.engine) as session:
        escalation = session.get(Escalation, escalation_id)
        assignment = session.get(EscalationAssignment, assignment_id)
        if escalation is None or assignment is None or assignment.escalation_id != escalation_id:
            return None
        actor = recipient or assignment.rep_key or "acknowledge link"
        context = notification_context(session, runtime, escalation, assignment, "rep", actor, now)
        lead_id = escalation.lead_id
        explained = breakdowns(session.connection(), [lead_id]).get(lead_id, [])
        events, counts = _events(session, lead_id)
        active = escalation.status in ACTIVE_ESCALATION_STATUSES
        current = assignment_id == escalation.assignment_id
        return {
            **context,
            "actor": actor,
            "status": escalation.status,
            "status_label": _label(escalation.status),
            "awaiting_ack": escalation.status in AWAITING_ACK_STATUSES,
            "can_act": active and current,
            "out_of_date": active and not current,
            "holder": escalation.rep_key or "the fallback queue",
            "record": {
                "acknowledged_at": escalation.acknowledged_at,
                "acknowledged_by": escalation.acknowledged_by,
                "first_contact_at": escalation.first_contact_at,
                "first_contact_by": escalation.first_contact_by,
                "first_contact_channel": escalation.first_contact_channel,
                "closed_at": escalation.closed_at,
                "closed_by": escalation.closed_by,
                "outcome_reason": escalation.outcome_reason,
                "amount": _amount(escalation.amount_cents),
                "retry_at": escalation.retry_at,
            },
            "breakdown": [
                {"rule": rule, "points": points}
                for rule, points in sorted(explained, key=lambda item: -abs(item[1]))
            ],
            "answers": _answers(session, lead_id),
            "events": events,
            "counts": counts,
            "activities": [
                {
                    **row,
                    "reason_label": _label(row["reason"]) if row["reason"] else None,
                    "amount": _amount(row["amount_cents"]),
                }
                for row in escalation_activities(session, escalation_id)
            ],
            "choices": choices(),
        }
