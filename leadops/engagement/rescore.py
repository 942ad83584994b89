"""The rescore run: apply the webhook inbox, score, decay, move stages, re-segment.

`run_rescore` is what flows/rescore.py (every 5 minutes), `leadops rescore` and the tests
call. Every score change is a ledger row (rule, points, reason, source event, time); the
lead's score is the sum of its rows. Leads that become sales-ready (reach SQL, or raise a
hand: demo request, reply) are returned in `RescoreReport.sales_ready` for escalation.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops import deadletters
from leadops.core.clock import parse_instant
from leadops.delivery.suppression import end_enrollment, opt_in, suppress
from leadops.engagement import inbox
from leadops.engagement.scoring import (
    FitFacts,
    ScoringConfig,
    capped,
    channels_of,
    classify_inbound,
    decay_delta,
    fit_adjustments,
    fit_points,
    is_pricing_url,
    load_scoring,
    next_stage,
    top_reasons,
)
from leadops.models import (
    ENROLLMENTS,
    INBOX,
    LEADS,
    PASS_MARKS,
    SCORE_LEDGER,
    SENT_TOUCH_STATUSES,
    STAGE_CHANGES,
    TOUCHES,
    DeadLetterItem,
    EnrollmentStatus,
    InboxStatus,
    ScoreKind,
    TouchStatus,
)
from leadops.nurture.plan import PlanReport, plan_leads
from leadops.nurture.runtime import Runtime

log = logging.getLogger("leadops.rescore")

INBOX_BATCH = 2000
LEAD_BATCH = 5000
OPEN_RULES = ("email_open", "email_open_machine")
# SendGrid "dropped" reasons that mean the address must not be mailed again.
DROPPED_SUPPRESS = ("bounced address", "invalid", "unsubscribed address", "spam reporting")
# Engagement rows that are not the lead doing something (they do not reset decay).
NOT_ACTIVITY = ("no_opens", "email_open_machine", "unsubscribe")
# Suppressions that are the person saying stop (also recorded as unsubscribed_at).
OPT_OUT_EVENTS = frozenset({"unsubscribe", "spamreport", "whatsapp_opt_out"})
# Touch statuses a provider callback may move on from (never back from failed or skipped).
CALLBACK_FROM = (TouchStatus.SENDING, TouchStatus.SENT, TouchStatus.AMBIGUOUS)


@dataclass(frozen=True)
class SalesReady:
    """A lead the rescore run found sales-ready: escalation takes it from here."""

    lead_id: int
    trigger: str  # "sql" (reached the SQL threshold) or a hand-raise rule ("reply", ...)
    score: int
    reasons: tuple[str, ...]  # the rules contributing most points, e.g. "reply +15"
    at: datetime


@dataclass
class RescoreReport:
    now: datetime
    events: Counter[str] = field(default_factory=Counter)  # processed, by source/kind
    ignored: Counter[str] = field(default_factory=Counter)  # not applied, by reason
    unknown_site_types: Counter[str] = field(default_factory=Counter)
    ledger_rows: int = 0
    fit_rows: int = 0
    decay_rows: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)  # by reason
    sequences_stopped: Counter[str] = field(default_factory=Counter)  # by reason
    stage_changes: Counter[str] = field(default_factory=Counter)  # "lead->mql"
    rescored_leads: int = 0
    dead_letters: int = 0  # inbox events set aside (they failed to apply)
    sales_ready: list[SalesReady] = field(default_factory=list)
    plan: PlanReport = field(default_factory=PlanReport)

    @property
    def events_total(self) -> int:
        return sum(self.events.values())

    def counts(self) -> dict[str, int]:
        """The run in numbers (what the flow returns and the CLI prints)."""
        return {
            "events": self.events_total,
            "ignored": sum(self.ignored.values()),
            "ledger_rows": self.ledger_rows + self.fit_rows + self.decay_rows,
            "stage_changes": sum(self.stage_changes.values()),
            "suppressed": sum(self.suppressed.values()),
            "sequences_stopped": sum(self.sequences_stopped.values()),
            "enrolled": sum(self.plan.enrolled.values()),
            "sales_ready": len(self.sales_ready),
            "dead_letters": self.dead_letters,
        }


# -- resolving events to leads and touches -----------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _phone(value: str) -> str:
    return value.removeprefix("whatsapp:").strip()


@dataclass
class _Lookup:
    touches: dict[int, dict[str, Any]]  # touch id -> row
    by_sid: dict[str, dict[str, Any]]  # provider id -> touch row
    emails: dict[str, int]
    phones: dict[str, int]
    leads: set[int]


def _lookup(connection: Connection, rows: Sequence[Any]) -> _Lookup:
    touch_ids: set[int] = set()
    sids: set[str] = set()
    emails: set[str] = set()
    phones: set[str] = set()
    lead_ids: set[int] = set()
    for row in rows:
        p = row.payload
        if row.source == inbox.SENDGRID:
            for key, target in (("touch_id", touch_ids), ("lead_id", lead_ids)):
                value = _int(p.get(key))
                if value is not None:
                    target.add(value)
            if isinstance(p.get("email"), str):
                emails.add(p["email"].lower())
        elif row.source == inbox.TWILIO_STATUS:
            if p.get("touch_id") is not None:
                touch_ids.add(int(p["touch_id"]))
            sids.add(p.get("MessageSid", ""))
        elif row.source == inbox.TWILIO_INBOUND:
            phones.add(_phone(p.get("From", "")))
        elif row.source in (inbox.UNSUBSCRIBE, inbox.FORM):
            lead_ids.add(int(p["lead_id"]))
        elif row.source == inbox.SITE and isinstance(p.get("email"), str):
            emails.add(p["email"].lower())
    t = TOUCHES.c
    columns = (t.id, t.lead_id, t.channel, t.status, t.provider_message_id, t.sent_at)
    touches = {
        r.id: r._asdict()
        for r in connection.execute(sa.select(*columns).where(t.id.in_(touch_ids))).all()
    }
    by_sid = {
        r.provider_message_id: r._asdict()
        for r in connection.execute(
            sa.select(*columns).where(t.provider_message_id.in_(sids))
        ).all()
    }
    lead_ids |= {row["lead_id"] for row in touches.values()}
    lead_ids |= {row["lead_id"] for row in by_sid.values()}
    found_emails = {
        email.lower(): lead_id
        for lead_id, email in connection.execute(
            # intake stores emails lower-cased, so the unique index answers this
            sa.select(LEADS.c.id, LEADS.c.email).where(LEADS.c.email.in_(emails))
        ).all()
    }
    found_phones: dict[str, int] = {}
    for lead_id, phone in connection.execute(
        sa.select(LEADS.c.id, LEADS.c.phone).where(LEADS.c.phone.in_(phones)).order_by(LEADS.c.id)
    ).all():
        found_phones.setdefault(phone, lead_id)
    candidates = lead_ids | set(found_emails.values()) | set(found_phones.values())
    existing = set(
        connection.execute(sa.select(LEADS.c.id).where(LEADS.c.id.in_(candidates))).scalars()
    )
    return _Lookup(touches, by_sid, found_emails, found_phones, existing)


# -- applying one batch of inbox events --------------------------------------------------


class _Batch:
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
        if end_enrollment(self.connection, lead_id, reason, self.now):
            self.report.sequences_stopped[reason] += 1

    def touch_status(self, touch: dict[str, Any] | None, status: str, error: str | None) -> str:
        if touch is None:
            return "no matching touch"
        t = TOUCHES.c
        values: dict[str, Any] = {"status": status, "updated_at": self.now}
        if error:
            values["error"] = error[:500]
        if touch["sent_at"] is None and status != TouchStatus.FAILED:
            values["sent_at"] = self.now
        allowed = list(CALLBACK_FROM)
        if status == TouchStatus.FAILED:
            allowed.append(TouchStatus.DELIVERED)
        elif status == TouchStatus.SENT:
            allowed = [TouchStatus.SENDING, TouchStatus.AMBIGUOUS]
        updated = self.connection.execute(
            sa.update(TOUCHES).where(t.id == touch["id"], t.status.in_(allowed)).values(values)
        ).rowcount
        return f"touch {touch['id']} {status}" if updated else f"touch {touch['id']} unchanged"


def _sendgrid(batch: _Batch, row: Any, lead_id: int, touch: dict[str, Any] | None) -> str:
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


def _twilio_status(batch: _Batch, row: Any, lead_id: int, touch: dict[str, Any] | None) -> str:
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
        code = _int(p.get("ErrorCode"))
        done = batch.touch_status(touch, TouchStatus.FAILED, f"twilio {status} {code or ''}")
        if code is not None and code in batch.config.invalid_number_error_codes:
            return f"{done}, " + batch.suppress(lead_id, "invalid_number", row.received_at)
        return done
    return f"{status}: nothing to apply"


def _twilio_inbound(batch: _Batch, row: Any, lead_id: int) -> str:
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


def _site(batch: _Batch, row: Any, lead_id: int) -> str | None:
    p, kind = row.payload, row.kind
    at = parse_instant(p["occurred_at"])
    if kind not in inbox.SITE_EVENTS:
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


def _form(batch: _Batch, row: Any, lead_id: int) -> str:
    """A hand-raise web form: scored and escalated like the site event of the same kind;
    it never sets the stage itself."""
    at = parse_instant(row.payload["occurred_at"])
    batch.engage(lead_id, at)
    reason = f"{row.kind.replace('_', ' ')} (form {row.payload.get('form', '')})"
    return batch.score(lead_id, row.kind, at, row.id, reason[:200])


def _resolve(row: Any, found: _Lookup) -> tuple[int | None, dict[str, Any] | None]:
    p = row.payload
    touch = None
    lead_id: int | None = None
    if row.source == inbox.SENDGRID:
        if p.get("kind", "touch") != "touch":
            return None, None  # a rep notification or a form confirmation, not a lead's touch
        touch_id = _int(p.get("touch_id"))
        touch = found.touches.get(touch_id) if touch_id is not None else None
        lead_id = _int(p.get("lead_id")) or (touch["lead_id"] if touch else None)
        if lead_id is None and isinstance(p.get("email"), str):
            lead_id = found.emails.get(p["email"].lower())
    elif row.source == inbox.TWILIO_STATUS:
        touch_id = p.get("touch_id")
        touch = found.touches.get(touch_id) if touch_id is not None else None
        touch = touch or found.by_sid.get(p.get("MessageSid", ""))
        lead_id = touch["lead_id"] if touch else None
    elif row.source == inbox.TWILIO_INBOUND:
        lead_id = found.phones.get(_phone(p.get("From", "")))
    elif row.source in (inbox.UNSUBSCRIBE, inbox.FORM):
        lead_id = int(p["lead_id"])
    elif row.source == inbox.SITE:
        lead_id = found.emails.get(str(p.get("email", "")).lower())
    if lead_id is not None and lead_id not in found.leads:
        lead_id = None
    return lead_id, touch


def _event_time(row: Any) -> datetime:
    p = row.payload
    if row.source == inbox.SENDGRID:
        return datetime.fromtimestamp(float(p["timestamp"]), UTC)
    if row.source in (inbox.SITE, inbox.FORM):
        return parse_instant(p["occurred_at"])
    return row.received_at


def _apply_row(batch: _Batch, row: Any, found: _Lookup) -> tuple[str, int | None, str]:
    lead_id, touch = _resolve(row, found)
    if lead_id is None:
        if row.source == inbox.TWILIO_STATUS and touch is None:
            return InboxStatus.IGNORED, None, "no touch with this touch_id or MessageSid"
        return InboxStatus.IGNORED, None, "no matching lead"
    if row.source == inbox.SENDGRID:
        result: str | None = _sendgrid(batch, row, lead_id, touch)
    elif row.source == inbox.TWILIO_STATUS:
        result = _twilio_status(batch, row, lead_id, touch)
    elif row.source == inbox.TWILIO_INBOUND:
        result = _twilio_inbound(batch, row, lead_id)
    elif row.source == inbox.UNSUBSCRIBE:
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
    elif row.source == inbox.FORM:
        result = _form(batch, row, lead_id)
    else:
        result = _site(batch, row, lead_id)
        if result is None:
            return InboxStatus.IGNORED, lead_id, f"unknown site event type {row.kind!r}: not scored"
    return InboxStatus.PROCESSED, lead_id, result or ""


def _update_activity(connection: Connection, column: str, values: dict[int, datetime]) -> None:
    if not values:
        return
    current = dict(
        connection.execute(sa.select(LEADS.c.id, LEADS.c[column]).where(LEADS.c.id.in_(values)))
        .tuples()
        .all()
    )
    params = [
        {"lid": lead_id, "value": at}
        for lead_id, at in values.items()
        if current.get(lead_id) is None or current[lead_id] < at
    ]
    if params:
        connection.execute(
            sa.update(LEADS)
            .where(LEADS.c.id == sa.bindparam("lid"))
            .values({column: sa.bindparam("value")}),
            params,
        )


def process_inbox(
    engine: Engine, config: ScoringConfig, now: datetime, report: RescoreReport
) -> tuple[set[int], dict[tuple[int, str], datetime]]:
    """Apply every pending inbox event, oldest first, one transaction per batch.

    A batch is applied in a savepoint; only when it fails is it split (halves, then
    halves of those) so that each event that raises is rolled back alone and set aside as
    a dead letter, and the others apply. Returns the leads whose score may have changed
    and the hand-raises seen."""
    touched: set[int] = set()
    hand_raised: dict[tuple[int, str], datetime] = {}
    i = INBOX.c
    while True:
        with engine.begin() as connection:
            query = (
                sa.select(i.id, i.source, i.kind, i.payload, i.received_at)
                .where(i.status == InboxStatus.PENDING)
                .order_by(i.id)
                .limit(INBOX_BATCH)
            )
            if connection.dialect.name == "postgresql":
                # Concurrent runs (the every-minute inbox pass and the 5-minute rescore, or
                # several workers) take disjoint batches.
                query = query.with_for_update(skip_locked=True)
            rows = connection.execute(query).all()
            if not rows:
                break
            for part in _apply_isolated(connection, config, now, rows):
                _merge(report, part.report)
                touched |= part.touched
                for key_, at in part.hand_raised.items():
                    hand_raised.setdefault(key_, at)
    return touched, hand_raised


@dataclass
class _Applied:
    """What applying some inbox rows did, kept only once their savepoint is released."""

    report: RescoreReport
    touched: set[int]
    hand_raised: dict[tuple[int, str], datetime]


def _merge(report: RescoreReport, part: RescoreReport) -> None:
    report.events.update(part.events)
    report.ignored.update(part.ignored)
    report.unknown_site_types.update(part.unknown_site_types)
    report.ledger_rows += part.ledger_rows
    report.suppressed.update(part.suppressed)
    report.sequences_stopped.update(part.sequences_stopped)
    report.dead_letters += part.dead_letters


def _apply_isolated(
    connection: Connection, config: ScoringConfig, now: datetime, rows: Sequence[Any]
) -> list[_Applied]:
    """Apply `rows` in a savepoint; when that fails, each half on its own, down to the
    single events that fail, which become dead letters."""
    try:
        with connection.begin_nested():
            return [_apply_rows(connection, config, now, rows)]
    except Exception as exc:
        if deadletters.must_raise(exc):
            raise
        if len(rows) > 1:
            middle = len(rows) // 2
            return [
                *_apply_isolated(connection, config, now, rows[:middle]),
                *_apply_isolated(connection, config, now, rows[middle:]),
            ]
        return [_dead_letter(connection, rows[0], exc, now)]


def _dead_letter(connection: Connection, row: Any, exc: Exception, now: datetime) -> _Applied:
    error = deadletters.describe(exc)
    with connection.begin_nested():
        connection.execute(
            sa.update(INBOX)
            .where(INBOX.c.id == row.id)
            .values(status=InboxStatus.DEAD_LETTER, result=error[:300], processed_at=now)
        )
        deadletters.record(
            connection,
            item=DeadLetterItem.INBOX,
            item_id=row.id,
            stage="rescore",
            error=error,
            payload={"source": row.source, "kind": row.kind},
            now=now,
        )
    part = RescoreReport(now=now)
    part.dead_letters = 1
    return _Applied(part, set(), {})


def _apply_rows(
    connection: Connection, config: ScoringConfig, now: datetime, rows: Sequence[Any]
) -> _Applied:
    """Apply these inbox rows and mark them processed or ignored (all or nothing)."""
    i = INBOX.c
    report = RescoreReport(now=now)
    found = _lookup(connection, rows)
    batch = _Batch(connection, config, now, report)
    batch.load_history(found.leads, min(_event_time(row) for row in rows))
    updates = []
    for row in rows:
        status, lead_id, result = _apply_row(batch, row, found)
        key = f"{row.source}/{row.kind}" if status == InboxStatus.PROCESSED else result
        (report.events if status == InboxStatus.PROCESSED else report.ignored)[key[:80]] += 1
        updates.append(
            {"iid": row.id, "st": status, "lid": lead_id, "res": result[:300], "at": now}
        )
    if batch.ledger:
        connection.execute(SCORE_LEDGER.insert(), batch.ledger)
        report.ledger_rows += len(batch.ledger)
    _update_activity(connection, "last_engaged_at", batch.engaged)
    _update_activity(connection, "last_inbound_at", batch.inbound)
    connection.execute(
        sa.update(INBOX)
        .where(i.id == sa.bindparam("iid"))
        .values(
            status=sa.bindparam("st"),
            lead_id=sa.bindparam("lid"),
            result=sa.bindparam("res"),
            processed_at=sa.bindparam("at"),
        ),
        updates,
    )
    return _Applied(report, batch.touched, batch.hand_raised)


# -- fit, no-opens and decay -------------------------------------------------------------


def apply_fit(
    engine: Engine, config: ScoringConfig, now: datetime, report: RescoreReport
) -> set[int]:
    """Bring every lead's fit rows in line with its profile and the fit rules."""
    s, lead = SCORE_LEDGER.c, LEADS.c
    changed: set[int] = set()
    last_id = 0
    while True:
        with engine.begin() as connection:
            leads = connection.execute(
                sa.select(lead.id, lead.seniority, lead.industry, lead.country, lead.company_size)
                .where(lead.id > last_id)
                .order_by(lead.id)
                .limit(LEAD_BATCH)
            ).all()
            if not leads:
                return changed
            last_id = leads[-1].id
            recorded: dict[int, dict[str, int]] = defaultdict(dict)
            for lead_id, rule, points in connection.execute(
                sa.select(s.lead_id, s.rule, sa.func.sum(s.points))
                .where(s.kind == ScoreKind.FIT, s.lead_id.in_([r.id for r in leads]))
                .group_by(s.lead_id, s.rule)
            ).all():
                recorded[lead_id][rule] = int(points)
            rows = []
            for r in leads:
                desired = fit_points(
                    config, FitFacts(r.seniority, r.industry, r.country, r.company_size)
                )
                for rule, delta in fit_adjustments(desired, recorded[r.id]).items():
                    verb = "matches" if rule in desired else "no longer matches"
                    rows.append(
                        {
                            "lead_id": r.id,
                            "kind": ScoreKind.FIT,
                            "rule": rule,
                            "points": delta,
                            "reason": f"fit: {verb} {rule}",
                            "inbox_id": None,
                            "event_at": now,
                            "created_at": now,
                        }
                    )
                    changed.add(r.id)
            if rows:
                connection.execute(SCORE_LEDGER.insert(), rows)
                report.fit_rows += len(rows)


