"""Escalation notifications: render who the lead is and why, send each exactly once.

Rows in escalation_notifications are recorded with the assignment they are about (see
leadops.sales.escalation). Sending follows the dispatcher's rules: a row is committed as
`sending` before the request leaves; a stopped sender's rows become `sent` when the channel
can prove it (the file outbox can), otherwise `ambiguous`, never re-sent; only failures
that provably did not deliver are retried.

Three kinds of row are sent differently:
- the manager's rows are gathered, when a pass delivers, into one digest per channel
  (escalation_digests, templates/escalation/digest.*) listing every escalation re-routed
  or queued since the last one; each row keeps who was told about what and takes the
  digest's outcome;
- the lead's hand-off intro (role `lead`, templates/handoff/intro.*) goes through the
  contact policy as a transactional message (leadops.delivery.policy.intro_decision):
  held until the lead's send window opens, skipped with the reason code when the address
  is suppressed or unsubscribed, on the next channel when WhatsApp's 24-hour window is
  closed; it names the rep who holds the escalation when it leaves;
- the rest (rep, queue) one message each.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select, update
from sqlmodel import Session

from leadops.core.settings import Settings
from leadops.core.tokens import sign
from leadops.deadletters import describe, must_raise
from leadops.delivery.compose import lead_context, whatsapp_session_open
from leadops.delivery.policy import Action, Decision, SendWindow, contact_facts, intro_decision
from leadops.delivery.render import RenderError
from leadops.delivery.sending import (
    POLICIES,
    Classified,
    MessageKind,
    RetryPolicy,
    SendOutcome,
    classify,
)
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    AWAITING_ACK_STATUSES,
    ESCALATION_ASSIGNMENTS,
    ESCALATION_DIGESTS,
    ESCALATION_NOTIFICATIONS,
    SENT_TOUCH_STATUSES,
    TOUCHES,
    Escalation,
    EscalationAssignment,
    EscalationDigest,
    EscalationNotification,
    Lead,
    NotificationStatus,
)
from leadops.providers.base import OutgoingMessage, PermanentSendError, SendError, SendResult
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
FINAL_STATUSES = (
    NotificationStatus.SENT,
    NotificationStatus.FAILED,
    NotificationStatus.AMBIGUOUS,
    NotificationStatus.SKIPPED,
)


@dataclass
class NotifyReport:
    sent: int = 0
    skipped: int = 0
    retrying: int = 0
    failed: int = 0
    ambiguous: int = 0
    recovered: int = 0
    held: int = 0  # hand-off intros waiting for the lead's send window
    errors: list[str] = field(default_factory=list)


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


def _send_intro(
    session: Session,
    runtime: EscalationRuntime,
    row: EscalationNotification,
    escalation: Escalation,
    now: datetime,
    report: NotifyReport,
) -> None:
    """The lead's intro through the contact policy: sent, held until the window opens
    (the attempt is not counted), or skipped with the reason codes."""
    assert row.id is not None
    table = ESCALATION_NOTIFICATIONS
    if escalation.status not in ACTIVE_ESCALATION_STATUSES:
        report.skipped += 1
        why = f"not sent: already {escalation.status}"
        _finish(session, table, row.id, status=NotificationStatus.SKIPPED, error=why)
        return
    lead = session.get(Lead, escalation.lead_id, populate_existing=True)
    assert lead is not None
    channel, decision, skips = intro_plan(runtime, escalation, lead, row.channel, now)
    if decision.action == Action.SKIP:
        report.skipped += 1
        _finish(session, table, row.id, status=NotificationStatus.SKIPPED, error="; ".join(skips))
        return
    if decision.action == Action.HOLD:
        report.held += 1
        assert decision.retry_at is not None
        _finish(
            session,
            table,
            row.id,
            status=NotificationStatus.PENDING,
            attempts=row.attempts - 1,  # waiting for the window is not a failed attempt
            not_before=decision.retry_at,
            error=f"held: {decision.reason}",
        )
        return
    row_id = row.id
    if channel != row.channel:  # e.g. WhatsApp's 24-hour window closed: by email
        address = lead.email if channel == "email" else lead.phone
        assert address is not None  # the policy sends only to an address
        session.execute(
            update(table).where(table.c.id == row_id).values(channel=channel, address=address)
        )
        session.commit()
    current = session.get(EscalationNotification, row_id, populate_existing=True)
    assert current is not None
    _deliver(
        session,
        runtime,
        table,
        row_id,
        current.attempts,
        current.channel,
        now,
        report,
        INTRO_RETRY,
        lambda: compose_notification(session, runtime, current, now),
    )


# -- the manager's digest --------------------------------------------------------------------


def _gather_digests(runtime: EscalationRuntime, now: datetime, escalation_id: int | None) -> None:
    """Put every due manager notification not yet in a digest into one new digest per
    channel and address (one transaction). A concurrent gatherer that took the rows first
    leaves this one's digest empty: it is dropped."""
    n = ESCALATION_NOTIFICATIONS.c
    query = select(n.channel, n.address, n.recipient).where(
        n.role == MANAGER,
        n.status == NotificationStatus.PENDING,
        n.digest_id.is_(None),
        n.not_before <= now,
    )
    if escalation_id is not None:
        query = query.where(n.escalation_id == escalation_id)
    with runtime.engine.begin() as conn:
        groups = conn.execute(query.distinct().order_by(n.channel, n.address)).all()
        for channel, address, recipient in groups:
            inserted = conn.execute(
                ESCALATION_DIGESTS.insert().values(
                    recipient=recipient,
                    channel=channel,
                    address=address,
                    status=NotificationStatus.PENDING,
                    attempts=0,
                    not_before=now,
                    created_at=now,
                )
            ).inserted_primary_key
            assert inserted is not None
            digest_id = inserted[0]
            members = update(ESCALATION_NOTIFICATIONS).where(
                n.role == MANAGER,
                n.status == NotificationStatus.PENDING,
                n.digest_id.is_(None),
                n.not_before <= now,
                n.channel == channel,
                n.address == address,
            )
            if escalation_id is not None:
                members = members.where(n.escalation_id == escalation_id)
            if conn.execute(members.values(digest_id=digest_id)).rowcount == 0:
                conn.execute(
                    ESCALATION_DIGESTS.delete().where(ESCALATION_DIGESTS.c.id == digest_id)
                )


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


