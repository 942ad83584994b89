"""Escalation records: hand a sales-ready lead to the right rep, once.

- `escalate()` records an escalation once per (lead, trigger, trigger key) and at most one
  active per lead, routes it (leadops.sales.routing), writes the assignment to the audit table,
  takes the lead out of nurture and records its notifications before any is sent;
  `deliver_notifications()` (leadops.sales.notify) sends them exactly once.
- `assign()` writes one assignment and who is told about it (also used by the SLA
  re-route, leadops.sales.sla): the rep or the queue, the manager (in a digest per pass,
  leadops.sales.notify) and, at the first assignment of a hand-raise, the lead (the
  hand-off intro, `intro:` in routing.yaml).
- `escalate_or_set_aside()` is how batches escalate: a lead that cannot be routed or
  recorded becomes a dead letter (leadops.deadletters) and the batch goes on.

The SLA loop is in leadops.sales.sla, acknowledge and close in leadops.sales.acks, the
scan for SQL leads in leadops.sales.scan, the read-only views in leadops.views.escalations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from leadops import deadletters
from leadops.core.clock import ensure_utc
from leadops.delivery.suppression import NurtureScope, leave_nurture
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    ESCALATION_NOTIFICATIONS,
    ESCALATIONS,
    STAGE_CHANGES,
    DeadLetterItem,
    Escalation,
    EscalationAssignment,
    EscalationNotification,
    EscalationStatus,
    Lead,
    LifecycleStage,
    NotificationStatus,
)
from leadops.sales.loads import current_loads as current_loads
from leadops.sales.notify import deliver_notifications
from leadops.sales.routing import (
    Contact,
    LeadProfile,
    RouteDecision,
    RoutingConfig,
    add_working_minutes,
    route,
)
from leadops.sales.runtime import EscalationRuntime
from leadops.sales.triggers import IMPORTED_SQL, SQL_TRIGGERS, raised_on
from leadops.sales.triggers import SQL_ESCALATION as SQL_ESCALATION

FALLBACK_QUEUE = "fallback"
LEAD_ROLE = "lead"  # the notification row of the lead's hand-off intro
TOP_REASONS = 5

ReasonLike = str | Mapping[str, Any]


class EscalationError(ValueError):
    """A request the escalation records cannot satisfy (unknown id, wrong state...)."""


@dataclass
class EscalationResult:
    escalation_id: int | None
    created: bool
    status: str
    rep_key: str | None
    rule: str
    detail: str
    notifications: int = 0  # recorded with it


def normalise_reasons(reasons: Sequence[ReasonLike]) -> list[dict[str, Any]]:
    """Reasons as [{"reason": text, "points": n or None}], strongest first, at most five."""
    cleaned: list[dict[str, Any]] = []
    for index, item in enumerate(reasons):
        if isinstance(item, str):
            text, points = item, None
        elif isinstance(item, Mapping):
            text = str(item.get("reason") or item.get("rule") or "").strip()
            raw = item.get("points")
            points = int(raw) if isinstance(raw, int | float) else None
        else:
            raise EscalationError(f"reason {index} must be text or a mapping, got {item!r}")
        if not text.strip():
            raise EscalationError(f"reason {index} is empty")
        cleaned.append({"reason": text.strip()[:300], "points": points})
    cleaned.sort(key=lambda reason: -(reason["points"] or 0))
    return cleaned[:TOP_REASONS]


def account_owner(session: Session, domain: str | None) -> str | None:
    """The rep who last held an escalation for this company domain."""
    if domain is None:
        return None
    e = ESCALATIONS.c
    owner = session.execute(
        select(e.rep_key)
        .where(e.account_domain == domain, e.rep_key.is_not(None))
        .order_by(e.updated_at.desc(), e.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return str(owner) if owner is not None else None


def profile_of(routing: RoutingConfig, lead: Lead) -> LeadProfile:
    return LeadProfile(
        account_domain=routing.account_domain(lead.email),
        country=lead.country,
        industry=lead.industry,
        language=routing.language_of(lead.country),
        grade=lead.grade,
        band=lead.band,
        properties=lead.properties,
        source=lead.source,
        size_tier=routing.size_tier_of(lead.company_size),
    )


def _addresses(contact: Contact) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for channel in contact.notify:
        if channel == "email" and contact.email:
            found.append((channel, contact.email))
        elif channel == "whatsapp" and contact.whatsapp:
            found.append((channel, contact.whatsapp))
        elif channel == "sms" and contact.sms:
            found.append((channel, contact.sms))
        elif channel == "slack" and contact.slack_env:
            found.append((channel, f"env:{contact.slack_env}"))
    return found


def assign(
    session: Session,
    runtime: EscalationRuntime,
    escalation: Escalation,
    decision: RouteDecision,
    *,
    seq: int,
    now: datetime,
) -> EscalationAssignment:
    """Write the assignment (audit row), point the escalation at it and record who is told."""
    assert escalation.id is not None
    routing = runtime.routing
    rep = decision.rep
    due = add_working_minutes(rep, now, routing.sla_minutes) if rep is not None else None
    assignment = EscalationAssignment(
        escalation_id=escalation.id,
        seq=seq,
        rep_key=rep.key if rep else None,
        queue=None if rep else FALLBACK_QUEUE,
        rule=decision.rule,
        detail=decision.detail[:2000],
        assigned_at=now,
        sla_due_at=due,
    )
    session.add(assignment)
    session.flush()
    assert assignment.id is not None
    escalation.rep_key = assignment.rep_key
    escalation.queue = assignment.queue
    escalation.assignment_id = assignment.id
    escalation.sla_due_at = due
    escalation.updated_at = now

    told: list[tuple[str, Contact]] = []
    if rep is not None:
        told.append(("rep", rep))
    else:
        told.append(("queue", routing.fallback_queue))
    if seq > 1 or rep is None:
        told.append(("manager", routing.manager))
    for role, contact in told:
        for channel, address in _addresses(contact):
            session.add(
                EscalationNotification(
                    escalation_id=escalation.id,
                    assignment_id=assignment.id,
                    role=role,
                    recipient=contact.name,
                    channel=channel,
                    address=address,
                    not_before=now,
                    created_at=now,
                )
            )
    if seq == 1:
        _record_intro(session, runtime, escalation, assignment, now)
    session.flush()
    return assignment


def _record_intro(
    session: Session,
    runtime: EscalationRuntime,
    escalation: Escalation,
    assignment: EscalationAssignment,
    now: datetime,
) -> None:
    """The lead's hand-off intro, with the first assignment only (never at a re-route),
    when routing.yaml's `intro:` sends one for this trigger. It is recorded on the first
    channel the lead has an address on; the contact policy decides at send time (and may
    move it to the next channel). No address at all: recorded skipped."""
    channels = runtime.routing.intro.channels(escalation.trigger)
    if not channels:
        return
    lead = session.get(Lead, escalation.lead_id)
    assert lead is not None and escalation.id is not None and assignment.id is not None
    addresses = {"email": lead.email, "whatsapp": lead.phone}
    reachable = [(channel, addresses.get(channel)) for channel in channels]
    channel, address = next(((c, a) for c, a in reachable if a), (channels[0], None))
    names = " ".join(part for part in (lead.first_name, lead.last_name) if part)
    session.add(
        EscalationNotification(
            escalation_id=escalation.id,
            assignment_id=assignment.id,
            role=LEAD_ROLE,
            recipient=(names or lead.email or lead.phone or f"lead {lead.id}")[:200],
            channel=channel,
            address=address or "-",
            status=NotificationStatus.PENDING if address else NotificationStatus.SKIPPED,
            error=None if address else "no_address",
            not_before=now,
            created_at=now,
        )
    )


def sql_crossing(session: Session, lead_id: int) -> str | None:
    """Why the score took the lead to SQL since its last escalation (the stage change's
    reason, "score 85 reached the sql threshold 80"); None when no score change did, so
    the stage came from the import."""
    c, e = STAGE_CHANGES.c, ESCALATIONS.c
    last = select(func.max(e.created_at)).where(e.lead_id == lead_id).scalar_subquery()
    reason = session.execute(
        select(c.reason)
        .where(
            c.lead_id == lead_id,
            c.to_stage == LifecycleStage.SQL,
            or_(last.is_(None), c.changed_at >= last),
        )
        .order_by(c.changed_at.desc(), c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return str(reason) if reason is not None else None


def _trigger_detail(session: Session, lead: Lead, trigger: str) -> str | None:
    """What is true of the trigger now, recorded with the escalation (see
    leadops.sales.triggers): the crossing, the import source, the reply's channel."""
    assert lead.id is not None
    if trigger == SQL_ESCALATION:
        return sql_crossing(session, lead.id)
    if trigger == IMPORTED_SQL:
        return lead.source
    if trigger == "reply_intent":
        return raised_on(trigger)
    return None