NO_OPENS_MARK = "rescore:no_opens"


def apply_no_opens(
    engine: Engine, config: ScoringConfig, now: datetime, report: RescoreReport
) -> set[int]:
    """Once per quiet stretch: a lead emailed `no_opens_days` ago that has not opened since.

    Incremental: a lead can newly qualify only when its first email or its last open
    falls `no_opens_days` behind the clock, so a run looks only at emails sent and opens
    made in the window since the previous run (indexed ranges), plus opens and
    resubscribes recorded since (a late webhook). The first run, a clock set back, or a
    changed `no_opens_days` look at every lead. Leads are handled LEAD_BATCH at a time."""
    rule = config.engagement.get("no_opens")
    if rule is None:
        return set()
    days = timedelta(days=config.no_opens_days)
    detail = {"no_opens_days": config.no_opens_days}
    m, s = PASS_MARKS.c, SCORE_LEDGER.c
    with engine.connect() as connection:
        mark = connection.execute(
            sa.select(m.at, m.last_id, m.detail).where(m.name == NO_OPENS_MARK)
        ).first()
        last_id = connection.execute(sa.select(sa.func.max(s.id))).scalar_one() or 0
    if mark is None or _aware(mark.at) > now or mark.detail != detail:
        candidates = sa.select(LEADS.c.id.label("lead_id"))
    else:
        candidates = _no_opens_candidates(_aware(mark.at) - days, now - days, mark.last_id)
    penalised: set[int] = set()
    with engine.connect() as reader:
        result = reader.execution_options(stream_results=True, yield_per=LEAD_BATCH).execute(
            candidates.order_by("lead_id")
        )
        for part in result.partitions():
            ids = [row[0] for row in part]
            with engine.begin() as connection:
                penalised |= _no_opens_batch(connection, config, ids, now, report)
    with engine.begin() as connection:
        connection.execute(sa.delete(PASS_MARKS).where(m.name == NO_OPENS_MARK))
        connection.execute(
            sa.insert(PASS_MARKS).values(name=NO_OPENS_MARK, at=now, last_id=last_id, detail=detail)
        )
    return penalised


