"""Each lead's features as they were at its prediction date, never anything after it.

Engagement is read from the webhook inbox (events received before the date: opens,
clicks, replies, site page views and pricing-page views, hand-raises, per channel) and
the rule score from the score ledger (rows recorded before the date). Fit attributes
(seniority, company size, industry, source) and custom properties are the lead's stored
values: leadops keeps no history of them, so a property set by sales after the hand-off
belongs in `exclude_properties` (config/predictive.yaml).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import INBOX, LEADS, SCORE_LEDGER, TOUCHES
from leadops.models.events import EventType

CHUNK = 500
# Engagement is counted over the days before the date; no engagement reads as this old.
RECENCY_CAP_DAYS = 365.0
CATEGORICAL = ("seniority", "industry", "source")
ENGAGED = frozenset(
    {EventType.OPENED, EventType.READ, EventType.CLICKED, EventType.REPLIED, EventType.ACTIVITY}
)
HAND_RAISE_KINDS = frozenset({"demo_requested", "trial_started", "appointment_booked"})
CHANNELS = ("email", "whatsapp", "sms")

Raw = dict[str, Any]


@dataclass
class LeadRow:
    """One lead at one prediction date: its raw features and its rule score then."""

    lead_id: int
    as_of: datetime
    created_at: datetime
    features: Raw = field(default_factory=dict)
    rule_score: float = 0.0


def _count_event(features: Raw, event: str | None, kind: str, url: str, channel: str) -> None:
    names: dict[str, str] = {
        EventType.OPENED: "opens",
        EventType.READ: "opens",
        EventType.CLICKED: "clicks",
        EventType.REPLIED: "replies",
        EventType.HAND_RAISE: "hand_raises",
    }
    name = names.get(event or "")
    if event == EventType.ACTIVITY:
        if kind == "page_view":
            name = "pricing_page_views" if "pricing" in url.lower() else "page_views"
        elif kind in HAND_RAISE_KINDS:
            name = "hand_raises"
    if name is not None:
        features[name] += 1
    if event in ENGAGED and channel in CHANNELS:
        features[f"{channel}_engaged"] += 1


def _empty(lead: Any, as_of: datetime, exclude: frozenset[str]) -> Raw:
    raw: Raw = {name: getattr(lead, name) for name in CATEGORICAL}
    raw["company_size_log"] = (
        math.log10(lead.company_size) if lead.company_size and lead.company_size > 0 else None
    )
    for name, value in sorted((lead.properties or {}).items()):
        if name not in exclude:
            raw[f"property:{name}"] = value
    for name in ("opens", "clicks", "replies", "page_views", "pricing_page_views"):
        raw[name] = 0
    raw["hand_raises"] = 0
    for channel in CHANNELS:
        raw[f"{channel}_engaged"] = 0
    raw["days_since_engaged"] = RECENCY_CAP_DAYS
    raw["lead_age_days"] = max(0.0, (as_of - lead.created_at).total_seconds() / 86400)
    return raw


def _url(payload: Any) -> str:
    props = payload.get("properties") if isinstance(payload, dict) else None
    url = props.get("url") if isinstance(props, dict) else None
    return url if isinstance(url, str) else ""


def _engagement(connection: Connection, rows: Mapping[int, LeadRow]) -> None:
    ids = list(rows)
    latest = max(row.as_of for row in rows.values())
    query = (
        sa.select(
            INBOX.c.lead_id,
            INBOX.c.event,
            INBOX.c.kind,
            INBOX.c.payload,
            INBOX.c.received_at,
            TOUCHES.c.channel,
        )
        .select_from(INBOX.outerjoin(TOUCHES, TOUCHES.c.id == INBOX.c.touch_id))
        .where(INBOX.c.lead_id.in_(ids), INBOX.c.received_at < latest)
    )
    for lead_id, event, kind, payload, received_at, channel in connection.execute(query):
        row = rows[lead_id]
        if received_at >= row.as_of:
            continue  # after the prediction date: never a feature
        url = _url(payload) if kind == "page_view" else ""
        _count_event(row.features, event, kind, url, channel or "")
        if event in ENGAGED or event == EventType.HAND_RAISE:
            days = (row.as_of - received_at).total_seconds() / 86400
            row.features["days_since_engaged"] = min(row.features["days_since_engaged"], days)


def _rule_scores(connection: Connection, rows: Mapping[int, LeadRow]) -> None:
    latest = max(row.as_of for row in rows.values())
    query = sa.select(
        SCORE_LEDGER.c.lead_id, SCORE_LEDGER.c.points, SCORE_LEDGER.c.created_at
    ).where(SCORE_LEDGER.c.lead_id.in_(list(rows)), SCORE_LEDGER.c.created_at < latest)
    for lead_id, points, created_at in connection.execute(query):
        row = rows[lead_id]
        if created_at < row.as_of:
            row.rule_score += points


def lead_rows(
    connection: Connection,
    as_of: Mapping[int, datetime],
    *,
    exclude_properties: Iterable[str] = (),
) -> list[LeadRow]:
    """The features of each lead in `as_of` at its date, in lead id order (leads that no
    longer exist are left out)."""
    exclude = frozenset(exclude_properties)
    found: list[LeadRow] = []
    ids = sorted(as_of)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        leads = connection.execute(
            sa.select(
                LEADS.c.id,
                LEADS.c.created_at,
                LEADS.c.company_size,
                LEADS.c.properties,
                *(LEADS.c[name] for name in CATEGORICAL),
            ).where(LEADS.c.id.in_(chunk))
        ).all()
        rows = {
            lead.id: LeadRow(
                lead.id, as_of[lead.id], lead.created_at, _empty(lead, as_of[lead.id], exclude)
            )
            for lead in leads
        }
        if rows:
            _engagement(connection, rows)
            _rule_scores(connection, rows)
            found.extend(rows[i] for i in sorted(rows))
    return found
