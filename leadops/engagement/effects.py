"""What each inbox event does to its lead: score points (capped), record activity,
suppress a channel, stop the sequence, move the touch's status. `Batch` applies them
within one batch's transaction, keeping the caps' history in memory."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.core.bulk import among
from leadops.core.clock import parse_instant
from leadops.delivery.suppression import leave_nurture, opt_in, suppress
from leadops.engagement.report import RescoreReport
from leadops.engagement.resolve import (
    Lookup,
    event_time,
    from_the_lead,
    no_lead,
    payload_int,
    resolve,
    sender_of,
    touch_of,
    translate,
)
from leadops.engagement.scoring import ScoringConfig, capped, channels_of, is_pricing_url
from leadops.models import SCORE_LEDGER, TOUCHES, InboxStatus, ScoreKind, TouchStatus
from leadops.models.events import (
    BOUNCED_EVENTS,
    DELIVERED_EVENTS,
    SITE_EVENTS,
    UNSUBSCRIBED_EVENTS,
    EventType,
)
from leadops.models.touch_states import move_touches
from leadops.providers import inbound
from leadops.providers.twilio.events import SMS_UNSUBSCRIBED_CODE, inbound_channel, inbound_text

Touch = dict[str, Any] | None
# The scoring.yaml `suppression:` entry each event applies (its scope: which channels).
SUPPRESSES = {
    EventType.BOUNCED: "bounce",
    EventType.DROPPED: "dropped",
    EventType.INVALID_NUMBER: "invalid_number",
    EventType.SPAM: "spamreport",
    EventType.UNSUBSCRIBED: "unsubscribe",
    EventType.GROUP_UNSUBSCRIBED: "group_unsubscribe",
    EventType.OPTED_OUT: "whatsapp_opt_out",
}
# Events about a message we sent (its touch's status follows them).
DELIVERY_EVENTS = frozenset({EventType.SENT}) | DELIVERED_EVENTS | BOUNCED_EVENTS
CONSENT_EVENTS = UNSUBSCRIBED_EVENTS | {EventType.RESUBSCRIBED}
# The channel an event came by, for an opt-in (a Twilio inbound message: `inbound_channel`).
CHANNEL_OF = {
    inbound.SENDGRID: "email",
    inbound.TWILIO_STATUS: "whatsapp",
    inbound.TWILIO_INBOUND: "whatsapp",
}
# Suppressions that are the person saying stop (also recorded as unsubscribed_at).
OPT_OUT_EVENTS = frozenset(
    {"unsubscribe", "spamreport", "whatsapp_opt_out", "email_opt_out", "sms_opt_out"}
)


class CapHistory:
    """The capped rules' ledger rows (event time, points) of the leads one inbox pass has
    seen, read once per lead and brought up to date at each batch with the rows written
    since (by this pass's earlier batches or anyone else), so no batch re-reads what an
    earlier one loaded. It holds every such row with `event_at > since` and `id <= last_id`
    for the leads in `leads`; the database stays the only record (a batch's own rows come
    back from it once committed, so a rolled-back batch leaves nothing behind)."""

    def __init__(self, config: ScoringConfig) -> None:
        self.rules = [name for name, rule in config.engagement.items() if rule.caps]
        self.longest = max(
            (cap.per_days for name in self.rules for cap in config.engagement[name].caps),
            default=0,
        )
        self.rows: dict[tuple[int, str], list[tuple[datetime, int]]] = defaultdict(list)
        self.leads: set[int] = set()
        self.since: datetime | None = None
        self.last_id = 0

    def refresh(self, connection: Connection, lead_ids: set[int], earliest: datetime) -> None:
        """Hold the rows a batch of `lead_ids`' events from `earliest` on can be capped by."""
        if not self.rules or not lead_ids:
            return
        s = SCORE_LEDGER.c
        top = connection.execute(sa.select(sa.func.max(s.id))).scalar_one() or 0
        since = earliest - timedelta(days=self.longest)
        capped_rows = sa.select(s.lead_id, s.rule, s.event_at, s.points).where(
            s.rule.in_(self.rules), s.id <= top
        )
        held, new = self.leads, lead_ids - self.leads
        dialect = connection.dialect.name
        queries = []
        if held and self.since is not None and since < self.since:
            # an earlier event than any before: the held leads' older rows too
            queries.append(
                capped_rows.where(
                    among(dialect, s.lead_id, held),
                    s.id <= self.last_id,
                    s.event_at > since,
                    s.event_at <= self.since,
                )
            )
        self.since = since if self.since is None else min(since, self.since)
        if new:
            queries.append(
                capped_rows.where(among(dialect, s.lead_id, new), s.event_at > self.since)
            )
        for query in queries:
            for lead_id, rule, event_at, points in connection.execute(query).all():
                self.rows[(lead_id, rule)].append((event_at, points))
        if held and top > self.last_id:
            # rows written since the last batch, of the leads already held
            for lead_id, rule, event_at, points in connection.execute(
                capped_rows.where(s.id > self.last_id, s.event_at > self.since)
            ).all():
                if lead_id in held:
                    self.rows[(lead_id, rule)].append((event_at, points))
        self.leads |= new
        self.last_id = top


class Batch:
    """Applies inbox events within one transaction; the caps' history in memory (the
    pass's `CapHistory`, plus this batch's own awards)."""

    def __init__(
        self,
        connection: Connection,
        config: ScoringConfig,
        now: datetime,
        report: RescoreReport,
        caps: CapHistory,
    ) -> None:
        self.connection = connection
        self.config = config
        self.now = now
        self.report = report
        self.caps = caps
        # this batch's view of the caps' history: copied from `caps` on first use
        self.history: dict[tuple[int, str], list[tuple[datetime, int]]] = {}
        self.ledger: list[dict[str, Any]] = []
        self.engaged: dict[int, datetime] = {}
        self.inbound: dict[int, datetime] = {}
        self.touched: set[int] = set()
        self.hand_raised: dict[tuple[int, str], datetime] = {}

    def score(self, lead_id: int, rule: str, at: datetime, inbox_id: int, reason: str) -> str:
        """Add the engagement rule's (capped) points; returns what happened, for `result`."""
        self.touched.add(lead_id)
        definition = self.config.engagement.get(rule)
        if definition is None:
            return f"{rule}: not scored"
        history = self.history.get((lead_id, rule))
        if history is None:
            history = self.history[(lead_id, rule)] = list(self.caps.rows.get((lead_id, rule), ()))
        award = capped(definition, history, at)
        history.append((at, award.points))
        why = f"{reason} ({award.note})" if award.note else reason
        self.ledger.append(
            {
                "lead_id": lead_id,
                "kind": ScoreKind.ENGAGEMENT,
                "rule": rule,
                "points": award.points,
                "reason": why[:300],
                "inbox_id": inbox_id,
                "event_at": at,
                "created_at": self.now,
            }
        )
        if rule in self.config.hand_raise:
            self.hand_raised.setdefault((lead_id, rule), at)
        return f"{rule} {award.points:+d}" + (f" ({award.note})" if award.note else "")

    def engage(self, lead_id: int, at: datetime) -> None:
        if lead_id not in self.engaged or self.engaged[lead_id] < at:
            self.engaged[lead_id] = at

    def suppress(self, lead_id: int, event: str, at: datetime, *, stop: bool = False) -> str:
        scope = self.config.suppression.get(event)
        if scope is None:
            return f"{event}: no suppression configured"
        channels = channels_of(scope)
        opted_out = scope == "all" and event in OPT_OUT_EVENTS
        new = suppress(self.connection, lead_id, channels, event, self.now, unsubscribed=opted_out)
        if new:
            self.report.suppressed[event] += 1
        if stop or scope == "all":
            self.stop(lead_id, event)
        self.touched.add(lead_id)
        return f"suppressed {scope} ({event})"

    def suppress_channel(self, lead_id: int, channel: str, reason: str) -> str:
        """Suppress one channel for `reason`, whatever scoring.yaml scopes it to (what a
        callback about a message on that channel says of the number)."""
        if suppress(self.connection, lead_id, [channel], reason, self.now):
            self.report.suppressed[reason] += 1
        self.touched.add(lead_id)
        return f"suppressed {channel} ({reason})"

    def stop(self, lead_id: int, reason: str) -> None:
        if leave_nurture(self.connection, lead_id, reason, self.now):
            self.report.sequences_stopped[reason] += 1

    def touch_status(self, touch: dict[str, Any] | None, status: str, error: str | None) -> str:
        if touch is None:
            return "no matching touch"
        values: dict[str, Any] = {"updated_at": self.now}
        if error:
            values["error"] = error[:500]
        if touch["sent_at"] is None and status != TouchStatus.FAILED:
            values["sent_at"] = self.now
        # the transition table decides what a callback may move on from
        updated = self.connection.execute(
            move_touches(status, TOUCHES.c.id == touch["id"], **values)
        ).rowcount
        return f"touch {touch['id']} {status}" if updated else f"touch {touch['id']} unchanged"


def _failure(row: Any) -> str:
    """The provider's own words for a failed message, kept on the touch for operators."""
    p = row.payload
    if row.source == inbound.TWILIO_STATUS:
        return f"twilio {row.kind} {payload_int(p.get('ErrorCode')) or ''}"
    if row.kind == "bounce":
        return f"bounce ({p.get('type', 'bounce')}): {str(p.get('reason', ''))[:200]}"
    return f"{row.kind}: {p.get('reason', '')}"


def _delivery(batch: Batch, row: Any, event: EventType, lead_id: int, touch: Touch) -> str:
    """What happened to a message we sent: its touch's status, and a bad address
    suppressed."""
    at = event_time(row)
    if event in (EventType.SENT, EventType.DELIVERED, EventType.READ):
        status = TouchStatus.SENT if event == EventType.SENT else TouchStatus.DELIVERED
        done = batch.touch_status(touch, status, None)
        if event != EventType.READ:
            return done
        batch.engage(lead_id, at)
        return f"{done}, " + batch.score(
            lead_id, "whatsapp_read", at, row.id, "read a WhatsApp message"
        )
    done = batch.touch_status(touch, TouchStatus.FAILED, _failure(row))
    if event == EventType.BLOCKED:
        return f"soft bounce, {done}"
    if event == EventType.BOUNCED:
        return f"hard bounce, {done}, " + batch.suppress(lead_id, "bounce", at, stop=True)
    if touch is not None and touch["channel"] == "sms":
        if payload_int(row.payload.get("ErrorCode")) == SMS_UNSUBSCRIBED_CODE:
            return f"{done}, " + batch.suppress_channel(lead_id, "sms", "sms_opt_out")
        if event == EventType.INVALID_NUMBER:
            return f"{done}, " + batch.suppress_channel(lead_id, "sms", "invalid_number")
        return done
    if event in SUPPRESSES:
        return f"{done}, " + batch.suppress(lead_id, SUPPRESSES[event], at)
    return done


def _engagement(batch: Batch, row: Any, event: EventType, lead_id: int) -> str:
    """An email opened or clicked: activity and points."""
    at = event_time(row)
    if event == EventType.MACHINE_OPEN:
        return batch.score(
            lead_id, "email_open_machine", at, row.id, "email opened by a mail privacy proxy"
        )
    batch.engage(lead_id, at)
    if event == EventType.OPENED:
        return batch.score(lead_id, "email_open", at, row.id, "opened an email")
    url = str(row.payload.get("url", ""))[:200]
    return batch.score(lead_id, "email_click", at, row.id, f"clicked {url}".strip())


def _consent(batch: Batch, row: Any, event: EventType, lead_id: int) -> str:
    """The person saying stop, or start again: points, suppression or opt-in."""
    at = event_time(row)
    if event == EventType.RESUBSCRIBED:
        channel = _channel_of(row)
        opt_in(batch.connection, lead_id, channel, batch.now)
        why = "resubscribed" if channel == "email" else "opted in"
        return f"{channel} opt-in, " + batch.score(lead_id, "subscribe", at, row.id, why)
    if event == EventType.SPAM:
        return batch.suppress(lead_id, "spamreport", at, stop=True)
    if row.source == inbound.UNSUBSCRIBE:
        why = f"unsubscribe link ({row.payload['method']})"
        points = batch.score(lead_id, "unsubscribe", at, row.id, why)
        return points + " (suppressed when the link was used)"
    if event == EventType.OPTED_OUT and row.source == inbound.SENDGRID_INBOUND:
        words = str(row.payload.get("text") or "").strip() or row.payload.get("subject", "")
        why = f"email opt-out {words.splitlines()[0][:60]!r}" if words else "email opt-out"
        points = batch.score(lead_id, "unsubscribe", at, row.id, why)
        return f"{points}, " + batch.suppress(lead_id, "email_opt_out", at, stop=True)
    if event == EventType.OPTED_OUT and _channel_of(row) == "sms":
        # Only SMS stops: the other channels have their own consent, and the sequence goes on.
        why = f"SMS opt-out {inbound_text(row.payload)!r}"
        points = batch.score(lead_id, "unsubscribe", at, row.id, why)
        return f"{points}, " + batch.suppress(lead_id, "sms_opt_out", at)
    if event == EventType.OPTED_OUT:
        why = f"WhatsApp opt-out {inbound_text(row.payload)!r}"
        points = batch.score(lead_id, "unsubscribe", at, row.id, why)
        return f"{points}, " + batch.suppress(lead_id, "whatsapp_opt_out", at, stop=True)
    points = batch.score(lead_id, "unsubscribe", at, row.id, f"SendGrid {row.kind}")
    return f"{points}, " + batch.suppress(lead_id, SUPPRESSES[event], at)


def _channel_of(row: Any) -> str:
    if row.source == inbound.TWILIO_INBOUND:
        return inbound_channel(row.payload)
    return CHANNEL_OF[row.source]


def _reply(batch: Batch, row: Any, lead_id: int, found: Lookup) -> str:
    at = event_time(row)
    batch.engage(lead_id, at)
    why, note = "replied on WhatsApp", ""
    if row.source == inbound.TWILIO_INBOUND and inbound_channel(row.payload) == "sms":
        why = "replied by SMS"
    if row.source == inbound.SENDGRID_INBOUND:
        why = "replied by email"
        if not from_the_lead(row, lead_id, found):
            note = f" (from {sender_of(row)[:80]}, through the lead's reply address)"
    points = batch.score(lead_id, "reply", at, row.id, why + note)
    batch.stop(lead_id, "replied")
    return f"{points}, sequence stopped{note}"


def _site(batch: Batch, row: Any, lead_id: int) -> str | None:
    p, kind = row.payload, row.kind
    at = parse_instant(p["occurred_at"])
    if kind not in SITE_EVENTS:
        batch.report.unknown_site_types[kind] += 1
        return None
    batch.engage(lead_id, at)
    if kind == "page_view":
        url = str(p.get("properties", {}).get("url", ""))
        if is_pricing_url(batch.config, url):
            return batch.score(lead_id, "pricing_page", at, row.id, f"viewed {url[:200]}")
        return "page view (activity, no points)"
    rule = "subscribe" if kind == "subscribed" else kind
    return batch.score(lead_id, rule, at, row.id, kind.replace("_", " "))


def _form(batch: Batch, row: Any, lead_id: int) -> str:
    """A hand-raise web form: scored and escalated like the site event of the same kind;
    it never sets the stage itself."""
    at = parse_instant(row.payload["occurred_at"])
    batch.engage(lead_id, at)
    reason = f"{row.kind.replace('_', ' ')} (form {row.payload.get('form', '')})"
    return batch.score(lead_id, row.kind, at, row.id, reason[:200])


@dataclass(frozen=True)
class Applied:
    """What applying one inbox event did, for its row."""

    status: str  # InboxStatus
    event: EventType
    lead_id: int | None = None
    touch_id: int | None = None
    result: str = ""


def _apply(
    batch: Batch, row: Any, event: EventType, lead_id: int, touch: Touch, found: Lookup
) -> str | None:
    if event in DELIVERY_EVENTS:
        return _delivery(batch, row, event, lead_id, touch)
    if event in (EventType.OPENED, EventType.MACHINE_OPEN, EventType.CLICKED):
        return _engagement(batch, row, event, lead_id)
    if event == EventType.REPLIED:
        return _reply(batch, row, lead_id, found)
    if event in CONSENT_EVENTS:
        return _consent(batch, row, event, lead_id)
    if event == EventType.HAND_RAISE:
        return _form(batch, row, lead_id)
    if event == EventType.HELP:
        return "SMS help keyword: Twilio answers it with the help text; not a reply"
    if event == EventType.ACTIVITY:
        return _site(batch, row, lead_id)
    if row.source == inbound.SENDGRID_INBOUND:
        return f"{row.kind.replace('_', ' ')} ({row.payload.get('automatic', '')}): not a reply"
    return f"{row.kind}: nothing to apply"


def apply_row(batch: Batch, row: Any, found: Lookup) -> Applied:
    """Apply one inbox event: what it means (translated once here), for which lead and
    message, and what that does."""
    event = translate(row, batch.config)
    lead_id, touch = resolve(row, found)
    if lead_id is None:
        if row.source == inbound.TWILIO_STATUS and touch is None:
            return Applied(
                InboxStatus.IGNORED, event, result="no touch with this touch_id or MessageSid"
            )
        return Applied(InboxStatus.IGNORED, event, result=no_lead(row))
    if (
        event == EventType.OPTED_OUT
        and row.source == inbound.SENDGRID_INBOUND
        and not from_the_lead(row, lead_id, found)
    ):
        # Opt-out words from another address answering through the lead's reply address
        # never suppress the lead: they count as a reply (which stops the sequence too).
        event = EventType.REPLIED
    touch_id = touch_of(row, lead_id, touch, found)
    if row.source == inbound.TWILIO_STATUS and touch is not None:
        _keep_sid(batch, row, touch)
    if row.source == inbound.TWILIO_INBOUND and inbound_channel(row.payload) == "whatsapp":
        # last_inbound_at opens WhatsApp's 24-hour window: only a WhatsApp message does
        batch.inbound[lead_id] = max(row.received_at, batch.inbound.get(lead_id, row.received_at))
    result = _apply(batch, row, event, lead_id, touch, found)
    if result is None:
        return Applied(
            InboxStatus.IGNORED,
            event,
            lead_id,
            touch_id,
            f"unknown site event type {row.kind!r}: not scored",
        )
    return Applied(InboxStatus.PROCESSED, event, lead_id, touch_id, result)


def _keep_sid(batch: Batch, row: Any, touch: dict[str, Any]) -> None:
    """A status callback names the message by its SID: keep it when the touch has none."""
    if touch["provider_message_id"] is None:
        batch.connection.execute(
            sa.update(TOUCHES)
            .where(TOUCHES.c.id == touch["id"])
            .values(provider_message_id=row.payload["MessageSid"][:100])
        )