def _no_opens_candidates(since: datetime, until: datetime, last_id: int) -> sa.Select[Any]:
    """Leads whose first email or last open may have crossed the quiet threshold between
    two runs (times in (since, until]), and leads with opens or resubscribes recorded
    after ledger row `last_id`."""
    s, t = SCORE_LEDGER.c, TOUCHES.c
    sent = sa.select(t.lead_id).where(
        t.sent_at > since,
        t.sent_at <= until,
        t.channel == "email",
        t.status.in_(list(SENT_TOUCH_STATUSES)),
    )
    opened = sa.select(s.lead_id).where(
        s.rule.in_(OPEN_RULES), s.event_at > since, s.event_at <= until
    )
    late = sa.select(s.lead_id).where(s.id > last_id, s.rule.in_([*OPEN_RULES, "subscribe"]))
    union = sa.union(sent, opened, late).subquery()
    return sa.select(union.c.lead_id)


def _no_opens_batch(
    connection: Connection,
    config: ScoringConfig,
    ids: list[int],
    now: datetime,
    report: RescoreReport,
) -> set[int]:
    """Apply the no-opens rule to these leads (indexed lookups per lead id)."""
    rule = config.engagement["no_opens"]
    days = timedelta(days=config.no_opens_days)
    s, t = SCORE_LEDGER.c, TOUCHES.c
    first_sent = (
        sa.select(t.lead_id, sa.func.min(t.sent_at).label("first_sent"))
        .where(
            t.lead_id.in_(ids),
            t.channel == "email",
            t.status.in_(list(SENT_TOUCH_STATUSES)),
        )
        .group_by(t.lead_id)
        .subquery()
    )
    last_open = (
        sa.select(s.lead_id, sa.func.max(s.event_at).label("last_open"))
        .where(s.lead_id.in_(ids), s.rule.in_(OPEN_RULES))
        .group_by(s.lead_id)
        .subquery()
    )
    last_penalty = (
        sa.select(s.lead_id, sa.func.max(s.event_at).label("last_penalty"))
        .where(s.lead_id.in_(ids), s.rule == "no_opens")
        .group_by(s.lead_id)
        .subquery()
    )
    query = (
        sa.select(
            first_sent.c.lead_id,
            first_sent.c.first_sent,
            last_open.c.last_open,
            last_penalty.c.last_penalty,
        )
        .join(LEADS, LEADS.c.id == first_sent.c.lead_id)
        .outerjoin(last_open, last_open.c.lead_id == first_sent.c.lead_id)
        .outerjoin(last_penalty, last_penalty.c.lead_id == first_sent.c.lead_id)
        .where(LEADS.c.email_suppressed_at.is_(None), first_sent.c.first_sent <= now - days)
    )
    rows = []
    for lead_id, first, opened, penalised in connection.execute(query).all():
        first = _aware(first)
        reference = max(first, _aware(opened)) if opened is not None else first
        if now < reference + days:
            continue
        if penalised is not None and _aware(penalised) > reference:
            continue
        rows.append(
            {
                "lead_id": lead_id,
                "kind": ScoreKind.ENGAGEMENT,
                "rule": "no_opens",
                "points": rule.points,
                "reason": f"no email opened in {config.no_opens_days} days",
                "inbox_id": None,
                "event_at": reference + days,
                "created_at": now,
            }
        )
    if rows:
        connection.execute(SCORE_LEDGER.insert(), rows)
    report.ledger_rows += len(rows)
    return {row["lead_id"] for row in rows}


