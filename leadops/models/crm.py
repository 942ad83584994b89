"""CRM tables: deals as the CRM knows them (the revenue truth), linked to leads and to the
escalation a deal was opened for."""

from __future__ import annotations

from datetime import datetime
from typing import cast

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
    created_at: datetime = ts(nullable=False)
    updated_at: datetime = ts(nullable=False)


# Core table handle, for set-based statements that bypass the ORM's per-object overhead.
CRM_DEALS = cast(sa.Table, CrmDeal.__table__)  # type: ignore[attr-defined]
