"""CRM tables: deals as the CRM knows them (the revenue truth), linked to leads and to the
escalation a deal was opened for."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from leadops.models.types import ts
from leadops.models.vocab import DealStatus


class CrmDeal(SQLModel, table=True):
    """One deal in the CRM. Created by the write-back on escalation (then `leadops_key`
    is set and unique, so a retry finds it instead of creating another), or read by intake
    from the CRM (then `crm_id` identifies it). `status` is what the stage means: open, won
    or lost; `amount_cents` is in the currency's minor unit."""

    __tablename__ = "crm_deals"
    __table_args__ = (
        sa.UniqueConstraint("crm", "crm_id", name="uq_crm_deals_crm_id"),
        sa.UniqueConstraint("leadops_key", name="uq_crm_deals_leadops_key"),
        sa.Index("ix_crm_deals_status_closed", "status", "closed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    crm: str = Field(default="hubspot", max_length=20)
    crm_id: str | None = Field(default=None, max_length=64)
    leadops_key: str | None = Field(default=None, max_length=64)
    lead_id: int | None = Field(default=None, foreign_key="leads.id", index=True)
    escalation_id: int | None = Field(default=None, foreign_key="escalations.id", index=True)
    name: str | None = Field(default=None, max_length=300)
    pipeline: str | None = Field(default=None, max_length=64)
    stage: str | None = Field(default=None, max_length=64)  # the CRM's own stage id
    status: str = Field(default=DealStatus.OPEN, max_length=10)
    amount_cents: int | None = Field(default=None, sa_type=sa.BigInteger)
    currency: str | None = Field(default=None, max_length=3)
    owner_id: str | None = Field(default=None, max_length=64)  # the CRM owner id
    rep_key: str | None = Field(default=None, max_length=64)  # the rep it maps to, if any
    opened_at: datetime | None = ts()  # the CRM's create date
    closed_at: datetime | None = ts()  # the CRM's close date, for won and lost
    crm_modified_at: datetime | None = ts()
    crm_task_id: str | None = Field(default=None, max_length=64)  # the rep's task, once made
    created_at: datetime = ts(nullable=False)
    updated_at: datetime = ts(nullable=False)


class CrmContact(SQLModel, table=True):
    """A CRM contact a lead is written to (the write-back outbox) and read from.

    `written` holds the leadops_* values HubSpot last confirmed; `pending` the values
    queued because they differ from it (None: nothing to send). A failed send keeps
    `pending` with `attempts`, `not_before` and `last_error`; `status` is idle (nothing
    queued), pending, or failed (HubSpot refused the contact: not retried until its
    values change).
    `read_digest` is the digest of the mapped properties intake last read, so a contact
    whose only change is our own write is counted unchanged instead of re-imported."""

    __tablename__ = "crm_contacts"
    __table_args__ = (
        sa.UniqueConstraint("crm", "crm_id", name="uq_crm_contacts_crm_id"),
        sa.Index("ix_crm_contacts_status_not_before", "status", "not_before"),
    )

    id: int | None = Field(default=None, primary_key=True)
    crm: str = Field(default="hubspot", max_length=20)
    crm_id: str = Field(max_length=64)
    lead_id: int | None = Field(default=None, foreign_key="leads.id", index=True)
    status: str = Field(default="idle", max_length=10)
    written: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    written_at: datetime | None = ts()
    pending: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    queued_at: datetime | None = ts()
    attempts: int = 0
    not_before: datetime | None = ts()
    last_error: str | None = None
    read_digest: str | None = Field(default=None, max_length=64)
    read_at: datetime | None = ts()


class CrmOwner(SQLModel, table=True):
    """A rep matched to a CRM owner by email (`leadops crm setup`)."""

    __tablename__ = "crm_owners"

    rep_key: str = Field(primary_key=True, max_length=64)
    crm: str = Field(default="hubspot", max_length=20)
    owner_id: str = Field(max_length=64)
    email: str = Field(max_length=320)
    matched_at: datetime = ts(nullable=False)


# Core table handles, for set-based statements that bypass the ORM's per-object overhead.
CRM_DEALS = cast(sa.Table, CrmDeal.__table__)  # type: ignore[attr-defined]
CRM_CONTACTS = cast(sa.Table, CrmContact.__table__)  # type: ignore[attr-defined]
CRM_OWNERS = cast(sa.Table, CrmOwner.__table__)  # type: ignore[attr-defined]
