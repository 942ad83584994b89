"""Escalation: hand a sales-ready lead to the right rep, notify them, chase until acknowledged.

- `escalate()` records an escalation once per (lead, trigger, trigger key) and at most one
  active per lead, routes it (leadops.sales.routing), writes the assignment to the audit table,
  takes the lead out of nurture and records its notifications before any is sent.
- `deliver_notifications()` (leadops.sales.notify) sends recorded notifications
  exactly once.
- `check_slas()` re-routes what was not acknowledged within the SLA, tells the manager and,
  after `max_reroutes`, hands it to the fallback queue.
- `acknowledge()` and `close()` are what the signed link, the CLI and reps call.
- `find_sales_ready()` escalates SQL leads that have no active escalation.
- `escalate_or_set_aside()` is how batches escalate: a lead that cannot be routed or
  recorded becomes a dead letter (leadops.deadletters) and the batch goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import exists, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from leadops import deadletters
from leadops.core.clock import ensure_utc
from leadops.core.settings import Settings
from leadops.delivery.render import Renderer
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    AWAITING_ACK_STATUSES,
    ENROLLMENTS,
    ESCALATION_ASSIGNMENTS,
    ESCALATION_NOTIFICATIONS,
    ESCALATIONS,
    LEADS,
    TOUCHES,
    DeadLetterItem,
    EnrollmentStatus,
    Escalation,
    EscalationAssignment,
    EscalationNotification,
    EscalationStatus,
    Lead,
    LifecycleStage,
    TouchStatus,
)
from leadops.providers.base import ChannelSender
from leadops.sales.notify import NotifyReport, deliver_notifications
from leadops.sales.routing import (
    Contact,
    LeadProfile,
    Loads,
    RouteDecision,
    RoutingConfig,
    add_working_minutes,
    load_routing,
    route,
)

log = logging.getLogger("leadops.escalation")

FALLBACK_QUEUE = "fallback"
TOP_REASONS = 5

ReasonLike = str | Mapping[str, Any]
ReasonsFor = Callable[[Session, Lead], Sequence[ReasonLike]]


class EscalationError(ValueError):
    """A request the escalation records cannot satisfy (unknown id, wrong state...)."""


@dataclass
class EscalationRuntime:
    """What escalation needs, loaded once: settings, database, routing, templates, channels.

    `channels` maps email, whatsapp and slack to ChannelSenders: the same senders nurture
    uses (file outbox by default, the providers when configured) plus the Slack webhook.
    """

    settings: Settings
    engine: Engine
    routing: RoutingConfig
    renderer: Renderer
    channels: Mapping[str, ChannelSender]


def routing_path(settings: Settings) -> Path:
    return settings.routing_file or settings.config_dir / "routing.yaml"


def load_escalation_runtime(
    settings: Settings,
    *,
    engine: Engine | None = None,
    channels: Mapping[str, ChannelSender] | None = None,
) -> EscalationRuntime:
    """Load routing.yaml and the channels; fail early with clear errors."""
    from leadops.core.db import ensure_ready, make_engine
    from leadops.providers.select import build_channels
    from leadops.providers.slack import SlackWebhookChannel

    routing = load_routing(routing_path(settings))
    if engine is None:
        engine = make_engine(settings.resolved_database_url)
    ensure_ready(engine)
    if channels is None:
        channels = {
            **build_channels(settings),
            "slack": SlackWebhookChannel(timeout=settings.slack_timeout_seconds),
        }
    return EscalationRuntime(
        settings=settings,
        engine=engine,
        routing=routing,
        renderer=Renderer(settings.templates_dir),
        channels=channels,
    )


# -- records ------------------------------------------------------------------------------


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


def _loads(session: Session, routing: RoutingConfig, now: datetime) -> Loads:
    e, a = ESCALATIONS.c, ESCALATION_ASSIGNMENTS.c
    open_rows = session.execute(
        select(e.rep_key, func.count())
        .where(e.status.in_(ACTIVE_ESCALATION_STATUSES), e.rep_key.is_not(None))
        .group_by(e.rep_key)
    ).all()
    since = now - timedelta(days=routing.balance_days)
    recent_rows = session.execute(
        select(a.rep_key, func.count())
        .where(a.rep_key.is_not(None), a.assigned_at >= since)
        .group_by(a.rep_key)
    ).all()
    return Loads(
        open={str(key): int(n) for key, n in open_rows},
        recent={str(key): int(n) for key, n in recent_rows},
    )


def _account_owner(session: Session, domain: str | None) -> str | None:
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
    )


def _addresses(contact: Contact) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for channel in contact.notify:
        if channel == "email" and contact.email:
            found.append((channel, contact.email))
        elif channel == "whatsapp" and contact.whatsapp:
            found.append((channel, contact.whatsapp))
        elif channel == "slack" and contact.slack_env:
            found.append((channel, f"env:{contact.slack_env}"))
    return found


def _assign(
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
    session.flush()
    return assignment


def _hand_off(session: Session, lead_id: int, now: datetime) -> None:
    """The lead leaves nurture: its active enrollment ends and unsent touches are skipped."""
    session.execute(
        update(ENROLLMENTS)
        .where(ENROLLMENTS.c.lead_id == lead_id, ENROLLMENTS.c.status == EnrollmentStatus.ACTIVE)
        .values(status=EnrollmentStatus.EXITED, ended_at=now, end_reason="escalated to sales")
    )
    session.execute(
        update(TOUCHES)
        .where(TOUCHES.c.lead_id == lead_id, TOUCHES.c.status == TouchStatus.PENDING)
        .values(status=TouchStatus.SKIPPED, hold_reason="escalated", updated_at=now)
    )


def _existing(session: Session, lead_id: int, trigger: str, trigger_key: str) -> EscalationResult:
    e = ESCALATIONS.c
    same = session.execute(
        select(Escalation).where(
            e.lead_id == lead_id, e.trigger == trigger, e.trigger_key == trigger_key
        )
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
        loads=_loads(session, routing, now),
        owner=_account_owner(session, profile.account_domain),
    )
    escalation = Escalation(
        lead_id=lead_id,
        trigger=trigger,
        trigger_key=trigger_key,
        score=score,
        reasons=reasons,
        account_domain=profile.account_domain,
        status=EscalationStatus.OPEN,
        created_at=now,
        updated_at=now,
    )
    session.add(escalation)
    session.flush()
    _assign(session, runtime, escalation, decision, seq=1, now=now)
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
) -> EscalationResult:
    """Escalate a sales-ready lead: route it, record it and who is told, notify.

    Nothing is escalated twice for the same (lead, trigger, trigger key), and a lead with an
    active escalation is not escalated again (the result says so, `created` False).

    Given an Engine, this commits and sends the notifications at once. Given a Session (the
    rescore run's), it only adds rows to that session: the caller commits, then calls
    `deliver_notifications` (the every-minute escalate flow also sends whatever is due).
    `deliver=False` records without sending (a batch sends once at its end).
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


# -- SLA loop -----------------------------------------------------------------------------


@dataclass
class SlaReport:
    rerouted: int = 0
    to_queue: int = 0
    failed: int = 0  # could not be re-routed: set aside as dead letters, tried again


def check_slas(runtime: EscalationRuntime, now: datetime, *, deliver: bool = True) -> SlaReport:
    """Re-route every escalation whose SLA passed unacknowledged; after `max_reroutes`
    re-routes (or when no eligible rep is left) it goes to the fallback queue. The manager
    is told each time; the notifications go out at once unless `deliver` is False."""
    now = ensure_utc(now)
    report = SlaReport()
    e = ESCALATIONS.c
    with Session(runtime.engine, expire_on_commit=False) as session:
        due = list(
            session.execute(
                select(e.id)
                .where(e.status.in_(AWAITING_ACK_STATUSES), e.sla_due_at <= now)
                .order_by(e.sla_due_at, e.id)
            ).scalars()
        )
    for escalation_id in due:
        try:
            decision = _reroute(runtime, escalation_id, now)
        except Exception as exc:  # this one is set aside; the SLA check tries it again
            if deadletters.must_raise(exc):
                raise
            report.failed += 1
            with runtime.engine.begin() as connection:
                deadletters.record(
                    connection,
                    item=DeadLetterItem.ESCALATION,
                    item_id=None,
                    stage="escalation",
                    error=f"re-route of escalation {escalation_id}: {deadletters.describe(exc)}",
                    payload={"reroute": escalation_id},
                    now=now,
                    key=f"escalation:reroute:{escalation_id}",
                )
            continue
        if decision is None:
            continue
        deadletters.resolve(runtime.engine, f"escalation:reroute:{escalation_id}", now)
        if decision.rep is None:
            report.to_queue += 1
        else:
            report.rerouted += 1
        log.warning(
            "escalation %s not acknowledged in time: re-routed to %s (%s)",
            escalation_id,
            decision.rep.key if decision.rep else "the fallback queue",
            decision.detail,
        )
    if deliver and (report.rerouted or report.to_queue):
        deliver_notifications(runtime, now)
    return report


def _reroute(runtime: EscalationRuntime, escalation_id: int, now: datetime) -> RouteDecision | None:
    """Re-route one escalation past its SLA (one transaction); None when it no longer
    needs it (acknowledged or closed meanwhile)."""
    e = ESCALATIONS.c
    with Session(runtime.engine, expire_on_commit=False) as session:
        escalation = session.get(Escalation, escalation_id)
        assert escalation is not None
        previous_id = escalation.assignment_id
        if escalation.status not in AWAITING_ACK_STATUSES or escalation.sla_due_at is None:
            return None
        decision = _reroute_decision(session, runtime, escalation, now)
        moved = session.execute(
            update(ESCALATIONS)
            .where(
                e.id == escalation_id,
                e.assignment_id == previous_id,
                e.status.in_(AWAITING_ACK_STATUSES),
            )
            .values(status=EscalationStatus.REROUTED, reroutes=e.reroutes + 1)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]  # acknowledged meanwhile
            session.rollback()
            return None
        session.execute(
            update(ESCALATION_ASSIGNMENTS)
            .where(ESCALATION_ASSIGNMENTS.c.id == previous_id)
            .values(ended_at=now, end_reason="sla_missed")
        )
        session.refresh(escalation)
        seq = (
            1
            + session.execute(
                select(func.max(ESCALATION_ASSIGNMENTS.c.seq)).where(
                    ESCALATION_ASSIGNMENTS.c.escalation_id == escalation_id
                )
            ).scalar_one()
        )
        _assign(session, runtime, escalation, decision, seq=seq, now=now)
        session.commit()
    return decision


def _reroute_decision(
    session: Session, runtime: EscalationRuntime, escalation: Escalation, now: datetime
) -> RouteDecision:
    routing = runtime.routing
    if escalation.reroutes >= routing.max_reroutes:
        return RouteDecision(
            None, "fallback", f"not acknowledged after {escalation.reroutes} re-route(s)"
        )
    tried = {
        str(key)
        for key in session.execute(
            select(ESCALATION_ASSIGNMENTS.c.rep_key).where(
                ESCALATION_ASSIGNMENTS.c.escalation_id == escalation.id,
                ESCALATION_ASSIGNMENTS.c.rep_key.is_not(None),
            )
        ).scalars()
    }
    lead = session.get(Lead, escalation.lead_id)
    assert lead is not None
    return route(
        routing,
        profile_of(routing, lead),
        now=now,
        loads=_loads(session, routing, now),
        owner=_account_owner(session, escalation.account_domain),
        exclude=tried,
    )


# -- acknowledge and close ----------------------------------------------------------------


@dataclass
class AckResult:
    ok: bool
    message: str
    escalation_id: int


def acknowledge(
    engine: Engine,
    escalation_id: int,
    *,
    now: datetime,
    by: str,
    assignment_id: int | None = None,
) -> AckResult:
    """Acknowledge an escalation. With `assignment_id` (a signed link), only while that
    assignment is the current one. Acknowledging twice is harmless."""
    now = ensure_utc(now)
    e = ESCALATIONS.c
    with Session(engine, expire_on_commit=False) as session:
        escalation = session.get(Escalation, escalation_id)
        if escalation is None:
            raise EscalationError(f"no escalation with id {escalation_id}")
        if escalation.status == EscalationStatus.ACKNOWLEDGED and assignment_id in (
            None,
            escalation.assignment_id,
        ):
            when = f"{escalation.acknowledged_at:%Y-%m-%d %H:%M} UTC"
            message = f"already acknowledged by {escalation.acknowledged_by} at {when}"
            return AckResult(True, message, escalation_id)
        if escalation.status not in AWAITING_ACK_STATUSES:
            return AckResult(False, f"escalation is {escalation.status}", escalation_id)
        if assignment_id is not None and assignment_id != escalation.assignment_id:
            holder = escalation.rep_key or "the fallback queue"
            message = f"this link is out of date: the lead was re-routed to {holder}"
            return AckResult(False, message, escalation_id)
        current = escalation.assignment_id
        done = session.execute(
            update(ESCALATIONS)
            .where(
                e.id == escalation_id,
                e.assignment_id == current,
                e.status.in_(AWAITING_ACK_STATUSES),
            )
            .values(
                status=EscalationStatus.ACKNOWLEDGED,
                acknowledged_at=now,
                acknowledged_by=by[:200],
                updated_at=now,
            )
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return AckResult(False, "the escalation changed meanwhile; try again", escalation_id)
        session.execute(
            update(ESCALATION_ASSIGNMENTS)
            .where(ESCALATION_ASSIGNMENTS.c.id == current)
            .values(ended_at=now, end_reason="acknowledged")
        )
        session.commit()
    return AckResult(True, f"acknowledged by {by}", escalation_id)


Outcome = Literal["won", "lost", "not_ready"]
OUTCOMES: dict[str, tuple[EscalationStatus, LifecycleStage]] = {
    # closed-won: a customer; lost or not ready: back into nurture (a lead left at `sql`
    # would only be escalated again by the next scan)
    "won": (EscalationStatus.CLOSED_WON, LifecycleStage.CUSTOMER),
    "lost": (EscalationStatus.CLOSED_LOST, LifecycleStage.RECYCLED),
    "not_ready": (EscalationStatus.RECYCLED, LifecycleStage.RECYCLED),
}


def close(
    engine: Engine,
    escalation_id: int,
    outcome: str,
    *,
    now: datetime,
    by: str,
    note: str | None = None,
) -> Escalation:
    """Close an escalation: won makes the lead a customer; lost or not ready recycles it
    into nurture (lifecycle stage `recycled`)."""
    if outcome not in OUTCOMES:
        raise EscalationError(f"outcome {outcome!r}: use {', '.join(OUTCOMES)}")
    status, stage = OUTCOMES[outcome]
    now = ensure_utc(now)
    with Session(engine, expire_on_commit=False) as session:
        escalation = session.get(Escalation, escalation_id)
        if escalation is None:
            raise EscalationError(f"no escalation with id {escalation_id}")
        if escalation.status == status:
            return escalation
        if escalation.status not in ACTIVE_ESCALATION_STATUSES:
            raise EscalationError(f"escalation {escalation_id} is already {escalation.status}")
        escalation.status = status
        escalation.closed_at = now
        escalation.closed_by = by[:200]
        escalation.close_note = note
        escalation.sla_due_at = None
        escalation.updated_at = now
        session.execute(
            update(ESCALATION_ASSIGNMENTS)
            .where(
                ESCALATION_ASSIGNMENTS.c.id == escalation.assignment_id,
                ESCALATION_ASSIGNMENTS.c.ended_at.is_(None),
            )
            .values(ended_at=now, end_reason=f"closed {outcome}")
        )
        session.execute(
            update(LEADS)
            .where(LEADS.c.id == escalation.lead_id)
            .values(lifecycle_stage=stage, updated_at=now)
        )
        session.commit()
        return escalation


# -- the scan -----------------------------------------------------------------------------


def default_reasons(session: Session, lead: Lead) -> list[dict[str, Any]]:
    """Why a lead is sales-ready: the top rules of its score ledger, then stage and score."""
    from leadops.engagement.rescore import breakdowns
    from leadops.engagement.scoring import top_reason_items

    assert lead.id is not None
    explained = breakdowns(session.connection(), [lead.id]).get(lead.id, [])
    reasons: list[dict[str, Any]] = top_reason_items(explained)
    reasons += [
        {"reason": "lifecycle stage is SQL"},
        {"reason": f"lead score {lead.score}"},
    ]
    if lead.last_inbound_at is not None:
        reasons.append({"reason": f"last replied {lead.last_inbound_at:%Y-%m-%d %H:%M} UTC"})
    if lead.last_engaged_at is not None:
        reasons.append({"reason": f"last engaged {lead.last_engaged_at:%Y-%m-%d %H:%M} UTC"})
    return reasons


def find_sales_ready(
    runtime: EscalationRuntime,
    now: datetime,
    *,
    limit: int | None = None,
    reasons_for: ReasonsFor | None = None,
    deliver: bool = True,
) -> list[EscalationResult]:
    """Escalate every lead at lifecycle stage `sql` that has no active escalation.

    The trigger is `sql_threshold`, keyed by how many escalations the lead had before, so a
    lead that comes back to SQL after being recycled is escalated again, once.
    """
    now = ensure_utc(now)
    e = ESCALATIONS.c
    active = exists().where(e.lead_id == LEADS.c.id, e.status.in_(ACTIVE_ESCALATION_STATUSES))
    set_aside = LEADS.c.id.in_(deadletters.open_escalation_leads())
    with Session(runtime.engine, expire_on_commit=False) as session:
        leads = list(
            session.execute(
                select(Lead)
                .where(LEADS.c.lifecycle_stage == LifecycleStage.SQL, ~active, ~set_aside)
                .order_by(LEADS.c.id)
                .limit(limit or runtime.settings.escalation_scan_limit)
            ).scalars()
        )
        plans = []
        for lead in leads:
            assert lead.id is not None
            before = session.execute(select(func.count()).where(e.lead_id == lead.id)).scalar_one()
            key = f"stage-sql-{before + 1}"
            try:
                reasons = (reasons_for or default_reasons)(session, lead)
            except Exception as exc:  # recorded below, through escalate's own checks
                if deadletters.must_raise(exc):
                    raise
                reasons = [{"reason": f"reasons unavailable: {deadletters.describe(exc)}"}]
            plans.append((lead.id, key, lead.score, reasons))
    results = []
    for lead_id, key, score, reasons in plans:
        result = escalate_or_set_aside(runtime, lead_id, "sql_threshold", key, score, reasons, now)
        if result is not None:
            results.append(result)
    if deliver and any(result.created for result in results):
        deliver_notifications(runtime, now)
    return results


@dataclass
class RunReport:
    escalated: int = 0
    rerouted: int = 0
    to_queue: int = 0
    notify: NotifyReport = field(default_factory=NotifyReport)


def run_escalations(runtime: EscalationRuntime, now: datetime) -> RunReport:
    """One pass of the every-minute loop: scan for SQL leads, apply SLAs, send what is due."""
    report = RunReport()
    report.escalated = sum(r.created for r in find_sales_ready(runtime, now, deliver=False))
    sla = check_slas(runtime, now, deliver=False)
    report.rerouted, report.to_queue = sla.rerouted, sla.to_queue
    report.notify = deliver_notifications(runtime, now)
    return report


# -- views for the CLI --------------------------------------------------------------------


def preview_route(runtime: EscalationRuntime, lead_id: int, now: datetime) -> RouteDecision:
    """Who would get this lead now, and why (nothing is written)."""
    with Session(runtime.engine) as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise EscalationError(f"no lead with id {lead_id}")
        profile = profile_of(runtime.routing, lead)
        return route(
            runtime.routing,
            profile,
            now=ensure_utc(now),
            loads=_loads(session, runtime.routing, now),
            owner=_account_owner(session, profile.account_domain),
        )


def escalation_rows(
    engine: Engine, *, status: str | None = "active", rep: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Escalations with their lead's email and company, newest first. `status` "active"
    means open, acknowledged or re-routed; None or "all" means every status."""
    e = ESCALATIONS.c
    query = (
        select(ESCALATIONS, LEADS.c.email, LEADS.c.company)
        .join(LEADS, LEADS.c.id == e.lead_id)
        .order_by(e.id.desc())
    )
    if status == "active":
        query = query.where(e.status.in_(ACTIVE_ESCALATION_STATUSES))
    elif status not in (None, "all"):
        known = {s.value for s in EscalationStatus}
        if status not in known:
            raise EscalationError(f"unknown status {status!r}; use active, all or {sorted(known)}")
        query = query.where(e.status == status)
    if rep:
        query = query.where(e.rep_key == rep)
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        row["assignee"] = row["rep_key"] or f"queue:{row['queue']}"
    return rows


def lead_escalations(engine: Engine, lead_id: int) -> list[dict[str, Any]]:
    """One lead's escalations, oldest first: id, trigger, status, assignee, created_at."""
    e = ESCALATIONS.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(e.id, e.trigger, e.status, e.rep_key, e.queue, e.created_at)
            .where(e.lead_id == lead_id)
            .order_by(e.id)
        ).all()
    return [
        {
            "id": row.id,
            "trigger": row.trigger,
            "status": row.status,
            "assignee": row.rep_key or f"queue:{row.queue}",
            "created_at": row.created_at,
        }
        for row in rows
    ]


def escalation_detail(engine: Engine, escalation_id: int) -> dict[str, Any]:
    """One escalation with its reasons, assignments (the audit trail) and notifications."""
    with Session(engine) as session:
        escalation = session.get(Escalation, escalation_id)
        if escalation is None:
            raise EscalationError(f"no escalation with id {escalation_id}")
        assignments = session.execute(
            select(EscalationAssignment)
            .where(ESCALATION_ASSIGNMENTS.c.escalation_id == escalation_id)
            .order_by(ESCALATION_ASSIGNMENTS.c.seq)
        ).scalars()
        notifications = session.execute(
            select(EscalationNotification)
            .where(ESCALATION_NOTIFICATIONS.c.escalation_id == escalation_id)
            .order_by(ESCALATION_NOTIFICATIONS.c.id)
        ).scalars()
        record = escalation.model_dump()
        return {
            "escalation": {key: record[key] for key in Escalation.model_fields if key != "reasons"},
            "reasons": list(escalation.reasons),
            "assignments": [
                {**a.model_dump(), "assignee": a.rep_key or f"queue:{a.queue}"} for a in assignments
            ],
            "notifications": [n.model_dump() for n in notifications],
        }
