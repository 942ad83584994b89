"""Database tables (SQLModel). Every timestamp is stored as UTC and read back timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime that only accepts aware datetimes, stores UTC and returns aware UTC.

    PostgreSQL keeps it as timestamptz; SQLite, which has no zones, as naive UTC text.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"refusing to store naive datetime {value.isoformat()}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class LifecycleStage(StrEnum):
    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MQL = "mql"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    RECYCLED = "recycled"
    UNSUBSCRIBED = "unsubscribed"


# Funnel order, used so that a merge or import never moves a lead backwards.
FUNNEL_ORDER: dict[str, int] = {
    LifecycleStage.SUBSCRIBER: 0,
    LifecycleStage.RECYCLED: 1,
    LifecycleStage.LEAD: 1,
    LifecycleStage.MQL: 2,
    LifecycleStage.SQL: 3,
    LifecycleStage.OPPORTUNITY: 4,
    LifecycleStage.CUSTOMER: 5,
}


class Channel(StrEnum):
    EMAIL = "email"
    WHATSAPP = "whatsapp"


class TouchStatus(StrEnum):
    PENDING = "pending"  # due (or held with a hold_reason until not_before)
    CLAIMED = "claimed"  # taken by a dispatcher; its request has not left
    SENDING = "sending"  # the request is leaving; outcome unknown until recorded
    SENT = "sent"  # accepted by the channel; provider_id recorded
    DELIVERED = "delivered"
    FAILED = "failed"  # permanent failure, with the reason in `error`
    AMBIGUOUS = "ambiguous"  # may or may not have arrived; never re-sent automatically
    SKIPPED = "skipped"  # will never be sent (no consent, unsubscribed...), reason in hold_reason
    # Could not be decided or composed (our code or its data failed for this touch only):
    # never sent, set aside with the error until `leadops deadletters retry`.
    DEAD_LETTER = "dead_letter"


FINAL_TOUCH_STATUSES = frozenset(
    {
        TouchStatus.SENT,
        TouchStatus.DELIVERED,
        TouchStatus.FAILED,
        TouchStatus.AMBIGUOUS,
        TouchStatus.SKIPPED,
    }
)
SENT_TOUCH_STATUSES = frozenset({TouchStatus.SENT, TouchStatus.DELIVERED})


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"


class QuarantineStatus(StrEnum):
    OPEN = "open"
    RELEASED = "released"
    DROPPED = "dropped"


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class Lead(SQLModel, table=True):
    __tablename__ = "leads"

    id: int | None = Field(default=None, primary_key=True)
    email: str | None = Field(default=None, max_length=320, unique=True)
    phone: str | None = Field(default=None, max_length=20, index=True)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    company: str | None = Field(default=None, max_length=200)
    job_title: str | None = Field(default=None, max_length=200)
    seniority: str | None = Field(default=None, max_length=30)
    company_size: int | None = None
    industry: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, max_length=2)
    timezone: str = Field(default="UTC", max_length=64)
    source: str | None = Field(default=None, max_length=100)
    crm_id: str | None = Field(default=None, max_length=64, index=True)

    lifecycle_stage: str = Field(default=LifecycleStage.LEAD, max_length=20, index=True)
    segment: str | None = Field(default=None, max_length=64)
    score: int = 0

    email_consent: bool = False
    email_consent_at: datetime | None = _ts()
    whatsapp_consent: bool = False
    whatsapp_consent_at: datetime | None = _ts()
    email_suppressed_at: datetime | None = _ts()
    email_suppression_reason: str | None = Field(default=None, max_length=100)
    whatsapp_suppressed_at: datetime | None = _ts()
    whatsapp_suppression_reason: str | None = Field(default=None, max_length=100)
    unsubscribed_at: datetime | None = _ts()

    last_engaged_at: datetime | None = _ts()
    last_inbound_at: datetime | None = _ts()
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class CampaignVersion(SQLModel, table=True):
    """A campaign file as it was when leads enrolled; leads stay on their version."""

    __tablename__ = "campaign_versions"
    __table_args__ = (
        sa.UniqueConstraint("campaign", "checksum", name="uq_campaign_versions_checksum"),
        sa.UniqueConstraint("campaign", "version", name="uq_campaign_versions_version"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(max_length=64)
    version: int
    checksum: str = Field(max_length=64)
    definition: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    created_at: datetime = _ts(nullable=False)


class Enrollment(SQLModel, table=True):
    __tablename__ = "enrollments"
    __table_args__ = (
        sa.UniqueConstraint("lead_id", "campaign", name="uq_enrollments_lead_campaign"),
        sa.Index(
            "uq_enrollments_one_active",
            "lead_id",
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    campaign: str = Field(max_length=64)
    campaign_version_id: int = Field(foreign_key="campaign_versions.id")
    segment: str | None = Field(default=None, max_length=64)
    status: str = Field(default=EnrollmentStatus.ACTIVE, max_length=20)
    started_at: datetime = _ts(nullable=False)
    ended_at: datetime | None = _ts()
    end_reason: str | None = Field(default=None, max_length=100)


class Touch(SQLModel, table=True):
    """One message to one lead on one channel for one campaign step: the outbox row.

    The UNIQUE constraint is the idempotency key: a step is recorded, and so sent, once.
    """

    __tablename__ = "touches"
    __table_args__ = (
        sa.UniqueConstraint(
            "lead_id", "campaign_version_id", "step", "channel", name="uq_touches_once"
        ),
        sa.Index("ix_touches_status_not_before", "status", "not_before"),
        sa.Index("ix_touches_lead_sent_at", "lead_id", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id")
    enrollment_id: int = Field(foreign_key="enrollments.id", index=True)
    campaign: str = Field(max_length=64)
    campaign_version_id: int = Field(foreign_key="campaign_versions.id")
    step: str = Field(max_length=64)
    step_day: int
    channel: str = Field(max_length=20)
    status: str = Field(default=TouchStatus.PENDING, max_length=20)
    due_at: datetime = _ts(nullable=False)
    not_before: datetime = _ts(nullable=False)
    hold_reason: str | None = Field(default=None, max_length=100)
    attempts: int = 0
    claim_token: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    provider_id: str | None = Field(default=None, max_length=200)
    provider_message_id: str | None = Field(default=None, max_length=100, index=True)
    error: str | None = None
    subject: str | None = Field(default=None, max_length=400)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class QuarantinedRecord(SQLModel, table=True):
    """A record intake refused, kept with why, never silently dropped."""

    __tablename__ = "quarantine"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=100, index=True)
    source_ref: str | None = Field(default=None, max_length=500)
    raw: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    reasons: list[str] = Field(sa_type=sa.JSON, nullable=False)
    detail: str | None = None
    status: str = Field(default=QuarantineStatus.OPEN, max_length=20, index=True)
    created_at: datetime = _ts(nullable=False)
    resolved_at: datetime | None = _ts()


class ImportedFile(SQLModel, table=True):
    """A file intake has processed, by content checksum, so a re-dropped file is skipped."""

    __tablename__ = "imported_files"

    id: int | None = Field(default=None, primary_key=True)
    checksum: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=500)
    source: str = Field(max_length=100)
    rows_read: int = 0
    leads_created: int = 0
    leads_merged: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    rows_quarantined: int = 0
    imported_at: datetime = _ts(nullable=False)


class QuarantinedFile(SQLModel, table=True):
    """A file intake could not read as CSV, kept with why: a copy of its bytes under the
    data folder (`stored_path`), releasable once the file or the configuration is fixed."""

    __tablename__ = "quarantined_files"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=100)
    name: str = Field(max_length=500)
    path: str = Field(max_length=1000)  # where it was read from
    stored_path: str = Field(max_length=1000)  # the kept copy
    checksum: str = Field(max_length=64, index=True)
    size: int = 0
    reason: str = Field(max_length=50)
    detail: str
    status: str = Field(default=QuarantineStatus.OPEN, max_length=20, index=True)
    resolution: str | None = None
    created_at: datetime = _ts(nullable=False)
    resolved_at: datetime | None = _ts()


class LeadFieldIssue(SQLModel, table=True):
    """A value a source gave for a lead that failed validation. The lead was imported for
    the channels it can be reached on; the value is kept here as given, flagged, until a
    later record fills that field (`resolved_at`)."""

    __tablename__ = "lead_field_issues"

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    field: str = Field(max_length=64)
    value: str | None = None
    reason: str = Field(max_length=50)
    detail: str | None = None
    source: str = Field(max_length=100)
    source_ref: str | None = Field(default=None, max_length=500)
    created_at: datetime = _ts(nullable=False)
    resolved_at: datetime | None = _ts(index=True)


# -- Engagement: webhook inbox, score ledger, stage changes ------------------------------


class InboxStatus(StrEnum):
    PENDING = "pending"  # stored, not yet processed by the rescore run
    PROCESSED = "processed"  # applied (scores, suppression, touches); see `result`
    IGNORED = "ignored"  # nothing to apply (unknown lead, unknown type...); see `result`
    # Failed to apply (rolled back, nothing of it kept); the error is in `result` and in
    # dead_letters, until `leadops deadletters retry` puts it back to pending.
    DEAD_LETTER = "dead_letter"


class InboxEvent(SQLModel, table=True):
    """One provider or site event, stored once when it arrives and processed later.

    `dedupe_key` is the event's identity (SendGrid sg_event_id, Twilio SID + status, or a
    content hash), so a replayed webhook is stored once and applied once.
    """

    __tablename__ = "inbox"
    __table_args__ = (sa.Index("ix_inbox_status_id", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    kind: str = Field(max_length=64)
    dedupe_key: str = Field(max_length=200, unique=True)
    payload: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    received_at: datetime = _ts(nullable=False)
    status: str = Field(default=InboxStatus.PENDING, max_length=20)
    lead_id: int | None = Field(default=None, index=True)
    result: str | None = Field(default=None, max_length=300)
    processed_at: datetime | None = _ts()


class WebhookRejection(SQLModel, table=True):
    """How many requests an endpoint refused, and why (forged, malformed, oversized...)."""

    __tablename__ = "webhook_rejections"
    __table_args__ = (
        sa.UniqueConstraint("source", "reason", name="uq_webhook_rejections_source_reason"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    reason: str = Field(max_length=64)
    count: int = 0
    first_at: datetime = _ts(nullable=False)
    last_at: datetime = _ts(nullable=False)


class ScoreKind(StrEnum):
    FIT = "fit"
    ENGAGEMENT = "engagement"
    DECAY = "decay"


class ScoreEntry(SQLModel, table=True):
    """One change to a lead's score; the score is the sum of its rows."""

    __tablename__ = "score_ledger"
    __table_args__ = (sa.Index("ix_score_ledger_lead_id_id", "lead_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id")
    kind: str = Field(max_length=20)
    rule: str = Field(max_length=64)
    points: int
    reason: str = Field(max_length=300)
    inbox_id: int | None = Field(default=None, foreign_key="inbox.id")
    event_at: datetime = _ts(nullable=False)
    created_at: datetime = _ts(nullable=False)


class StageChange(SQLModel, table=True):
    """A lifecycle stage move made by scoring (or a hand-raise), with the score behind it."""

    __tablename__ = "stage_changes"

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    from_stage: str = Field(max_length=20)
    to_stage: str = Field(max_length=20)
    score: int
    reason: str = Field(max_length=300)
    changed_at: datetime = _ts(nullable=False)


class TouchAudit(SQLModel, table=True):
    """An operator's decision on a touch (e.g. resolving an ambiguous send), with why."""

    __tablename__ = "touch_audit"

    id: int | None = Field(default=None, primary_key=True)
    touch_id: int = Field(foreign_key="touches.id", index=True)
    action: str = Field(max_length=40)
    from_status: str = Field(max_length=20)
    to_status: str = Field(max_length=20)
    reason: str
    actor: str = Field(max_length=100)
    created_at: datetime = _ts(nullable=False)


# Core table handles, for set-based statements that bypass the ORM's per-object overhead.
LEADS = cast(sa.Table, Lead.__table__)  # type: ignore[attr-defined]
CAMPAIGN_VERSIONS = cast(sa.Table, CampaignVersion.__table__)  # type: ignore[attr-defined]
ENROLLMENTS = cast(sa.Table, Enrollment.__table__)  # type: ignore[attr-defined]
TOUCHES = cast(sa.Table, Touch.__table__)  # type: ignore[attr-defined]
QUARANTINE = cast(sa.Table, QuarantinedRecord.__table__)  # type: ignore[attr-defined]
IMPORTED_FILES = cast(sa.Table, ImportedFile.__table__)  # type: ignore[attr-defined]
QUARANTINED_FILES = cast(sa.Table, QuarantinedFile.__table__)  # type: ignore[attr-defined]
LEAD_FIELD_ISSUES = cast(sa.Table, LeadFieldIssue.__table__)  # type: ignore[attr-defined]
INBOX = cast(sa.Table, InboxEvent.__table__)  # type: ignore[attr-defined]
WEBHOOK_REJECTIONS = cast(sa.Table, WebhookRejection.__table__)  # type: ignore[attr-defined]
SCORE_LEDGER = cast(sa.Table, ScoreEntry.__table__)  # type: ignore[attr-defined]
STAGE_CHANGES = cast(sa.Table, StageChange.__table__)  # type: ignore[attr-defined]


# -- Escalation: sales-ready leads handed to a rep, with an SLA ----------------------------


class EscalationStatus(StrEnum):
    OPEN = "open"  # assigned, waiting for the rep to acknowledge
    ACKNOWLEDGED = "acknowledged"
    REROUTED = "rerouted"  # not acknowledged in time; assigned to the next rep or the queue
    CLOSED_WON = "closed_won"
    CLOSED_LOST = "closed_lost"
    RECYCLED = "recycled"  # not ready: back into nurture


ACTIVE_ESCALATION_STATUSES = (
    EscalationStatus.OPEN,
    EscalationStatus.ACKNOWLEDGED,
    EscalationStatus.REROUTED,
)
AWAITING_ACK_STATUSES = (EscalationStatus.OPEN, EscalationStatus.REROUTED)


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"
    SKIPPED = "skipped"  # no longer relevant when its turn came (acknowledged, re-routed...)


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
    score: int = 0
    reasons: list[dict[str, Any]] = Field(sa_type=sa.JSON, nullable=False)
    account_domain: str | None = Field(default=None, max_length=255, index=True)
    status: str = Field(default=EscalationStatus.OPEN, max_length=20)
    rep_key: str | None = Field(default=None, max_length=64, index=True)  # None: in the queue
    queue: str | None = Field(default=None, max_length=64)
    assignment_id: int | None = None  # the current row in escalation_assignments
    reroutes: int = 0
    sla_due_at: datetime | None = _ts()
    acknowledged_at: datetime | None = _ts()
    acknowledged_by: str | None = Field(default=None, max_length=200)
    closed_at: datetime | None = _ts()
    closed_by: str | None = Field(default=None, max_length=200)
    close_note: str | None = None
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


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
    assigned_at: datetime = _ts(nullable=False)
    sla_due_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()
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
    role: str = Field(max_length=20)  # rep, manager, queue
    recipient: str = Field(max_length=200)
    channel: str = Field(max_length=20)  # email, whatsapp, slack
    address: str = Field(max_length=320)  # email, E.164 number, or slack:<env variable>
    status: str = Field(default=NotificationStatus.PENDING, max_length=20)
    attempts: int = 0
    not_before: datetime = _ts(nullable=False)
    lease_until: datetime | None = _ts()
    provider_id: str | None = Field(default=None, max_length=300)
    error: str | None = None
    created_at: datetime = _ts(nullable=False)
    sent_at: datetime | None = _ts()


ESCALATIONS = cast(sa.Table, Escalation.__table__)  # type: ignore[attr-defined]
ESCALATION_ASSIGNMENTS = cast(sa.Table, EscalationAssignment.__table__)  # type: ignore[attr-defined]
ESCALATION_NOTIFICATIONS = cast(sa.Table, EscalationNotification.__table__)  # type: ignore[attr-defined]


# -- Intake: per-source history and merges, pull cursors, web-form submissions --


class LeadSourceRecord(SQLModel, table=True):
    """One record a source delivered for a lead: per-source history, and the merge log.

    `action` is `created` (the record made the lead) or `merged` (it was merged into an
    existing lead, matched on `matched_on`); `changes` lists what the merge changed as
    {field: [old, new]}; `data` is the record as normalised.
    """

    __tablename__ = "lead_source_records"

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    source: str = Field(max_length=100, index=True)
    source_ref: str | None = Field(default=None, max_length=500)
    action: str = Field(max_length=20)
    matched_on: str | None = Field(default=None, max_length=20)
    changes: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    data: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    received_at: datetime = _ts(nullable=False)


class IntakeCursor(SQLModel, table=True):
    """Where a pulling source (HubSpot) has read up to; advanced in the batch's transaction."""

    __tablename__ = "intake_cursors"

    source: str = Field(primary_key=True, max_length=100)
    state: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    updated_at: datetime = _ts(nullable=False)


class FormSubmissionStatus(StrEnum):
    PENDING = "pending"  # confirmation email to be sent
    SENDING = "sending"  # the confirmation email is leaving
    SENT = "sent"  # confirmation sent; waiting for the click
    CONFIRMED = "confirmed"  # email consent given through the signed link
    NOT_NEEDED = "not_needed"  # the lead already had email consent, or asked for none
    QUARANTINED = "quarantined"  # the record failed validation; see the quarantine
    FAILED = "failed"  # the confirmation could not be sent (error says why)
    SKIPPED = "skipped"  # the contact policy refused it (suppressed, unsubscribed; see error)


class FormSubmission(SQLModel, table=True):
    """A web-form submission, kept as consent evidence; UNIQUE per form and submission key."""

    __tablename__ = "form_submissions"
    __table_args__ = (
        sa.UniqueConstraint("form", "submission_key", name="uq_form_submissions_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    form: str = Field(max_length=100)
    submission_key: str = Field(max_length=128)
    lead_id: int | None = Field(default=None, foreign_key="leads.id", index=True)
    quarantine_id: int | None = Field(default=None, foreign_key="quarantine.id")
    email: str | None = Field(default=None, max_length=320)
    raw: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    status: str = Field(default=FormSubmissionStatus.PENDING, max_length=20)
    provider_id: str | None = Field(default=None, max_length=200)
    error: str | None = None
    submitted_at: datetime = _ts(nullable=False)
    confirmation_sent_at: datetime | None = _ts()
    confirmed_at: datetime | None = _ts()
    confirmed_from: str | None = Field(default=None, max_length=200)


LEAD_SOURCE_RECORDS = cast(sa.Table, LeadSourceRecord.__table__)  # type: ignore[attr-defined]
INTAKE_CURSORS = cast(sa.Table, IntakeCursor.__table__)  # type: ignore[attr-defined]
FORM_SUBMISSIONS = cast(sa.Table, FormSubmission.__table__)  # type: ignore[attr-defined]
TOUCH_AUDIT = cast(sa.Table, TouchAudit.__table__)  # type: ignore[attr-defined]


# -- Scale: incremental passes over large tables -------------------------------------------


class PassMark(SQLModel, table=True):
    """How far a periodic pass over a large table has got (e.g. the rescore run's no-opens
    rule): the `now` it last ran at, the last ledger id it had seen, and the settings it
    ran with. The next run looks only at what changed since; none: a full pass."""

    __tablename__ = "pass_marks"

    name: str = Field(primary_key=True, max_length=64)
    at: datetime = _ts(nullable=False)
    last_id: int = 0
    detail: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)


PASS_MARKS = cast(sa.Table, PassMark.__table__)  # type: ignore[attr-defined]


# -- Dead letters: inputs a pipeline set aside so the rest of its batch could go on ---------


class DeadLetterItem(StrEnum):
    INBOX = "inbox"  # an inbox event the rescore run could not apply (item_id: inbox id)
    TOUCH = "touch"  # a touch the dispatcher could not decide or compose (item_id: touch id)
    ESCALATION = "escalation"  # a sales-ready lead that could not be escalated (item_id: lead)


class DeadLetterStatus(StrEnum):
    OPEN = "open"  # set aside, waiting for a fix and a retry
    RETRIED = "retried"  # put back by `leadops deadletters retry`; fails again: open again
    RESOLVED = "resolved"  # applied by a later pass on its own (an SLA re-route)


class DeadLetter(SQLModel, table=True):
    """An input that failed to apply, with its error and time; one row per item (`key`).

    The item itself is left untouched by the failed attempt (rolled back) and is not picked
    up again until a retry: an inbox event or touch is marked `dead_letter`, an escalation
    keeps what `escalate()` needs in `payload`."""

    __tablename__ = "dead_letters"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=250, unique=True)  # "inbox:12", "touch:7", "escalation:..."
    item: str = Field(max_length=20)
    item_id: int | None = Field(default=None, index=True)
    stage: str = Field(max_length=20)  # rescore, dispatch, escalation
    status: str = Field(default=DeadLetterStatus.OPEN, max_length=20, index=True)
    error: str
    payload: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    failures: int = 1
    first_failed_at: datetime = _ts(nullable=False)
    last_failed_at: datetime = _ts(nullable=False)
    retried_at: datetime | None = _ts()
    retries: int = 0


DEAD_LETTERS = cast(sa.Table, DeadLetter.__table__)  # type: ignore[attr-defined]

# Range scans of the incremental no-opens pass: emails sent, and opens, in a time window.
sa.Index("ix_touches_sent_at", TOUCHES.c.sent_at)
sa.Index("ix_score_ledger_rule_event_at", SCORE_LEDGER.c.rule, SCORE_LEDGER.c.event_at)
