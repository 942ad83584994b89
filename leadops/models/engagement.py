"""Engagement tables: the webhook inbox, webhook rejections, the score ledger and the
stage changes scoring made."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from leadops.models.types import ts
from leadops.models.vocab import InboxStatus


class InboxEvent(SQLModel, table=True):
    """One provider or site event, stored once when it arrives and processed later.

    `dedupe_key` is the event's identity (SendGrid sg_event_id, Twilio SID + status, or a
    content hash), so a replayed webhook is stored once and applied once. When the rescore
    run applies it, it records what the event means (`event`, leadops.models.events), the
    lead and the message (`touch_id`) it is about, and what it did (`result`, text for
    people: nothing reads it back).
    """

    __tablename__ = "inbox"
    __table_args__ = (sa.Index("ix_inbox_status_id", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    kind: str = Field(max_length=64)
    dedupe_key: str = Field(max_length=200, unique=True)
    payload: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    received_at: datetime = ts(nullable=False)
    status: str = Field(default=InboxStatus.PENDING, max_length=20)
    lead_id: int | None = Field(default=None, index=True)
    event: str | None = Field(default=None, max_length=20)
    # The message the event is about: the touch the provider names, or for an inbound
    # WhatsApp message or the unsubscribe link the lead's last message sent before it.
    touch_id: int | None = Field(default=None)
    result: str | None = Field(default=None, max_length=300)
    processed_at: datetime | None = ts()


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
    first_at: datetime = ts(nullable=False)
    last_at: datetime = ts(nullable=False)


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
    event_at: datetime = ts(nullable=False)
    created_at: datetime = ts(nullable=False)


class StageChange(SQLModel, table=True):
    """A lifecycle stage move made by scoring (or a hand-raise), with the score behind it."""

    __tablename__ = "stage_changes"

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    from_stage: str = Field(max_length=20)
    to_stage: str = Field(max_length=20)
    score: int
    reason: str = Field(max_length=300)
    changed_at: datetime = ts(nullable=False)


# Core table handles, for set-based statements that bypass the ORM's per-object overhead.
INBOX = cast(sa.Table, InboxEvent.__table__)  # type: ignore[attr-defined]
WEBHOOK_REJECTIONS = cast(sa.Table, WebhookRejection.__table__)  # type: ignore[attr-defined]
SCORE_LEDGER = cast(sa.Table, ScoreEntry.__table__)  # type: ignore[attr-defined]
STAGE_CHANGES = cast(sa.Table, StageChange.__table__)  # type: ignore[attr-defined]

# Range scans of the incremental no-opens pass: opens in a time window.
sa.Index("ix_score_ledger_rule_event_at", SCORE_LEDGER.c.rule, SCORE_LEDGER.c.event_at)
