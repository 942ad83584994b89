"""What each inbox event does to its lead: score points (capped), record activity,
suppress a channel, stop the sequence, move the touch's status. `Batch` applies them
within one batch's transaction, keeping the caps' history in memory."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.core.clock import parse_instant
from leadops.delivery.suppression import leave_nurture, opt_in, suppress
from leadops.engagement.report import RescoreReport
from leadops.engagement.resolve import Lookup, payload_int, resolve
from leadops.engagement.scoring import (
    ScoringConfig,
    capped,
    channels_of,
    classify_inbound,
    is_pricing_url,
)
from leadops.engagement.site import SITE_EVENTS
from leadops.models import SCORE_LEDGER, TOUCHES, InboxStatus, ScoreKind, TouchStatus
from leadops.models.touch_states import move_touches
from leadops.providers import inbound

# SendGrid "dropped" reasons that mean the address must not be mailed again.
DROPPED_SUPPRESS = ("bounced address", "invalid", "unsubscribed address", "spam reporting")
# Suppressions that are the person saying stop (also recorded as unsubscribed_at).
OPT_OUT_EVENTS = frozenset({"unsubscribe", "spamreport", "whatsapp_opt_out"})


class Batch:
    """Applies inbox events within one transaction, keeping cap history in memory."""

    def __init__(
        self, connection: Connection, config: ScoringConfig, now: datetime, report: RescoreReport
    ) -> None:
        self.connection = connection
        self.config = config
        self.now = now
        self.report = report
        self.history: dict[tuple[int, str], list[tuple[datetime, int]]] = defaultdict(list)
        self.ledger: list[dict[str, Any]] = []
        self.engaged: dict[int, datetime] = {}
        self.inbound: dict[int, datetime] = {}
        self.touched: set[int] = set()
        self.hand_raised: dict[tuple[int, str], datetime] = {}

    def load_history(self, lead_ids: set[int], earliest: datetime) -> None:
        capped_rules = [name for name, rule in self.config.engagement.items() if rule.caps]
        if not capped_rules or not lead_ids:
            return
        longest = max(
            cap.per_days for name in capped_rules for cap in self.config.engagement[name].caps
        )
        s = SCORE_LEDGER.c
        rows = self.connection.execute(
            sa.select(s.lead_id, s.rule, s.event_at, s.points).where(
                s.lead_id.in_(lead_ids),
                s.rule.in_(capped_rules),
                s.event_at > earliest - timedelta(days=longest),
            )
        ).all()
        for lead_id, rule, event_at, points in rows:
            self.history[(lead_id, rule)].append((event_at, points))

    def score(self, lead_id: int, rule: str, at: datetime, inbox_id: int, reason: str) -> str:
        """Add the engagement rule's (capped) points; returns what happened, for `result`."""
        self.touched.add(lead_id)
        definition = self.config.engagement.get(rule)
        if definition is None:
            return f"{rule}: not scored"
        award = capped(definition, self.history[(lead_id, rule)], at)
        self.history[(lead_id, rule)].append((at, award.points))
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


def _sendgrid(batch: Batch, row: Any, lead_id: int, touch: dict[str, Any] | None) -> str:
    p, kind = row.payload, row.kind
    at = datetime.fromtimestamp(float(p["timestamp"]), UTC)
    if kind == "open":
        if p.get("sg_machine_open") is True:
            return batch.score(
                lead_id, "email_open_machine", at, row.id, "email opened by a mail privacy proxy"
            )
        batch.engage(lead_id, at)
        return batch.score(lead_id, "email_open", at, row.id, "opened an email")
    if kind == "click":
        batch.engage(lead_id, at)
        url = str(p.get("url", ""))[:200]
        return batch.score(lead_id, "email_click", at, row.id, f"clicked {url}".strip())
    if kind == "delivered":
        return batch.touch_status(touch, TouchStatus.DELIVERED, None)
    if kind == "bounce":
        reason = str(p.get("reason", ""))[:200]
        bounce_type = p.get("type", "bounce")
        done = batch.touch_status(touch, TouchStatus.FAILED, f"bounce ({bounce_type}): {reason}")
        if bounce_type == "blocked":
            return f"soft bounce, {done}"
        return f"hard bounce, {done}, " + batch.suppress(lead_id, "bounce", at, stop=True)
    if kind == "dropped":
        reason = str(p.get("reason", ""))
        done = batch.touch_status(touch, TouchStatus.FAILED, f"dropped: {reason}")
        if any(marker in reason.lower() for marker in DROPPED_SUPPRESS):
            return f"{done}, " + batch.suppress(lead_id, "dropped", at)
        return done
    if kind == "spamreport":
        return batch.suppress(lead_id, "spamreport", at, stop=True)
    if kind in ("unsubscribe", "group_unsubscribe"):
        points = batch.score(lead_id, "unsubscribe", at, row.id, f"SendGrid {kind}")
        return f"{points}, " + batch.suppress(lead_id, kind, at)
    if kind == "group_resubscribe":
        opt_in(batch.connection, lead_id, "email", batch.now)
        return "email opt-in, " + batch.score(lead_id, "subscribe", at, row.id, "resubscribed")
    return f"{kind}: nothing to apply"


