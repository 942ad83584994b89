"""Which message (touch) each processed inbox event is about, in set-based SQL.

Engagement rates per campaign step count unique touches per kind of event, so each event
has to be tied to the touch it answers:

- SendGrid events carry `touch_id` in their custom_args, which SendGrid returns at the top
  level of every event (the inbox keeps the event as its payload).
- Twilio status callbacks carry `touch_id` (the callback URL's query parameter), or name
  the message by its SID, which is the touch's `provider_message_id`.
- Inbound WhatsApp messages (replies, STOP) and the unsubscribe link name only the lead:
  they count for the lead's last message sent before them (WhatsApp for an inbound
  WhatsApp message; any channel for the link, which every message carries).

Only events the rescore run processed count, and only with the lead it resolved for them
(`inbox.lead_id`); a touch named in a payload must belong to that lead. The payload is
JSON, which SQLite and PostgreSQL read differently: the helpers below write each
expression for the connection's dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import INBOX, TOUCHES, InboxStatus
from leadops.providers import inbound

StepKey = tuple[str, str, str]  # campaign, step, channel


def payload_text(key: str) -> Any:
    """The payload's top-level `key` as text (SQL NULL when absent or JSON null)."""
    return INBOX.c.payload[key].as_string()


def payload_int(key: str, dialect: str) -> Any:
    """The payload's `key` as an integer; NULL when it is not a plain number."""
    text = payload_text(key)
    if dialect == "postgresql":
        digits = text.op("~")(r"^\s*[0-9]{1,18}\s*$")
        return sa.case((digits, sa.cast(sa.func.trim(text), sa.BigInteger)), else_=None)
    # SQLite's CAST would read "12abc" as 12: accept digits only, as PostgreSQL does.
    trimmed = sa.func.trim(sa.cast(text, sa.String))
    digits = sa.and_(trimmed.op("GLOB")("[0-9]*"), sa.not_(trimmed.op("GLOB")("*[^0-9]*")))
    return sa.case((digits, sa.cast(trimmed, sa.Integer)), else_=None)


def payload_is_true(key: str, dialect: str) -> Any:
    """True when the payload's `key` is the JSON boolean true (not "true", not 1); false,
    never NULL, when the key is absent, so the condition can be negated."""
    kind: Any
    if dialect == "postgresql":
        kind = sa.cast(INBOX.c.payload[key], sa.Text)
    else:
        kind = sa.func.json_type(INBOX.c.payload, f'$."{key}"')
    return sa.func.coalesce(kind, "") == "true"


def _processed() -> Any:
    return sa.and_(INBOX.c.status == InboxStatus.PROCESSED, INBOX.c.lead_id.is_not(None))


def named_touch(where: Any, dialect: str) -> sa.Select[Any]:
    """Touch ids of processed events matching `where` that name their touch (SendGrid
    custom_args `touch_id`; Twilio `touch_id`, else the MessageSid as provider id)."""
    i = INBOX.c
    by_id = TOUCHES.alias("by_id")
    by_sid = TOUCHES.alias("by_sid")
    joined = INBOX.outerjoin(
        by_id,
        sa.and_(by_id.c.id == payload_int("touch_id", dialect), by_id.c.lead_id == i.lead_id),
    ).outerjoin(
        by_sid,
        sa.and_(
            by_id.c.id.is_(None),
            i.source == inbound.TWILIO_STATUS,
            by_sid.c.provider_message_id == payload_text("MessageSid"),
            by_sid.c.lead_id == i.lead_id,
        ),
    )
    return (
        sa.select(sa.func.coalesce(by_id.c.id, by_sid.c.id).label("touch_id"))
        .select_from(joined)
        .where(_processed(), where)
    )


def last_sent_touch(where: Any, channel: str | None) -> sa.Select[Any]:
    """Touch ids for processed events matching `where` that name only their lead: the
    lead's last message (on `channel`, or any) sent at or before the event arrived."""
    prior = TOUCHES.alias("prior")
    conditions = [
        prior.c.lead_id == INBOX.c.lead_id,
        prior.c.sent_at.is_not(None),
        prior.c.sent_at <= INBOX.c.received_at,
    ]
    if channel is not None:
        conditions.append(prior.c.channel == channel)
    last = (
        sa.select(prior.c.id)
        .where(*conditions)
        .order_by(prior.c.sent_at.desc(), prior.c.id.desc())
        .limit(1)
        .correlate(INBOX)
        .scalar_subquery()
    )
    return sa.select(last.label("touch_id")).select_from(INBOX).where(_processed(), where)


@dataclass(frozen=True)
class EventRule:
    """One kind of event that counts for a metric, and how it finds its touch."""

    where: Callable[[str], Any]  # the dialect's condition on the inbox row
    via: str = "named"  # "named": the payload names the touch; "last_sent": see below
    channel: str | None = None  # for "last_sent": the channel of the prior message


def count_unique_touches(conn: Connection, rules: Sequence[EventRule]) -> dict[StepKey, int]:
    """Unique touches that had at least one matching event, per campaign, step, channel.

    An email opened five times counts once; a touch reached by two rules counts once.
    """
    dialect = conn.dialect.name
    selects = [
        named_touch(rule.where(dialect), dialect)
        if rule.via == "named"
        else last_sent_touch(rule.where(dialect), rule.channel)
        for rule in rules
    ]
    events = sa.union_all(*selects).subquery("events")
    t = TOUCHES.c
    rows = conn.execute(
        sa.select(t.campaign, t.step, t.channel, sa.func.count(sa.distinct(t.id)))
        .select_from(events.join(TOUCHES, t.id == events.c.touch_id))
        .group_by(t.campaign, t.step, t.channel)
    ).all()
    return {(campaign, step, channel): int(n) for campaign, step, channel, n in rows}
