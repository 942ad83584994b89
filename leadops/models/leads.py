"""The leads table: who a lead is, how to reach them, their stage, score and consent."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from leadops.models.types import ts
from leadops.models.vocab import LifecycleStage


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
    # Qualification beside the stage: grade (fit A-D x engagement 1-3, e.g. "B2"), band
    # (cold / warm / hot), and a status that is not a stage (iql, pql, sal, disqualified).
    grade: str | None = Field(default=None, max_length=4)
    band: str | None = Field(default=None, max_length=10)
    lead_status: str | None = Field(default=None, max_length=20)
    status_reason: str | None = Field(default=None, max_length=50)
    status_at: datetime | None = ts()
    # Custom properties declared in config (BANT and others): name -> value.
    properties: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)

    email_consent: bool = False
    email_consent_at: datetime | None = ts()
    whatsapp_consent: bool = False
    whatsapp_consent_at: datetime | None = ts()
    email_suppressed_at: datetime | None = ts()
    email_suppression_reason: str | None = Field(default=None, max_length=100)
    whatsapp_suppressed_at: datetime | None = ts()
    whatsapp_suppression_reason: str | None = Field(default=None, max_length=100)
    # A server default, not a client one: inserts that name no SMS column (older code,
    # bulk loads) store False.
    sms_consent: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    sms_consent_at: datetime | None = ts()
    sms_suppressed_at: datetime | None = ts()
    sms_suppression_reason: str | None = Field(default=None, max_length=100)
    unsubscribed_at: datetime | None = ts()

    last_engaged_at: datetime | None = ts()
    last_inbound_at: datetime | None = ts()
    created_at: datetime = ts(nullable=False)
    updated_at: datetime = ts(nullable=False)


# Core table handle, for set-based statements that bypass the ORM's per-object overhead.
LEADS = cast(sa.Table, Lead.__table__)  # type: ignore[attr-defined]