def _send_digest(
    session: Session,
    runtime: EscalationRuntime,
    digest: EscalationDigest,
    now: datetime,
    report: NotifyReport,
) -> None:
    assert digest.id is not None
    values = _deliver(
        session,
        runtime,
        ESCALATION_DIGESTS,
        digest.id,
        digest.attempts,
        digest.channel,
        now,
        report,
        NOTIFY_RETRY,
        lambda: compose_digest(session, runtime, digest, now),
    )
    _settle_members(session, digest.id, values)


def _settle_members(session: Session, digest_id: int, values: dict[str, Any]) -> None:
    """A digest's final outcome is its manager notifications' outcome."""
    if values.get("status") not in FINAL_STATUSES:
        return
    n = ESCALATION_NOTIFICATIONS.c
    session.execute(
        update(ESCALATION_NOTIFICATIONS)
        .where(n.digest_id == digest_id, n.status == NotificationStatus.PENDING)
        .values(
            status=values["status"],
            provider_id=values.get("provider_id"),
            sent_at=values.get("sent_at"),
            error=values.get("error"),
        )
    )
    session.commit()


# -- sending ----------------------------------------------------------------------------------


def _recover(runtime: EscalationRuntime, table: Table, now: datetime) -> int:
    """Resolve rows a stopped sender left in `sending`: sent if provable, else ambiguous
    (a digest's notifications take its outcome)."""
    c = table.c
    digests = table is ESCALATION_DIGESTS
    recovered = 0
    with Session(runtime.engine) as session:
        columns = [c.id, c.channel] + ([] if digests else [c.role])
        stuck = session.execute(
            select(*columns).where(c.status == NotificationStatus.SENDING, c.lease_until < now)
        ).all()
        for found in stuck:
            row_id, channel = found[0], runtime.channels.get(found[1])
            step = DIGEST_STEP if digests else found[2]
            proof = channel.find_sent(row_id, OUTBOX_FOLDER, step) if channel else None
            values: dict[str, Any] = (
                {"status": NotificationStatus.SENT, "provider_id": proof, "sent_at": now}
                if proof is not None
                else {
                    "status": NotificationStatus.AMBIGUOUS,
                    "error": "sender stopped while sending; delivery unknown, not re-sent",
                }
            )
            _finish(session, table, row_id, **values)
            if digests:
                _settle_members(session, row_id, values)
            recovered += 1
    return recovered