def _hand_off(session: Session, lead_id: int, now: datetime) -> None:
    """The lead leaves nurture: its active enrollment ends and every unsent touch is skipped."""
    leave_nurture(
        session.connection(),
        lead_id,
        "escalated",
        now,
        scope=NurtureScope.LEAD,
        end_reason="escalated to sales",
    )


def _existing(session: Session, lead_id: int, trigger: str, trigger_key: str) -> EscalationResult:
    e = ESCALATIONS.c
    # one SQL crossing is escalated once, as sql_threshold or imported_sql
    same_kind = SQL_TRIGGERS if trigger in SQL_TRIGGERS else {trigger}
    same = session.execute(
        select(Escalation)
        .where(e.lead_id == lead_id, e.trigger.in_(same_kind), e.trigger_key == trigger_key)
        .limit(1)
    ).scalar_one_or_none()
    if same is not None:
        return EscalationResult(
            same.id, False, same.status, same.rep_key, "duplicate", "already escalated for it"
        )
    active = session.execute(
        select(Escalation).where(e.lead_id == lead_id, e.status.in_(ACTIVE_ESCALATION_STATUSES))
    ).scalar_one_or_none()
    if active is not None:
        return EscalationResult(
            active.id,
            False,
            active.status,
            active.rep_key,
            "already_active",
            f"lead already has active escalation #{active.id}",
        )
    raise LookupError


