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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlmodel import Session

from leadops.deadletters import describe, must_raise
from leadops.delivery.policy import Action
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
    ESCALATION_DIGESTS,
    ESCALATION_NOTIFICATIONS,
    Escalation,
    EscalationDigest,
    EscalationNotification,
    Lead,
    NotificationStatus,
)
from leadops.providers.base import OutgoingMessage, PermanentSendError, SendError, SendResult
from leadops.sales.messages import (
    DIGEST_STEP,
    LEAD,
    MANAGER,
    OUTBOX_FOLDER,
    SENDING_LEASE,
    compose_digest,
    compose_notification,
    intro_plan,
)
from leadops.sales.runtime import EscalationRuntime

log = logging.getLogger("leadops.escalation")


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