def _claim(session: Session, table: Table, row_id: int, now: datetime) -> bool:
    """Mark one pending row `sending` (committed before anything leaves); False when
    another sender took it."""
    c = table.c
    claimed = session.execute(
        update(table)
        .where(c.id == row_id, c.status == NotificationStatus.PENDING)
        .values(
            status=NotificationStatus.SENDING,
            attempts=c.attempts + 1,
            lease_until=now + SENDING_LEASE,
        )
    )
    session.commit()
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


def deliver_notifications(
    runtime: EscalationRuntime, now: datetime, *, escalation_id: int | None = None
) -> NotifyReport:
    """Send every recorded notification that is due, each at most once; the manager's in
    one digest per channel."""
    recovered = _recover(runtime, ESCALATION_NOTIFICATIONS, now)
    report = NotifyReport(recovered=recovered + _recover(runtime, ESCALATION_DIGESTS, now))
    _gather_digests(runtime, now, escalation_id)
    n, d = ESCALATION_NOTIFICATIONS.c, ESCALATION_DIGESTS.c
    query = select(n.id).where(
        n.status == NotificationStatus.PENDING, n.not_before <= now, n.digest_id.is_(None)
    )
    digests = select(d.id).where(d.status == NotificationStatus.PENDING, d.not_before <= now)
    if escalation_id is not None:
        query = query.where(n.escalation_id == escalation_id)
        digests = digests.where(
            d.id.in_(select(n.digest_id).where(n.escalation_id == escalation_id))
        )
    with Session(runtime.engine, expire_on_commit=False) as session:
        for row_id in list(session.execute(query.order_by(n.id)).scalars()):
            if not _claim(session, ESCALATION_NOTIFICATIONS, row_id, now):
                continue  # another sender took it
            row = session.get(EscalationNotification, row_id, populate_existing=True)
            assert row is not None
            _send_one(session, runtime, row, now, report)
        for digest_id in list(session.execute(digests.order_by(d.id)).scalars()):
            if not _claim(session, ESCALATION_DIGESTS, digest_id, now):
                continue
            digest = session.get(EscalationDigest, digest_id, populate_existing=True)
            assert digest is not None
            _send_digest(session, runtime, digest, now, report)
    return report


def _finish(session: Session, table: Table, row_id: int, **values: Any) -> None:
    session.execute(
        update(table)
        .where(table.c.id == row_id, table.c.status == NotificationStatus.SENDING)
        .values(lease_until=None, **values)
    )
    session.commit()


def _composed(compose: Callable[[], OutgoingMessage]) -> OutgoingMessage:
    """`compose()`, where any error but RenderError becomes a PermanentSendError: nothing
    has left, so it is a recorded failure, not a doubt."""
    try:
        return compose()
    except (RenderError, PermanentSendError):
        raise
    except Exception as exc:
        if must_raise(exc):
            raise
        raise PermanentSendError(f"could not compose: {describe(exc)}") from exc


NOTIFY_RETRY = POLICIES[MessageKind.NOTIFICATION]
INTRO_RETRY = POLICIES[MessageKind.INTRO]