def _escalate_in(
    session: Session,
    runtime: EscalationRuntime,
    *,
    lead_id: int,
    trigger: str,
    trigger_key: str,
    score: int,
    reasons: list[dict[str, Any]],
    now: datetime,
    started_at: datetime | None,
) -> EscalationResult:
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise EscalationError(f"no lead with id {lead_id}")
    try:
        return _existing(session, lead_id, trigger, trigger_key)
    except LookupError:
        pass
    routing = runtime.routing
    profile = profile_of(routing, lead)
    decision = route(
        routing,
        profile,
        now=now,
        loads=current_loads(session, routing, now),
        owner=account_owner(session, profile.account_domain),
    )
    detail = _trigger_detail(session, lead, trigger)
    escalation = Escalation(
        lead_id=lead_id,
        trigger=trigger,
        trigger_key=trigger_key,
        trigger_detail=detail[:300] if detail else None,
        score=score,
        reasons=reasons,
        account_domain=profile.account_domain,
        status=EscalationStatus.OPEN,
        started_at=started_at or (lead.created_at if trigger in SQL_TRIGGERS else now),
        created_at=now,
        updated_at=now,
    )
    session.add(escalation)
    session.flush()
    assign(session, runtime, escalation, decision, seq=1, now=now)
    _hand_off(session, lead_id, now)
    notifications = session.execute(
        select(func.count()).where(ESCALATION_NOTIFICATIONS.c.escalation_id == escalation.id)
    ).scalar_one()
    return EscalationResult(
        escalation.id,
        True,
        escalation.status,
        escalation.rep_key,
        decision.rule,
        decision.detail,
        notifications,
    )