def _aware(value: datetime) -> datetime:
    """Aggregates over UTCDateTime come back naive from SQLite; they are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def apply_decay(
    engine: Engine, config: ScoringConfig, now: datetime, report: RescoreReport
) -> set[int]:
    """Decay the engagement balance of leads inactive for longer than the grace period.

    The balance that decays is the one right after the lead's last activity (engagement
    rows up to it, earlier decay included); later penalties (no opens) are not decayed.
    Lead ids are streamed and decayed LEAD_BATCH at a time, one transaction each.
    """
    decayed: set[int] = set()
    with engine.connect() as reader:
        result = reader.execution_options(stream_results=True, yield_per=LEAD_BATCH).execute(
            sa.select(LEADS.c.id).order_by(LEADS.c.id)
        )
        for part in result.partitions():
            with engine.begin() as connection:
                decayed |= _decay_batch(connection, config, part[0][0], part[-1][0], now, report)
    return decayed


def _decay_batch(
    connection: Connection,
    config: ScoringConfig,
    first_id: int,
    last_id: int,
    now: datetime,
    report: RescoreReport,
) -> set[int]:
    """Decay the leads with ids from `first_id` to `last_id` (one indexed range)."""
    s = SCORE_LEDGER.c
    cutoff = now - timedelta(days=config.decay.inactive_after_days)
    last = (
        sa.select(
            s.lead_id,
            sa.func.max(s.id).label("last_id"),
            sa.func.max(s.event_at).label("last_at"),
        )
        .where(
            s.lead_id.between(first_id, last_id),
            s.kind == ScoreKind.ENGAGEMENT,
            s.rule.not_in(NOT_ACTIVITY),
        )
        .group_by(s.lead_id)
        .subquery()
    )
    inner = SCORE_LEDGER.alias("inner")
    base = (
        sa.select(sa.func.coalesce(sa.func.sum(inner.c.points), 0))
        .where(
            inner.c.lead_id == last.c.lead_id,
            inner.c.kind != ScoreKind.FIT,
            inner.c.id <= last.c.last_id,
        )
        .scalar_subquery()
    )
    decayed = (
        sa.select(sa.func.coalesce(sa.func.sum(inner.c.points), 0))
        .where(
            inner.c.lead_id == last.c.lead_id,
            inner.c.kind == ScoreKind.DECAY,
            inner.c.id > last.c.last_id,
        )
        .scalar_subquery()
    )
    query = sa.select(last.c.lead_id, last.c.last_at, base, decayed).where(last.c.last_at < cutoff)
    rows = []
    for lead_id, last_at, base_points, decayed_points in connection.execute(query).all():
        delta = decay_delta(
            balance=int(base_points) + int(decayed_points),
            base=int(base_points),
            last_active=_aware(last_at),
            now=now,
            decay=config.decay,
        )
        if delta:
            rows.append(
                {
                    "lead_id": lead_id,
                    "kind": ScoreKind.DECAY,
                    "rule": "decay",
                    "points": delta,
                    "reason": (
                        f"inactive since {_aware(last_at):%Y-%m-%d}: engagement halves "
                        f"every {config.decay.half_life_days:g} days"
                    ),
                    "inbox_id": None,
                    "event_at": now,
                    "created_at": now,
                }
            )
    if rows:
        connection.execute(SCORE_LEDGER.insert(), rows)
    report.decay_rows += len(rows)
    return {row["lead_id"] for row in rows}


# -- score totals, stages, sales-ready ---------------------------------------------------


def breakdowns(connection: Connection, lead_ids: Iterable[int]) -> dict[int, list[tuple[str, int]]]:
    """Points per rule for each lead (decay as one line)."""
    s = SCORE_LEDGER.c
    result: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for lead_id, rule, points in connection.execute(
        sa.select(s.lead_id, s.rule, sa.func.sum(s.points))
        .where(s.lead_id.in_(list(lead_ids)))
        .group_by(s.lead_id, s.rule)
        .order_by(s.lead_id, s.rule)
    ).all():
        result[lead_id].append((rule, int(points)))
    return result


def apply_scores_and_stages(
    engine: Engine,
    config: ScoringConfig,
    lead_ids: set[int],
    hand_raised: dict[tuple[int, str], datetime],
    now: datetime,
    report: RescoreReport,
) -> set[int]:
    """Set each lead's score to the sum of its ledger, move stages; returns moved leads."""
    moved: set[int] = set()
    ids = sorted(lead_ids)
    s = SCORE_LEDGER.c
    ready: list[tuple[int, str, datetime]] = []
    for start in range(0, len(ids), LEAD_BATCH):
        chunk = ids[start : start + LEAD_BATCH]
        with engine.begin() as connection:
            total = (
                sa.select(sa.func.coalesce(sa.func.sum(s.points), 0))
                .where(s.lead_id == LEADS.c.id)
                .scalar_subquery()
            )
            connection.execute(sa.update(LEADS).where(LEADS.c.id.in_(chunk)).values(score=total))
            report.rescored_leads += len(chunk)
            for lead_id, stage, score in connection.execute(
                sa.select(LEADS.c.id, LEADS.c.lifecycle_stage, LEADS.c.score).where(
                    LEADS.c.id.in_(chunk)
                )
            ).all():
                target = next_stage(stage, score, config.thresholds)
                if target is None:
                    continue
                threshold = getattr(config.thresholds, target)
                connection.execute(
                    sa.update(LEADS)
                    .where(LEADS.c.id == lead_id)
                    .values(lifecycle_stage=target, updated_at=now)
                )
                connection.execute(
                    STAGE_CHANGES.insert().values(
                        lead_id=lead_id,
                        from_stage=stage,
                        to_stage=target,
                        score=score,
                        reason=f"score {score} reached the {target} threshold {threshold}",
                        changed_at=now,
                    )
                )
                report.stage_changes[f"{stage}->{target}"] += 1
                moved.add(lead_id)
                if target == "sql":
                    ready.append((lead_id, "sql", now))
    ready.extend((lead_id, trigger, at) for (lead_id, trigger), at in sorted(hand_raised.items()))
    if ready:
        with engine.connect() as connection:
            scores = dict(
                connection.execute(
                    sa.select(LEADS.c.id, LEADS.c.score).where(
                        LEADS.c.id.in_([r[0] for r in ready])
                    )
                )
                .tuples()
                .all()
            )
            explained = breakdowns(connection, scores)
        report.sales_ready = [
            SalesReady(
                lead_id=lead_id,
                trigger=trigger,
                score=scores[lead_id],
                reasons=tuple(top_reasons(explained[lead_id])),
                at=at,
            )
            for lead_id, trigger, at in ready
            if lead_id in scores
        ]
    return moved