def _settle(
    row_id: int,
    attempts: int,
    now: datetime,
    report: NotifyReport,
    answer: Classified,
    result: SendResult | None,
    retry: RetryPolicy,
) -> dict[str, Any]:
    """The values a send's classified outcome (leadops.delivery.sending) leaves its row
    with. A transient failure, or a channel refusing us, is pending again after the kind's
    backoff, failed once `retry` gives up: nobody must wait on a broken channel."""
    outcome = answer.outcome
    if outcome == SendOutcome.SENT:
        assert result is not None
        report.sent += 1
        return {
            "status": NotificationStatus.SENT,
            "provider_id": result.provider_id[:300],
            "sent_at": now,
            "error": None,
        }
    if outcome in (SendOutcome.RETRY, SendOutcome.CHANNEL_STOPPED):
        if retry.gives_up(attempts):
            report.failed += 1
            return {
                "status": NotificationStatus.FAILED,
                "error": retry.gave_up(attempts, answer.error),
            }
        report.retrying += 1
        return {
            "status": NotificationStatus.PENDING,
            "not_before": now + retry.delay(attempts, answer.retry_after),
            "error": answer.error,
        }
    if outcome == SendOutcome.FAILED:
        log.error("escalation %s %s failed: %s", retry.kind, row_id, answer.error)
        report.failed += 1
        report.errors.append(f"{retry.kind} {row_id}: {answer.error}")
        return {"status": NotificationStatus.FAILED, "error": answer.error}
    report.ambiguous += 1
    return {"status": NotificationStatus.AMBIGUOUS, "error": answer.error}


def _deliver(
    session: Session,
    runtime: EscalationRuntime,
    table: Table,
    row_id: int,
    attempts: int,
    channel_name: str,
    now: datetime,
    report: NotifyReport,
    retry: RetryPolicy,
    compose: Callable[[], OutgoingMessage],
) -> dict[str, Any]:
    """Compose and send one claimed row, then record its outcome; returns the values."""
    channel = runtime.channels.get(channel_name)
    result: SendResult | None = None
    error: BaseException | None = None
    try:
        if channel is None:
            raise PermanentSendError(f"no {channel_name} channel is configured")
        message = _composed(compose)
        result = channel.send(message)
    except RenderError as exc:
        log.error("escalation %s %s not sent: %s", retry.kind, row_id, exc)
        report.failed += 1
        report.errors.append(f"{retry.kind} {row_id}: {exc}")
        values: dict[str, Any] = {"status": NotificationStatus.FAILED, "error": str(exc)}
        _finish(session, table, row_id, **values)
        return values
    except Exception as exc:  # classified below; our own bug after sending is ambiguous
        if not isinstance(exc, SendError):
            log.exception("escalation %s %s: unexpected error while sending", retry.kind, row_id)
        error = exc
    values = _settle(row_id, attempts, now, report, classify(error), result, retry)
    _finish(session, table, row_id, **values)
    return values


def _send_one(
    session: Session,
    runtime: EscalationRuntime,
    row: EscalationNotification,
    now: datetime,
    report: NotifyReport,
) -> None:
    assert row.id is not None
    escalation = session.get(Escalation, row.escalation_id, populate_existing=True)
    assert escalation is not None
    if row.role == LEAD:
        _send_intro(session, runtime, row, escalation, now, report)
        return
    if (
        escalation.assignment_id != row.assignment_id
        or escalation.status not in AWAITING_ACK_STATUSES
    ):  # acknowledged, closed or re-routed while this waited for a retry
        report.skipped += 1
        moved = escalation.assignment_id != row.assignment_id
        why = "re-routed" if moved else escalation.status
        _finish(
            session,
            ESCALATION_NOTIFICATIONS,
            row.id,
            status=NotificationStatus.SKIPPED,
            error=f"not sent: already {why}",
        )
        return
    _deliver(
        session,
        runtime,
        ESCALATION_NOTIFICATIONS,
        row.id,
        row.attempts,
        row.channel,
        now,
        report,
        NOTIFY_RETRY,
        lambda: compose_notification(session, runtime, row, now),
    )
