"""What escalation messages say: the signed hand-off link, the context of each template
(rep and manager notifications, the lead's intro, the manager's digest) and the rendered
messages. Sending them, exactly once, is leadops.sales.notify."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session

from leadops.core.settings import Settings
from leadops.core.tokens import sign
from leadops.delivery.compose import lead_context, whatsapp_session_open
from leadops.delivery.policy import Action, Decision, SendWindow, contact_facts, intro_decision
from leadops.models import (
    ESCALATION_ASSIGNMENTS,
    ESCALATION_NOTIFICATIONS,
    SENT_TOUCH_STATUSES,
    TOUCHES,
    Escalation,
    EscalationAssignment,
    EscalationDigest,
    EscalationNotification,
    Lead,
)
from leadops.predictive.store import prediction_of
from leadops.providers.base import OutgoingMessage, PermanentSendError
from leadops.sales.routing import Contact, Rep, RoutingConfig
from leadops.sales.runtime import EscalationRuntime
from leadops.sales.triggers import trigger_words

log = logging.getLogger("leadops.escalation")


ACK = "ack"
OUTBOX_FOLDER = "escalations"  # outbox/<channel>/escalations/<role>/t<notification id>
DIGEST_STEP = "digest"  # outbox/<channel>/escalations/digest/t<digest id>
MANAGER = "manager"
LEAD = "lead"  # the hand-off intro's role (leadops.sales.escalation.LEAD_ROLE)
SENDING_LEASE = timedelta(minutes=5)


def ack_url(
    settings: Settings,
    escalation_id: int,
    assignment_id: int,
    now: datetime,
    recipient: str | None = None,
) -> str:
    """A signed acknowledge link for one assignment (served by leadops.web.escalations);
    `recipient` is who it is sent to, recorded as the one who acknowledged."""
    data: dict[str, Any] = {"e": escalation_id, "a": assignment_id}
    if recipient:
        data["r"] = recipient[:200]
    token = sign(
        ACK,
        data,
        settings.signing_key(),
        expires_at=now + timedelta(hours=settings.ack_link_valid_hours),
    )
    return f"{settings.public_url.rstrip('/')}/escalations/ack/{token}"


def _local(moment: datetime | None, zone: str) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M %Z")


def _configured_rep(routing: RoutingConfig, key: str | None) -> Rep | None:
    try:
        return routing.rep(key) if key else None
    except KeyError:
        return None


def _rep_name(routing: RoutingConfig, key: str) -> str:
    rep = _configured_rep(routing, key)
    return rep.name if rep is not None else key


def _previous_assignee(
    session: Session,
    routing: RoutingConfig,
    escalation: Escalation,
    assignment: EscalationAssignment,
) -> str | None:
    """Who held the escalation before this assignment: a rep's name, the queue's, or None."""
    previous = session.execute(
        select(EscalationAssignment).where(
            ESCALATION_ASSIGNMENTS.c.escalation_id == escalation.id,
            ESCALATION_ASSIGNMENTS.c.seq == assignment.seq - 1,
        )
    ).scalar_one_or_none()
    if previous is None:
        return None
    return _rep_name(routing, previous.rep_key) if previous.rep_key else routing.fallback_queue.name


def _recent_touches(session: Session, lead_id: int | None) -> list[dict[str, Any]]:
    """The lead's last five sent touches, newest first."""
    t = TOUCHES.c
    touches = session.execute(
        select(t.campaign, t.step, t.channel, t.sent_at, t.subject)
        .where(t.lead_id == lead_id, t.status.in_(SENT_TOUCH_STATUSES))
        .order_by(t.sent_at.desc())
        .limit(5)
    ).all()
    return [
        {"campaign": c, "step": s, "channel": ch, "sent_at": at, "subject": subject}
        for c, s, ch, at, subject in touches
    ]


def _assignee(rep: Rep | None, assignment: EscalationAssignment) -> dict[str, Any] | None:
    """The assigned rep, None when the escalation is in the fallback queue."""
    if rep is not None:
        return {"key": rep.key, "name": rep.name, "email": rep.email}
    if assignment.rep_key:  # a rep since removed from routing.yaml
        return {"key": assignment.rep_key, "name": assignment.rep_key, "email": None}
    return None


def _event(assignee: dict[str, Any] | None, assignment: EscalationAssignment) -> str:
    if assignee is None:
        return "fallback"
    if assignment.seq > 1:
        return "rerouted"
    return "assigned"


def _lead_part(lead: Lead, now: datetime) -> dict[str, Any]:
    return {
        **lead_context(lead),
        "id": lead.id,
        "score": lead.score,
        "timezone": lead.timezone,
        "local_time": _local(now, lead.timezone),
        "source": lead.source,
    }


