"""KPIs per campaign step and channel: what was attempted and how it ended, the
engagement rates of the messages sent (`ENGAGEMENT_METRICS`: unique touches with an event
of the stored vocabulary, leadops.models.events, in the processed webhook inbox; see
leadops.reporting.attribution), and messages sent per day."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import INBOX, TOUCHES, TouchStatus
from leadops.models.events import (
    BOUNCED_EVENTS,
    DELIVERED_EVENTS,
    OPENED_EVENTS,
    UNSUBSCRIBED_EVENTS,
    EventType,
)
from leadops.providers import inbound
from leadops.reporting.attribution import StepKey, count_unique_touches
from leadops.reporting.kpi_figures import KpiReport, StepRates
from leadops.reporting.kpi_sql import SENT, utc_day

ATTEMPTED = [*SENT, TouchStatus.FAILED, TouchStatus.AMBIGUOUS]

# Counts one engagement kind per campaign step and channel (e.g. opens per step).
EngagementCounter = Callable[[Connection], dict[StepKey, int]]


def _counter(*events: EventType) -> EngagementCounter:
    return lambda conn: count_unique_touches(conn, events)


@dataclass(frozen=True)
class EngagementMetric:
    """Unique touches per step with at least one such event, and the channels where the
    providers report it (elsewhere the rate is shown as "-", not as 0%)."""

    count: EngagementCounter
    channels: frozenset[str]
    meaning: str


EMAIL_AND_WHATSAPP = frozenset({"email", "whatsapp"})
EVERY_CHANNEL = frozenset({"email", "whatsapp", "sms"})
# The inbox sources that report engagement for each channel. A channel none of whose
# sources has sent an event yet (the file outbox, or a webhook not set up) has its rates
# shown as "-" and listed as missing: no events is not 0% delivered.
CHANNEL_SOURCES = {
    "email": (inbound.SENDGRID,),
    "whatsapp": (inbound.TWILIO_STATUS, inbound.TWILIO_INBOUND),
    "sms": (inbound.TWILIO_STATUS, inbound.TWILIO_INBOUND),
}

# The engagement rates per campaign step, each of the messages sent at that step.
ENGAGEMENT_METRICS: dict[str, EngagementMetric] = {
    "delivered": EngagementMetric(
        _counter(*DELIVERED_EVENTS),
        EVERY_CHANNEL,
        "SendGrid delivered; Twilio delivered or read (WhatsApp), delivered (SMS)",
    ),
    "opened": EngagementMetric(
        _counter(*OPENED_EVENTS),
        EMAIL_AND_WHATSAPP,
        "SendGrid open (privacy-proxy opens excluded); WhatsApp read",
    ),
    "clicked": EngagementMetric(
        _counter(EventType.CLICKED), frozenset({"email"}), "SendGrid click"
    ),
    "replied": EngagementMetric(
        _counter(EventType.REPLIED),
        frozenset({"whatsapp", "sms"}),
        "an inbound WhatsApp or SMS reply, counted for the last message before it on its channel",
    ),
    "unsubscribed": EngagementMetric(
        _counter(*UNSUBSCRIBED_EVENTS),
        EVERY_CHANNEL,
        "SendGrid unsubscribe, group unsubscribe or spam report; the unsubscribe link "
        "(for the last message before it); a WhatsApp or SMS opt-out keyword (STOP)",
    ),
    "bounced": EngagementMetric(
        _counter(*BOUNCED_EVENTS),
        EVERY_CHANNEL,
        "SendGrid bounce (hard or blocked) or dropped; Twilio failed or undelivered",
    ),
}


def step_rates(conn: Connection, report: KpiReport) -> None:
    t = TOUCHES.c

    def count_if(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    rows = conn.execute(
        sa.select(
            t.campaign,
            t.step,
            t.step_day,
            t.channel,
            count_if(t.status.in_(ATTEMPTED)),
            count_if(t.status.in_(SENT)),
            count_if(t.status == TouchStatus.FAILED),
            count_if(t.status == TouchStatus.AMBIGUOUS),
            count_if(sa.and_(t.sent_at.is_not(None), t.status != TouchStatus.SKIPPED)),
        )
        .group_by(t.campaign, t.step, t.step_day, t.channel)
        .order_by(t.campaign, t.step_day, t.channel)
    ).all()
    reporting = set(
        conn.execute(
            sa.select(INBOX.c.source).where(INBOX.c.status == "processed").distinct()
        ).scalars()
    )
    silent = {
        channel
        for channel in {row.channel for row in rows}
        if not reporting & set(CHANNEL_SOURCES.get(channel, ()))
    }
    for channel in sorted(silent):
        sources = " or ".join(CHANNEL_SOURCES.get(channel, ())) or "provider"
        report.missing.append(
            (
                f"{channel} engagement rates",
                f"no {sources} events received yet: the file outbox reports none; set up "
                "the provider's webhook (`leadops webhooks stats` shows what arrives)",
            )
        )
    counted = {name: metric.count(conn) for name, metric in ENGAGEMENT_METRICS.items()}
    for campaign, step, day, channel, attempted, sent, failed, ambiguous, accepted in rows:
        key = (campaign, step, channel)
        engagement: dict[str, int | None] = {
            name: (
                counted[name].get(key, 0)
                if channel in metric.channels and channel not in silent
                else None
            )
            for name, metric in ENGAGEMENT_METRICS.items()
        }
        report.steps.append(
            StepRates(
                campaign,
                step,
                int(day),
                channel,
                int(attempted or 0),
                int(sent or 0),
                int(failed or 0),
                int(ambiguous or 0),
                int(accepted or 0),
                engagement,
            )
        )


def sends_per_day(conn: Connection, dialect: str, now: datetime, report: KpiReport) -> None:
    t = TOUCHES.c
    day = utc_day(t.sent_at, dialect).label("day")
    rows = conn.execute(
        sa.select(day, sa.func.count())
        .where(t.status.in_(SENT), t.sent_at >= now - timedelta(days=60), t.sent_at <= now)
        .group_by(day)
        .order_by(day)
    ).all()
    report.sends_per_day = [
        (value if isinstance(value, date) else date.fromisoformat(str(value)), int(n))
        for value, n in rows
    ]
