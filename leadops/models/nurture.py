"""Nurture tables: campaign versions, enrollments, touches (the outbox) and the audit of
operators' decisions on touches."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from leadops.models.types import ts
from leadops.models.vocab import EnrollmentStatus, TouchStatus


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
    created_at: datetime = ts(nullable=False)


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
    started_at: datetime = ts(nullable=False)
    ended_at: datetime | None = ts()
    end_reason: str | None = Field(default=None, max_length=100)
    # "holdout" when the lead is in the campaign's holdout (enrolled, sent nothing).
    arm: str | None = Field(default=None, max_length=32)


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
    due_at: datetime = ts(nullable=False)
    not_before: datetime = ts(nullable=False)
    hold_reason: str | None = Field(default=None, max_length=100)
    attempts: int = 0
    claim_token: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = ts()
    sent_at: datetime | None = ts()
    provider_id: str | None = Field(default=None, max_length=200)
    provider_message_id: str | None = Field(default=None, max_length=100)
    error: str | None = None
    subject: str | None = Field(default=None, max_length=400)
    # The A/B variant of the step this touch was composed from (None: the step itself).
    variant: str | None = Field(default=None, max_length=32)
    created_at: datetime = ts(nullable=False)
    updated_at: datetime = ts(nullable=False)


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
    created_at: datetime = ts(nullable=False)


class CampaignPause(SQLModel, table=True):
    """A campaign paused from `paused_at` until `resumed_at` (open while None), with who
    paused and resumed it and why."""

    __tablename__ = "campaign_pauses"
    __table_args__ = (
        sa.Index(
            "uq_campaign_pauses_one_open",
            "campaign",
            unique=True,
            sqlite_where=sa.text("resumed_at IS NULL"),
            postgresql_where=sa.text("resumed_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(max_length=64, index=True)
    paused_at: datetime = ts(nullable=False)
    paused_by: str = Field(max_length=100)
    pause_reason: str = ""
    resumed_at: datetime | None = ts()
    resumed_by: str | None = Field(default=None, max_length=100)
    resume_reason: str | None = None


# Core table handles, for set-based statements that bypass the ORM's per-object overhead.
CAMPAIGN_VERSIONS = cast(sa.Table, CampaignVersion.__table__)  # type: ignore[attr-defined]
ENROLLMENTS = cast(sa.Table, Enrollment.__table__)  # type: ignore[attr-defined]
TOUCHES = cast(sa.Table, Touch.__table__)  # type: ignore[attr-defined]
TOUCH_AUDIT = cast(sa.Table, TouchAudit.__table__)  # type: ignore[attr-defined]
CAMPAIGN_PAUSES = cast(sa.Table, CampaignPause.__table__)  # type: ignore[attr-defined]

# Partial (only touches sent): a pending touch, as planned, writes no entry into either.
_SENT = sa.text("sent_at IS NOT NULL")
_WITH_ID = sa.text("provider_message_id IS NOT NULL")
# Range scans of the incremental no-opens pass: emails sent in a time window.
sa.Index("ix_touches_sent_at", TOUCHES.c.sent_at, sqlite_where=_SENT, postgresql_where=_SENT)
# Inbox events resolved to their touch by the provider's message id.
sa.Index(
    "ix_touches_provider_message_id",
    TOUCHES.c.provider_message_id,
    sqlite_where=_WITH_ID,
    postgresql_where=_WITH_ID,
)