def inactive_unenrolled(runtime: Runtime, now: datetime) -> set[int]:
    """Leads without an active enrollment that an inactivity segment rule (re-engage) may
    now enrol: inactive long enough, in the rule's stages, never in its campaign."""
    e = ENROLLMENTS.c
    active = sa.select(e.lead_id).where(e.status == EnrollmentStatus.ACTIVE)
    found: set[int] = set()
    with runtime.engine.connect() as connection:
        for rule in runtime.segments.rules:
            days = rule.when.inactive_days_at_least
            if days is None:
                continue
            been = sa.select(e.lead_id).where(e.campaign == rule.campaign)
            query = sa.select(LEADS.c.id).where(
                sa.func.coalesce(LEADS.c.last_engaged_at, LEADS.c.created_at)
                <= now - timedelta(days=days),
                LEADS.c.id.not_in(active),
                LEADS.c.id.not_in(been),
            )
            if rule.when.lifecycle_stage is not None:
                query = query.where(
                    LEADS.c.lifecycle_stage.in_([str(s) for s in rule.when.lifecycle_stage])
                )
            found |= set(connection.execute(query).scalars())
    return found


def run_rescore(
    runtime: Runtime, now: datetime, *, config: ScoringConfig | None = None
) -> RescoreReport:
    """One rescore run at `now`: inbox, fit, no-opens, decay, scores, stages, re-segment."""
    config = config or load_scoring(runtime.settings.config_dir)
    report = RescoreReport(now=now)
    engine = runtime.engine
    touched, hand_raised = process_inbox(engine, config, now, report)
    touched |= apply_fit(engine, config, now, report)
    touched |= apply_no_opens(engine, config, now, report)
    touched |= apply_decay(engine, config, now, report)
    moved = apply_scores_and_stages(engine, config, touched, hand_raised, now, report)
    report.plan = plan_leads(runtime, moved | inactive_unenrolled(runtime, now), now)
    log.info(
        "rescore %s: %d events, %d ignored, %d ledger rows, %d stage changes, %d sales-ready",
        now.isoformat(),
        report.events_total,
        sum(report.ignored.values()),
        report.ledger_rows + report.fit_rows + report.decay_rows,
        sum(report.stage_changes.values()),
        len(report.sales_ready),
    )
    return report


