"""Unique messages (touches) per campaign step with a given kind of event, in set-based SQL.

Each inbox event is tied to the message it is about when the rescore run applies it
(`inbox.touch_id`, leadops.engagement.resolve.touch_of): the touch a SendGrid event
names in its custom_args, or a Twilio callback by `touch_id` or message SID; for an
inbound WhatsApp message (a reply, STOP) or the unsubscribe link, which name only the
lead, the lead's last message sent before it (WhatsApp for an inbound WhatsApp message).
What the event means is `inbox.event` (leadops.models.events). Only events the rescore run
processed count.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import INBOX, TOUCHES, InboxStatus
from leadops.models.events import EventType

StepKey = tuple[str, str, str]  # campaign, step, channel


def count_unique_touches(conn: Connection, events: Collection[EventType]) -> dict[StepKey, int]:
    """Unique touches that had at least one of `events`, per campaign, step and channel.

    An email opened five times counts once; a touch with two such events counts once.
    """
    i, t = INBOX.c, TOUCHES.c
    rows = conn.execute(
        sa.select(t.campaign, t.step, t.channel, sa.func.count(sa.distinct(t.id)))
        .select_from(INBOX.join(TOUCHES, t.id == i.touch_id))
        .where(
            i.status == InboxStatus.PROCESSED,
            i.lead_id.is_not(None),
            i.event.in_([str(event) for event in events]),
        )
        .group_by(t.campaign, t.step, t.channel)
    ).all()
    return {(campaign, step, channel): int(n) for campaign, step, channel, n in rows}
