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
    rows_quarantined: int = 0
    imported_at: datetime = _ts(nullable=False)


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
TOUCH_AUDIT = cast(sa.Table, TouchAudit.__table__)  # type: ignore[attr-defined]