def escalate(
    target: Session | Engine,
    lead_id: int,
    trigger: str,
    trigger_key: str,
    score: int,
    reasons: Sequence[ReasonLike],
    now: datetime,
    *,
    runtime: EscalationRuntime,
    deliver: bool = True,
    started_at: datetime | None = None,
) -> EscalationResult:
    """Escalate a sales-ready lead: route it, record it and who is told, notify.

    Nothing is escalated twice for the same (lead, trigger, trigger key), and a lead with an
    active escalation is not escalated again (the result says so, `created` False).

    Given an Engine, this commits and sends the notifications at once. Given a Session (the
    rescore run's), it only adds rows to that session: the caller commits, then calls
    `deliver_notifications` (the every-minute escalate flow also sends whatever is due).
    `deliver=False` records without sending (a batch sends once at its end).

    `started_at` starts the speed-to-lead clock: the moment a hand was raised; by default
    the lead's creation for `sql_threshold` and `imported_sql`, else now. What was true of
    the trigger (leadops.sales.triggers) is recorded with it.
    """
    now = ensure_utc(now)
    if not trigger or not trigger.replace("_", "").isalnum() or len(trigger) > 40:
        raise EscalationError(f"trigger {trigger!r} must be a short word such as sql_threshold")
    if not trigger_key or len(trigger_key) > 200:
        raise EscalationError("trigger_key must be 1 to 200 characters")
    cleaned = normalise_reasons(reasons)
    arguments: dict[str, Any] = {
        "lead_id": lead_id,
        "trigger": trigger,
        "trigger_key": trigger_key,
        "score": int(score),
        "reasons": cleaned,
        "now": now,
        "started_at": ensure_utc(started_at) if started_at is not None else None,
    }
    if isinstance(target, Session):
        return _escalate_in(target, runtime, **arguments)
    with Session(target, expire_on_commit=False) as session:
        try:
            result = _escalate_in(session, runtime, **arguments)
            session.commit()
        except IntegrityError as exc:  # a concurrent run escalated the same lead first
            session.rollback()
            try:
                return _existing(session, lead_id, trigger, trigger_key)
            except LookupError:
                raise EscalationError(f"lead {lead_id}: could not record: {exc.orig}") from exc
    if result.created and deliver:
        deliver_notifications(runtime, now, escalation_id=result.escalation_id)
    return result


def escalate_or_set_aside(
    runtime: EscalationRuntime,
    lead_id: int,
    trigger: str,
    trigger_key: str,
    score: int,
    reasons: Sequence[ReasonLike],
    now: datetime,
    *,
    started_at: datetime | None = None,
) -> EscalationResult | None:
    """`escalate()` without sending, for a batch: when it fails for this lead (nothing of
    it is kept), the lead is recorded as a dead letter with what a retry needs, and None
    is returned so the batch goes on."""
    try:
        return escalate(
            runtime.engine,
            lead_id,
            trigger,
            trigger_key,
            score,
            reasons,
            now,
            runtime=runtime,
            deliver=False,
            started_at=started_at,
        )
    except Exception as exc:
        if deadletters.must_raise(exc):
            raise
        payload = {
            "lead_id": lead_id,
            "trigger": trigger,
            "trigger_key": trigger_key,
            "score": int(score),
            "reasons": [r if isinstance(r, str) else dict(r) for r in reasons],
        }
        with runtime.engine.begin() as connection:
            deadletters.record(
                connection,
                item=DeadLetterItem.ESCALATION,
                item_id=lead_id,
                stage="escalation",
                error=deadletters.describe(exc),
                payload=payload,
                now=now,
                key=f"escalation:{lead_id}:{trigger}:{trigger_key}",
            )
        return None