def run_inbox(
    runtime: Runtime, now: datetime, *, config: ScoringConfig | None = None
) -> RescoreReport:
    """The quick pass: apply pending inbox events, rescore and move only the leads they
    touched (no fit, no-opens or decay scans). The every-minute escalate flow runs it so a
    hand-raise reaches a rep within a minute; the 5-minute rescore does the rest."""
    config = config or load_scoring(runtime.settings.config_dir)
    report = RescoreReport(now=now)
    touched, hand_raised = process_inbox(runtime.engine, config, now, report)
    moved = apply_scores_and_stages(runtime.engine, config, touched, hand_raised, now, report)
    if moved:
        report.plan = plan_leads(runtime, moved, now)
    return report


# -- explaining a score ------------------------------------------------------------------


def explain(engine: Engine, lead_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A lead's score breakdown (points per rule) and timeline (ledger rows, inbox events
    and stage changes, oldest first)."""
    s, i, c = SCORE_LEDGER.c, INBOX.c, STAGE_CHANGES.c
    with engine.connect() as connection:
        breakdown = [
            {"rule": rule, "kind": kind, "points": int(points), "rows": rows}
            for rule, kind, points, rows in connection.execute(
                sa.select(s.rule, s.kind, sa.func.sum(s.points), sa.func.count())
                .where(s.lead_id == lead_id)
                .group_by(s.rule, s.kind)
                .order_by(sa.func.sum(s.points).desc(), s.rule)
            ).all()
        ]
        timeline: list[dict[str, Any]] = [
            {"at": at, "what": f"score {rule} {points:+d}", "detail": reason, "event": inbox_id}
            for at, rule, points, reason, inbox_id in connection.execute(
                sa.select(s.event_at, s.rule, s.points, s.reason, s.inbox_id)
                .where(s.lead_id == lead_id)
                .order_by(s.id)
            ).all()
        ]
        scored = {row["event"] for row in timeline if row["event"] is not None}
        timeline += [
            {"at": at, "what": f"{source} {kind}", "detail": result or status, "event": event_id}
            for event_id, at, source, kind, status, result in connection.execute(
                sa.select(i.id, i.received_at, i.source, i.kind, i.status, i.result)
                .where(i.lead_id == lead_id)
                .order_by(i.id)
            ).all()
            if event_id not in scored
        ]
        timeline += [
            {"at": at, "what": f"stage {old} -> {new}", "detail": reason, "event": None}
            for at, old, new, reason in connection.execute(
                sa.select(c.changed_at, c.from_stage, c.to_stage, c.reason)
                .where(c.lead_id == lead_id)
                .order_by(c.id)
            ).all()
        ]
    timeline.sort(key=lambda row: row["at"])
    return breakdown, timeline
