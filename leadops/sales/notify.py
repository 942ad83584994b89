"""Escalation notifications: render who the lead is and why, send each exactly once.

Rows in escalation_notifications are recorded with the assignment they are about (see
leadops.sales.escalation). Sending follows the dispatcher's rules: a row is committed as
`sending` before the request leaves; a stopped sender's rows become `sent` when the channel
can prove it (the file outbox can), otherwise `ambiguous`, never re-sent; only failures
that provably did not deliver are retried.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlmodel import Session

from leadops.core.settings import Settings
from leadops.core.tokens import sign
from leadops.deadletters import describe, must_raise
from leadops.delivery.compose import lead_context
from leadops.delivery.render import RenderError
from leadops.delivery.sending import POLICIES, Classified, MessageKind, SendOutcome, classify
from leadops.models import (
    AWAITING_ACK_STATUSES,
    ESCALATION_ASSIGNMENTS,
    ESCALATION_NOTIFICATIONS,
    SENT_TOUCH_STATUSES,
    TOUCHES,
    Escalation,
    EscalationAssignment,
    EscalationNotification,
    Lead,
    NotificationStatus,
)
from leadops.providers.base import OutgoingMessage, PermanentSendError, SendError, SendResult
from leadops.sales.routing import Rep, RoutingConfig
from leadops.sales.runtime import EscalationRuntime

log = logging.getLogger("leadops.escalation")

ACK = "ack"
OUTBOX_FOLDER = "escalations"  # outbox/<channel>/escalations/<role>/t<notification id>
TRIGGER_LABELS = {
    "sql_threshold": "crossed the sales-qualified (SQL) score threshold",
    "demo_requested": "requested a demo",
    "reply_intent": "replied with buying intent",
    "contact_request": "asked to be contacted",
    "pricing_request": "asked for pricing",
}
SENDING_LEASE = timedelta(minutes=5)


@dataclass
class NotifyReport:
    sent: int = 0
    skipped: int = 0
    retrying: int = 0
    failed: int = 0
    ambiguous: int = 0
    recovered: int = 0
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
    return {
        "id": escalation.id,
        "trigger": escalation.trigger,
        "trigger_label": TRIGGER_LABELS.get(
            escalation.trigger, escalation.trigger.replace("_", " ")
        ),
        "score": escalation.score,
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


def compose_notification(
    session: Session, runtime: EscalationRuntime, row: EscalationNotification, now: datetime
) -> OutgoingMessage:
    """Render one notification. Raises RenderError, or PermanentSendError for a missing
    Slack webhook variable."""
    escalation = session.get(Escalation, row.escalation_id)
    assignment = session.get(EscalationAssignment, row.assignment_id)
    assert escalation is not None and assignment is not None and row.id is not None
    context = notification_context(
        session, runtime, escalation, assignment, row.role, row.recipient, now
    )
    base_name = "escalation/rep" if row.role == "rep" else "escalation/alert"
    render = runtime.renderer.render
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
    if row.channel == "email":
        subject = " ".join(render(f"{base_name}.subject.j2", context).split())
        return replace(
            base,
            subject=subject,
            html=render(f"{base_name}.html.j2", context),
            text=render(f"{base_name}.txt.j2", context),
        )
    body = render(f"{base_name}.short.txt.j2", context).strip()
    if row.channel == "slack":
        variable = row.address.removeprefix("env:")
        url = os.environ.get(variable, "").strip()
        if not url:
            raise PermanentSendError(f"environment variable {variable} (Slack webhook) is not set")
        return replace(base, to=url, body=_slack_escape(body))
    return replace(base, body=body)


def _recover(runtime: EscalationRuntime, now: datetime) -> int:
    """Resolve rows a stopped sender left in `sending`: sent if provable, else ambiguous."""
    n = ESCALATION_NOTIFICATIONS.c
    recovered = 0
    with runtime.engine.begin() as conn:
        stuck = conn.execute(
            select(n.id, n.channel, n.role).where(
                n.status == NotificationStatus.SENDING, n.lease_until < now
            )
        ).all()
        for row_id, channel_name, role in stuck:
            channel = runtime.channels.get(channel_name)
            proof = channel.find_sent(row_id, OUTBOX_FOLDER, role) if channel else None
            values: dict[str, Any] = (
                {"status": NotificationStatus.SENT, "provider_id": proof, "sent_at": now}
                if proof is not None
                else {
                    "status": NotificationStatus.AMBIGUOUS,
                    "error": "sender stopped while sending; delivery unknown, not re-sent",
                }
            )
            conn.execute(
                update(ESCALATION_NOTIFICATIONS)
                .where(n.id == row_id, n.status == NotificationStatus.SENDING)
                .values(lease_until=None, **values)
            )
            recovered += 1
    return recovered


def deliver_notifications(
    runtime: EscalationRuntime, now: datetime, *, escalation_id: int | None = None
) -> NotifyReport:
    """Send every recorded notification that is due, each at most once."""
    report = NotifyReport(recovered=_recover(runtime, now))
    n = ESCALATION_NOTIFICATIONS.c
    query = select(n.id).where(n.status == NotificationStatus.PENDING, n.not_before <= now)
    if escalation_id is not None:
        query = query.where(n.escalation_id == escalation_id)
    with Session(runtime.engine, expire_on_commit=False) as session:
        ids = list(session.execute(query.order_by(n.id)).scalars())
        for row_id in ids:
            claimed = session.execute(
                update(ESCALATION_NOTIFICATIONS)
                .where(n.id == row_id, n.status == NotificationStatus.PENDING)
                .values(
                    status=NotificationStatus.SENDING,
                    attempts=n.attempts + 1,
                    lease_until=now + SENDING_LEASE,
                )
            )
            session.commit()
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another sender took it
            row = session.get(EscalationNotification, row_id, populate_existing=True)
            assert row is not None
            _send_one(session, runtime, row, now, report)
    return report


def _finish(session: Session, row_id: int, **values: Any) -> None:
    session.execute(
        update(ESCALATION_NOTIFICATIONS)
        .where(
            ESCALATION_NOTIFICATIONS.c.id == row_id,
            ESCALATION_NOTIFICATIONS.c.status == NotificationStatus.SENDING,
        )
        .values(lease_until=None, **values)
    )
    session.commit()


def _compose(
    session: Session, runtime: EscalationRuntime, row: EscalationNotification, now: datetime
) -> OutgoingMessage:
    """`compose_notification`, where any other error becomes a PermanentSendError: nothing
    has left, so it is a recorded failure, not a doubt."""
    try:
        return compose_notification(session, runtime, row, now)
    except (RenderError, PermanentSendError):
        raise
    except Exception as exc:
        if must_raise(exc):
            raise
        raise PermanentSendError(f"could not compose: {describe(exc)}") from exc


NOTIFY_RETRY = POLICIES[MessageKind.NOTIFICATION]


def _settle(
    session: Session,
    row: EscalationNotification,
    now: datetime,
    report: NotifyReport,
    answer: Classified,
    result: SendResult | None,
) -> None:
    """Record a send's classified outcome (leadops.delivery.sending). A transient failure,
    or a channel refusing us, is pending again after the notification backoff, failed once
    NOTIFY_RETRY gives up: a rep must not wait on a broken channel."""
    assert row.id is not None
    outcome = answer.outcome
    if outcome == SendOutcome.SENT:
        assert result is not None
        report.sent += 1
        _finish(
            session,
            row.id,
            status=NotificationStatus.SENT,
            provider_id=result.provider_id[:300],
            sent_at=now,
            error=None,
        )
    elif outcome in (SendOutcome.RETRY, SendOutcome.CHANNEL_STOPPED):
        if NOTIFY_RETRY.gives_up(row.attempts):
            report.failed += 1
            _finish(
                session,
                row.id,
                status=NotificationStatus.FAILED,
                error=NOTIFY_RETRY.gave_up(row.attempts, answer.error),
            )
            return
        report.retrying += 1
        _finish(
            session,
            row.id,
            status=NotificationStatus.PENDING,
            not_before=now + NOTIFY_RETRY.delay(row.attempts, answer.retry_after),
            error=answer.error,
        )
    elif outcome == SendOutcome.FAILED:
        log.error("escalation notification %s failed: %s", row.id, answer.error)
        report.failed += 1
        report.errors.append(f"notification {row.id}: {answer.error}")
        _finish(session, row.id, status=NotificationStatus.FAILED, error=answer.error)
    else:
        report.ambiguous += 1
        _finish(session, row.id, status=NotificationStatus.AMBIGUOUS, error=answer.error)


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
    if (
        escalation.assignment_id != row.assignment_id
        or escalation.status not in AWAITING_ACK_STATUSES
    ):  # acknowledged, closed or re-routed while this waited for a retry
        report.skipped += 1
        moved = escalation.assignment_id != row.assignment_id
        why = "re-routed" if moved else escalation.status
        _finish(
            session, row.id, status=NotificationStatus.SKIPPED, error=f"not sent: already {why}"
        )
        return
    channel = runtime.channels.get(row.channel)
    result: SendResult | None = None
    error: BaseException | None = None
    try:
        if channel is None:
            raise PermanentSendError(f"no {row.channel} channel is configured")
        message = _compose(session, runtime, row, now)
        result = channel.send(message)
    except RenderError as exc:
        log.error("escalation notification %s not sent: %s", row.id, exc)
        report.failed += 1
        report.errors.append(f"notification {row.id}: {exc}")
        _finish(session, row.id, status=NotificationStatus.FAILED, error=str(exc))
        return
    except Exception as exc:  # classified below; our own bug after sending is ambiguous
        if not isinstance(exc, SendError):
            log.exception("escalation notification %s: unexpected error while sending", row.id)
        error = exc
    _settle(session, row, now, report, classify(error), result)
