"""Sales tables: escalations of sales-ready leads to reps, their assignments (the audit
trail), the notifications about them and what reps did with them (activities)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from leadops.models.types import ts
from leadops.models.vocab import EscalationStatus, NotificationStatus

_ACTIVE_ESCALATION_SQL = "status IN ('open', 'acknowledged', 'rerouted')"


class Escalation(SQLModel, table=True):
    """A sales-ready lead handed to a rep. One per (lead, trigger, trigger key); at most one
    active (open, acknowledged or re-routed) per lead."""

    __tablename__ = "escalations"
    __table_args__ = (
        sa.UniqueConstraint("lead_id", "trigger", "trigger_key", name="uq_escalations_trigger"),
        sa.Index(
            "uq_escalations_one_active",
            "lead_id",
            unique=True,
            sqlite_where=sa.text(_ACTIVE_ESCALATION_SQL),
            postgresql_where=sa.text(_ACTIVE_ESCALATION_SQL),
        ),
        sa.Index("ix_escalations_status_sla", "status", "sla_due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    trigger: str = Field(max_length=40)
    trigger_key: str = Field(max_length=200)
    # What was true of the trigger when the escalation was made (the import source of a
    # lead imported at SQL, the score change that crossed the threshold, the channel a
    # hand was raised on); worded by leadops.sales.triggers.
    trigger_detail: str | None = Field(default=None, max_length=300)
    score: int = 0
    reasons: list[dict[str, Any]] = Field(sa_type=sa.JSON, nullable=False)
    account_domain: str | None = Field(default=None, max_length=255, index=True)
    status: str = Field(default=EscalationStatus.OPEN, max_length=20)
    rep_key: str | None = Field(default=None, max_length=64, index=True)  # None: in the queue
    queue: str | None = Field(default=None, max_length=64)
    assignment_id: int | None = None  # the current row in escalation_assignments
    reroutes: int = 0
    sla_due_at: datetime | None = ts()
    acknowledged_at: datetime | None = ts()
    acknowledged_by: str | None = Field(default=None, max_length=200)
    closed_at: datetime | None = ts()
    closed_by: str | None = Field(default=None, max_length=200)
    close_note: str | None = None
    # Speed to lead: the clock starts at the hand-raise (a hand-raise trigger) or when the
    # lead was created (reached SQL), and stops at the rep's first logged contact.
    started_at: datetime | None = ts()
    first_contact_at: datetime | None = ts()
    first_contact_by: str | None = Field(default=None, max_length=200)
    first_contact_channel: str | None = Field(default=None, max_length=20)  # ContactChannel
    # How it ended: a LostReason, NotReadyReason or DisqualifyReason code; the amount won
    # (in the currency's minor unit, cents); when a lead not ready is to be tried again.
    outcome_reason: str | None = Field(default=None, max_length=40)
    amount_cents: int | None = Field(default=None, sa_type=sa.BigInteger)
    retry_at: datetime | None = ts()
    created_at: datetime = ts(nullable=False)
    updated_at: datetime = ts(nullable=False)


class EscalationAssignment(SQLModel, table=True):
    """The audit trail: every assignment of an escalation, with the rule that chose it."""

    __tablename__ = "escalation_assignments"
    __table_args__ = (
        sa.UniqueConstraint("escalation_id", "seq", name="uq_escalation_assignments_seq"),
        sa.Index("ix_escalation_assignments_rep_at", "rep_key", "assigned_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    escalation_id: int = Field(foreign_key="escalations.id")
    seq: int  # 1 for the first assignment, then one more per re-route
    rep_key: str | None = Field(default=None, max_length=64)
    queue: str | None = Field(default=None, max_length=64)
    rule: str = Field(max_length=100)
    detail: str | None = None
    assigned_at: datetime = ts(nullable=False)
    sla_due_at: datetime | None = ts()
    ended_at: datetime | None = ts()
    end_reason: str | None = Field(default=None, max_length=100)


class EscalationNotification(SQLModel, table=True):
    """One message about an assignment to one person on one channel; recorded before it is
    sent (UNIQUE), so it is sent at most once."""

    __tablename__ = "escalation_notifications"
    __table_args__ = (
        sa.UniqueConstraint(
            "assignment_id", "role", "channel", name="uq_escalation_notifications_once"
        ),
        sa.Index("ix_escalation_notifications_status", "status", "not_before"),
    )

    id: int | None = Field(default=None, primary_key=True)
    escalation_id: int = Field(foreign_key="escalations.id", index=True)
    assignment_id: int = Field(foreign_key="escalation_assignments.id")
    role: str = Field(max_length=20)  # rep, manager, queue, lead (the hand-off intro)
    recipient: str = Field(max_length=200)
    channel: str = Field(max_length=20)  # email, whatsapp, sms, slack
    address: str = Field(max_length=320)  # email, E.164 number, or slack:<env variable>
    status: str = Field(default=NotificationStatus.PENDING, max_length=20)
    attempts: int = 0
    not_before: datetime = ts(nullable=False)
    lease_until: datetime | None = ts()
    provider_id: str | None = Field(default=None, max_length=300)
    error: str | None = None
    created_at: datetime = ts(nullable=False)
    sent_at: datetime | None = ts()
    # A manager notification goes out inside one digest (one message per channel for a
    # whole SLA pass); the row stays as the record of who was told about what.
    digest_id: int | None = Field(default=None, foreign_key="escalation_digests.id")


class EscalationDigest(SQLModel, table=True):
    """One message to the manager on one channel listing the escalations of one pass that
    were re-routed or sent to the fallback queue (their escalation_notifications rows point
    here). Sent like a notification: recorded before it is sent, sent at most once."""

    __tablename__ = "escalation_digests"
    __table_args__ = (sa.Index("ix_escalation_digests_status", "status", "not_before"),)

    id: int | None = Field(default=None, primary_key=True)
    recipient: str = Field(max_length=200)
    channel: str = Field(max_length=20)
    address: str = Field(max_length=320)
    status: str = Field(default=NotificationStatus.PENDING, max_length=20)
    attempts: int = 0
    not_before: datetime = ts(nullable=False)
    lease_until: datetime | None = ts()
    provider_id: str | None = Field(default=None, max_length=300)
    error: str | None = None
    created_at: datetime = ts(nullable=False)
    sent_at: datetime | None = ts()


class EscalationActivity(SQLModel, table=True):
    """One thing a rep did with an escalation (acknowledged, contacted, a note, closed),
    as the person the signed link was sent to. `request_key` is the one-time key of the
    form that sent it, so a double tap or a resent form records it once."""

    __tablename__ = "escalation_activities"
    __table_args__ = (
        sa.UniqueConstraint("escalation_id", "request_key", name="uq_escalation_activities_once"),
        sa.Index("ix_escalation_activities_escalation_at", "escalation_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    escalation_id: int = Field(foreign_key="escalations.id")
    lead_id: int = Field(foreign_key="leads.id", index=True)
    assignment_id: int | None = Field(default=None, foreign_key="escalation_assignments.id")
    kind: str = Field(max_length=20)  # ActivityKind
    channel: str | None = Field(default=None, max_length=20)  # ContactChannel, for contacted
    reason: str | None = Field(default=None, max_length=40)  # a lost/not-ready/disqualify code
    amount_cents: int | None = Field(default=None, sa_type=sa.BigInteger)
    retry_at: datetime | None = ts()
    note: str | None = None
    by: str = Field(max_length=200)
    request_key: str | None = Field(default=None, max_length=64)
    at: datetime = ts(nullable=False)


# Core table handles, for set-based statements that bypass the ORM's per-object overhead.
ESCALATIONS = cast(sa.Table, Escalation.__table__)  # type: ignore[attr-defined]
ESCALATION_ASSIGNMENTS = cast(sa.Table, EscalationAssignment.__table__)  # type: ignore[attr-defined]
ESCALATION_NOTIFICATIONS = cast(sa.Table, EscalationNotification.__table__)  # type: ignore[attr-defined]
ESCALATION_DIGESTS = cast(sa.Table, EscalationDigest.__table__)  # type: ignore[attr-defined]
ESCALATION_ACTIVITIES = cast(sa.Table, EscalationActivity.__table__)  # type: ignore[attr-defined]