def _escalation_part(
    routing: RoutingConfig, escalation: Escalation, assignment: EscalationAssignment, zone: str
) -> dict[str, Any]:
    """The escalation and its current assignment; times due shown in `zone`."""
    words = trigger_words(escalation.trigger, escalation.trigger_detail, escalation.score)
    return {
        "id": escalation.id,
        "trigger": escalation.trigger,
        "trigger_label": words.label,
        "trigger_detail": escalation.trigger_detail,
        "score": escalation.score,
        "score_note": words.score_note,
        "reasons": escalation.reasons,
        "reroutes": escalation.reroutes,
        "created_at": escalation.created_at,
        "sla_minutes": routing.sla_minutes,
        "sla_due_at": assignment.sla_due_at,
        "sla_due_local": _local(assignment.sla_due_at, zone),
        "rule": assignment.rule,
        "rule_detail": assignment.detail,
    }


def notification_context(
    session: Session,
    runtime: EscalationRuntime,
    escalation: Escalation,
    assignment: EscalationAssignment,
    role: str,
    recipient: str,
    now: datetime,
) -> dict[str, Any]:
    """Everything an escalation template may use; see templates/README.md."""
    lead = session.get(Lead, escalation.lead_id)
    assert lead is not None and escalation.id is not None and assignment.id is not None
    routing = runtime.routing
    rep = _configured_rep(routing, assignment.rep_key)
    previous_name = _previous_assignee(session, routing, escalation, assignment)
    touches = _recent_touches(session, lead.id)
    zone = (rep or (routing.manager if role == "manager" else routing.fallback_queue)).timezone
    assignee = _assignee(rep, assignment)
    return {
        "role": role,
        "recipient": {"name": recipient},
        "event": _event(assignee, assignment),
        "lead": _lead_part(lead, now),
        "escalation": _escalation_part(routing, escalation, assignment, zone),
        "rep": assignee,
        "previous_assignee": previous_name,
        "queue": {"name": routing.fallback_queue.name},
        "touches": touches,
        "prediction": prediction_of(session.connection(), escalation.lead_id),
        "engagement": {
            "last_engaged_at": lead.last_engaged_at,
            "last_inbound_at": lead.last_inbound_at,
        },
        "sender": {"company_name": runtime.settings.company_name},
        "ack_url": ack_url(
            runtime.settings,
            escalation.id,
            assignment.id,
            now,
            assignment.rep_key if role == "rep" else f"{role}: {recipient}",
        ),
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render_for(
    runtime: EscalationRuntime,
    base: OutgoingMessage,
    base_name: str,
    context: dict[str, Any],
) -> OutgoingMessage:
    """`base` with its content: subject, HTML and text for email, the short text for
    WhatsApp and Slack. Raises RenderError, or PermanentSendError for a missing Slack
    webhook variable."""
    render = runtime.renderer.render
    if base.channel == "email":
        subject = " ".join(render(f"{base_name}.subject.j2", context).split())
        return replace(
            base,
            subject=subject,
            html=render(f"{base_name}.html.j2", context),
            text=render(f"{base_name}.txt.j2", context),
        )
    body = render(f"{base_name}.short.txt.j2", context).strip()
    if base.channel == "slack":
        variable = base.to.removeprefix("env:")
        url = os.environ.get(variable, "").strip()
        if not url:
            raise PermanentSendError(f"environment variable {variable} (Slack webhook) is not set")
        return replace(base, to=url, body=_slack_escape(body))
    return replace(base, body=body)


def compose_notification(
    session: Session, runtime: EscalationRuntime, row: EscalationNotification, now: datetime
) -> OutgoingMessage:
    """Render one notification. Raises RenderError, or PermanentSendError for a missing
    Slack webhook variable."""
    escalation = session.get(Escalation, row.escalation_id)
    assignment = session.get(EscalationAssignment, row.assignment_id)
    assert escalation is not None and assignment is not None and row.id is not None
    base = OutgoingMessage(
        touch_id=row.id,
        lead_id=escalation.lead_id,
        channel=row.channel,
        to=row.address,
        campaign=OUTBOX_FOLDER,
        step=row.role,
        created_at=now,
        to_name=row.recipient,
        # Not a nurture touch: touch_id is this notification's id, campaign "escalations".
        extra={"escalation_id": str(escalation.id), "notification_id": str(row.id)},
        kind="escalation",
    )
    if row.role == LEAD:
        lead = session.get(Lead, escalation.lead_id)
        assert lead is not None
        context = intro_context(session, runtime, escalation, lead, now)
        # free text on WhatsApp: the contact policy let it through inside the 24-hour window
        return _render_for(runtime, replace(base, session_open=True), "handoff/intro", context)
    context = notification_context(
        session, runtime, escalation, assignment, row.role, row.recipient, now
    )
    base_name = "escalation/rep" if row.role == "rep" else "escalation/alert"
    return _render_for(runtime, base, base_name, context)


# -- the lead's hand-off intro --------------------------------------------------------------


def _holder(routing: RoutingConfig, escalation: Escalation) -> dict[str, Any]:
    """Who holds the escalation now, as the intro names them: the rep, else the queue."""
    rep = _configured_rep(routing, escalation.rep_key)
    if rep is None and escalation.rep_key:  # a rep since removed from routing.yaml
        name = escalation.rep_key
        return {
            "name": name,
            "first_name": name,
            "email": None,
            "about": None,
            "booking_url": None,
            "is_queue": False,
        }
    person: Contact = rep if rep is not None else routing.fallback_queue
    return {
        "name": person.name,
        "first_name": person.name.split()[0],
        "email": person.email,
        "about": person.about,
        "booking_url": person.booking_url,
        "is_queue": rep is None,
    }


def intro_context(
    session: Session, runtime: EscalationRuntime, escalation: Escalation, lead: Lead, now: datetime
) -> dict[str, Any]:
    """Everything a hand-off intro template may use; see templates/README.md."""
    settings = runtime.settings
    words = trigger_words(escalation.trigger, escalation.trigger_detail, escalation.score)
    return {
        "lead": {**lead_context(lead), "local_time": _local(now, lead.timezone)},
        "rep": _holder(runtime.routing, escalation),
        "escalation": {
            "id": escalation.id,
            "trigger": escalation.trigger,
            "trigger_label": words.label,
        },
        "sender": {
            "company_name": settings.company_name,
            "website": settings.company_website,
            "postal_address": settings.postal_address,
        },
    }


def _intro_window(runtime: EscalationRuntime) -> SendWindow:
    settings = runtime.settings
    return SendWindow(
        settings.send_window_start, settings.send_window_end, settings.weekday_numbers
    )


def intro_plan(
    runtime: EscalationRuntime, escalation: Escalation, lead: Lead, recorded: str, now: datetime
) -> tuple[str, Decision, list[str]]:
    """The channel the intro goes on and the policy's answer there: the first channel (in
    routing.yaml's order for the trigger, else the one it was `recorded` on) that is not
    skipped; with every channel skipped, the last one's answer. Also each skip, as
    "channel: reason"."""
    channels = runtime.routing.intro.channels(escalation.trigger) or [recorded]
    facts = contact_facts(lead)
    session_open = whatsapp_session_open(lead, now, runtime.settings.whatsapp_session_hours)
    skips: list[str] = []
    channel, decision = channels[0], Decision(Action.SKIP)
    for channel in channels:
        decision = intro_decision(
            channel=channel,
            lead=facts,
            now=now,
            window=_intro_window(runtime),
            whatsapp_session=session_open,
        )
        if decision.action != Action.SKIP:
            break
        skips.append(f"{channel}: {decision.reason}")
    return channel, decision, skips


def digest_context(
    session: Session, runtime: EscalationRuntime, digest: EscalationDigest, now: datetime
) -> dict[str, Any]:
    """Everything a digest template may use; see templates/README.md."""
    routing = runtime.routing
    rows = session.execute(
        select(EscalationNotification)
        .where(ESCALATION_NOTIFICATIONS.c.digest_id == digest.id)
        .order_by(ESCALATION_NOTIFICATIONS.c.id)
    ).scalars()
    items: list[dict[str, Any]] = []
    for row in rows:
        escalation = session.get(Escalation, row.escalation_id)
        assignment = session.get(EscalationAssignment, row.assignment_id)
        assert escalation is not None and assignment is not None and escalation.id is not None
        assert assignment.id is not None
        lead = session.get(Lead, escalation.lead_id)
        assert lead is not None
        rep = _configured_rep(routing, assignment.rep_key)
        assignee = _assignee(rep, assignment)
        words = trigger_words(escalation.trigger, escalation.trigger_detail, escalation.score)
        items.append(
            {
                "escalation_id": escalation.id,
                "event": _event(assignee, assignment),
                "lead": {
                    "id": lead.id,
                    "full_name": lead_context(lead)["full_name"],
                    "email": lead.email,
                    "company": lead.company,
                },
                "from": _previous_assignee(session, routing, escalation, assignment),
                "to": assignee["name"] if assignee else routing.fallback_queue.name,
                "why": assignment.detail or assignment.rule,
                "trigger_label": words.label,
                "score_note": words.score_note,
                "sla_due_local": _local(assignment.sla_due_at, routing.manager.timezone),
                "ack_url": ack_url(
                    runtime.settings,
                    escalation.id,
                    assignment.id,
                    now,
                    f"{MANAGER}: {digest.recipient}",
                ),
            }
        )
    return {
        "recipient": {"name": digest.recipient},
        "items": items,
        "rerouted": sum(item["event"] == "rerouted" for item in items),
        "fallback": sum(item["event"] == "fallback" for item in items),
        "sla_minutes": routing.sla_minutes,
        "queue": {"name": routing.fallback_queue.name},
        "sender": {"company_name": runtime.settings.company_name},
    }


def compose_digest(
    session: Session, runtime: EscalationRuntime, digest: EscalationDigest, now: datetime
) -> OutgoingMessage:
    """Render one digest (templates/escalation/digest.*)."""
    assert digest.id is not None
    base = OutgoingMessage(
        touch_id=digest.id,
        lead_id=0,
        channel=digest.channel,
        to=digest.address,
        campaign=OUTBOX_FOLDER,
        step=DIGEST_STEP,
        created_at=now,
        to_name=digest.recipient,
        extra={"digest_id": str(digest.id)},
        kind="escalation_digest",
    )
    context = digest_context(session, runtime, digest, now)
    return _render_for(runtime, base, "escalation/digest", context)
