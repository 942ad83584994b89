"""Touches as `leadops outbox list` shows them, with their lead's address."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from leadops.models import Lead, Touch
from leadops.views.paging import paged


def touch_rows(
    engine: Engine,
    *,
    status: str | None = None,
    channel: str | None = None,
    campaign: str | None = None,
    lead: int | None = None,
    limit: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Touches by id with the lead's email and phone, filtered; at most `limit` (0: all);
    with how many match in all."""
    query = (
        select(Touch, col(Lead.email), col(Lead.phone))
        .join(Lead, Lead.id == Touch.lead_id)  # type: ignore[arg-type]
        .order_by(Touch.id)  # type: ignore[arg-type]
    )
    for column, value in (
        (Touch.status, status),
        (Touch.channel, channel),
        (Touch.campaign, campaign),
        (Touch.lead_id, lead),
    ):
        if value is not None:
            query = query.where(column == value)
    with Session(engine) as session:
        found, total = paged(session, query, limit)
        rows = [
            {**touch.model_dump(), "email": email, "phone": phone} for touch, email, phone in found
        ]
    return rows, total