def _twilio_status(batch: Batch, row: Any, lead_id: int, touch: dict[str, Any] | None) -> str:
    p, status = row.payload, row.kind
    if touch is not None and touch["provider_message_id"] is None:
        batch.connection.execute(
            sa.update(TOUCHES)
            .where(TOUCHES.c.id == touch["id"])
            .values(provider_message_id=p["MessageSid"][:100])
        )
    if status == "sent":
        return batch.touch_status(touch, TouchStatus.SENT, None)
    if status in ("delivered", "read"):
        done = batch.touch_status(touch, TouchStatus.DELIVERED, None)
        if status == "read":
            batch.engage(lead_id, row.received_at)
            return f"{done}, " + batch.score(
                lead_id, "whatsapp_read", row.received_at, row.id, "read a WhatsApp message"
            )
        return done
    if status in ("failed", "undelivered"):
        code = payload_int(p.get("ErrorCode"))
        done = batch.touch_status(touch, TouchStatus.FAILED, f"twilio {status} {code or ''}")
        if code is not None and code in batch.config.invalid_number_error_codes:
            return f"{done}, " + batch.suppress(lead_id, "invalid_number", row.received_at)
        return done
    return f"{status}: nothing to apply"


def _twilio_inbound(batch: Batch, row: Any, lead_id: int) -> str:
    p, at = row.payload, row.received_at
    batch.inbound[lead_id] = max(at, batch.inbound.get(lead_id, at))
    body = p.get("Body") or p.get("ButtonPayload") or p.get("ButtonText") or ""
    kind = classify_inbound(batch.config, body)
    if kind == "opt_out":
        points = batch.score(lead_id, "unsubscribe", at, row.id, f"WhatsApp opt-out {body!r}")
        return f"{points}, " + batch.suppress(lead_id, "whatsapp_opt_out", at, stop=True)
    if kind == "opt_in":
        opt_in(batch.connection, lead_id, "whatsapp", batch.now)
        return "whatsapp opt-in, " + batch.score(lead_id, "subscribe", at, row.id, "opted in")
    batch.engage(lead_id, at)
    points = batch.score(lead_id, "reply", at, row.id, "replied on WhatsApp")
    batch.stop(lead_id, "replied")
    return f"{points}, sequence stopped"


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


def apply_row(batch: Batch, row: Any, found: Lookup) -> tuple[str, int | None, str]:
    lead_id, touch = resolve(row, found)
    if lead_id is None:
        if row.source == inbound.TWILIO_STATUS and touch is None:
            return InboxStatus.IGNORED, None, "no touch with this touch_id or MessageSid"
        return InboxStatus.IGNORED, None, "no matching lead"
    if row.source == inbound.SENDGRID:
        result: str | None = _sendgrid(batch, row, lead_id, touch)
    elif row.source == inbound.TWILIO_STATUS:
        result = _twilio_status(batch, row, lead_id, touch)
    elif row.source == inbound.TWILIO_INBOUND:
        result = _twilio_inbound(batch, row, lead_id)
    elif row.source == inbound.UNSUBSCRIBE:
        result = (
            batch.score(
                lead_id,
                "unsubscribe",
                row.received_at,
                row.id,
                f"unsubscribe link ({row.payload['method']})",
            )
            + " (suppressed when the link was used)"
        )
    elif row.source == inbound.FORM:
        result = _form(batch, row, lead_id)
    else:
        result = _site(batch, row, lead_id)
        if result is None:
            return InboxStatus.IGNORED, lead_id, f"unknown site event type {row.kind!r}: not scored"
    return InboxStatus.PROCESSED, lead_id, result or ""
