"""One nurture tick (segment, plan, dispatch) and a simulation that runs ticks through time.

This is what the Prefect flow, the CLI and the tests all call; it needs no Prefect.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.campaigns import Campaign, StoredCampaigns, load_campaigns, register_versions
from leadops.channels.base import ChannelSender
from leadops.clock import Clock, SimulatedClock
from leadops.db import ensure_ready, make_engine
from leadops.delivery import build_channels, check_channel_config
from leadops.dispatch import Dispatcher, DispatchReport
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    ENROLLMENTS,
    ESCALATIONS,
    FINAL_TOUCH_STATUSES,
    TOUCHES,
    CampaignVersion,
    Enrollment,
    EnrollmentStatus,
    Lead,
    TouchStatus,
)
from leadops.planner import ActiveEnrollment, LeadState, Plan, next_step_due, plan_lead
from leadops.render import Renderer
from leadops.segments import LeadFacts, SegmentConfig, load_segments
from leadops.settings import Settings

log = logging.getLogger("leadops.nurture")

PLAN_BATCH = 1000


@dataclass
class Runtime:
    """Everything a tick needs, loaded once: settings, database, config, templates, channels."""

    settings: Settings
    engine: Engine
    campaigns: dict[str, Campaign]
    segments: SegmentConfig
    renderer: Renderer
    channels: dict[str, ChannelSender]
    stored: StoredCampaigns = field(default_factory=StoredCampaigns)  # versions never change


def load_runtime(settings: Settings, *, engine: Engine | None = None) -> Runtime:
    """Load and check config, templates folder and database; fail early with clear errors."""
    campaigns = load_campaigns(settings.config_dir)
    segments = load_segments(settings.config_dir, set(campaigns))
    check_channel_config(settings, campaigns)
    engine = engine or make_engine(settings.resolved_database_url)
    ensure_ready(engine)
    if not settings.templates_dir.is_dir():
        raise FileNotFoundError(f"templates folder {settings.templates_dir} does not exist")
    return Runtime(
        settings=settings,
        engine=engine,
        campaigns=campaigns,
        segments=segments,
        renderer=Renderer(settings.templates_dir),
        channels=build_channels(settings),
    )


@dataclass
class PlanReport:
    leads: int = 0
    enrolled: Counter[str] = field(default_factory=Counter)
    exited: int = 0
    completed: int = 0
    planned: int = 0
    planned_steps: Counter[tuple[str, str, str]] = field(default_factory=Counter)


@dataclass
class TickReport:
    now: datetime
    plan: PlanReport
    dispatch: DispatchReport


def _lead_batches(session: Session) -> Iterator[list[Lead]]:
    last_id = 0
    while True:
        batch = list(
            session.execute(
                select(Lead).where(Lead.id > last_id).order_by(Lead.id).limit(PLAN_BATCH)  # type: ignore[arg-type,operator]
            ).scalars()
        )
        if not batch:
            return
        yield batch
        last_id = batch[-1].id or 0


def _states(session: Session, leads: list[Lead]) -> list[tuple[Lead, Enrollment | None, LeadState]]:
    ids = [lead.id for lead in leads]
    enrollments = session.execute(
        select(Enrollment).where(Enrollment.lead_id.in_(ids))  # type: ignore[attr-defined]
    ).scalars()
    active: dict[int, Enrollment] = {}
    past: dict[int, set[str]] = {}
    for enrollment in enrollments:
        past.setdefault(enrollment.lead_id, set()).add(enrollment.campaign)
        if enrollment.status == EnrollmentStatus.ACTIVE:
            active[enrollment.lead_id] = enrollment
    escalated = set(
        session.execute(
            select(ESCALATIONS.c.lead_id).where(
                ESCALATIONS.c.lead_id.in_(ids),
                ESCALATIONS.c.status.in_(ACTIVE_ESCALATION_STATUSES),
            )
        ).scalars()
    )
    planned: dict[int, set[tuple[str, str]]] = {}
    open_count: Counter[int] = Counter()
    if active:
        t = TOUCHES.c
        rows = session.execute(
            select(t.enrollment_id, t.step, t.channel, t.status).where(
                t.enrollment_id.in_([e.id for e in active.values()])
            )
        ).all()
        for enrollment_id, step, channel, status in rows:
            planned.setdefault(enrollment_id, set()).add((step, channel))
            if status not in FINAL_TOUCH_STATUSES:
                open_count[enrollment_id] += 1

    result = []
    for lead in leads:
        assert lead.id is not None
        enrollment = active.get(lead.id)
        state = LeadState(
            lead_id=lead.id,
            facts=LeadFacts(
                lifecycle_stage=lead.lifecycle_stage,
                country=lead.country,
                industry=lead.industry,
                seniority=lead.seniority,
                company_size=lead.company_size,
                score=lead.score,
                last_active_at=lead.last_engaged_at or lead.created_at,
            ),
            has_email=lead.email is not None,
            has_phone=lead.phone is not None,
            whatsapp_consent=lead.whatsapp_consent,
            segment=lead.segment,
            active=None
            if enrollment is None or enrollment.id is None
            else ActiveEnrollment(
                id=enrollment.id,
                campaign=enrollment.campaign,
                campaign_version_id=enrollment.campaign_version_id,
                started_at=enrollment.started_at,
                planned=frozenset(planned.get(enrollment.id, set())),
                open_touches=open_count[enrollment.id],
            ),
            past_campaigns=frozenset(past.get(lead.id, set())),
            in_sales_hands=lead.id in escalated,
        )
        result.append((lead, enrollment, state))
    return result


@dataclass
class _Writes:
    """What planning a batch of leads inserts, written in bulk at the end of the batch."""

    enrollments: list[dict[str, object]] = field(default_factory=list)
    touches: list[dict[str, object]] = field(default_factory=list)
    # touches of enrollments created in this batch, by lead, until their ids are known
    waiting: dict[int, list[dict[str, object]]] = field(default_factory=dict)


def _apply(
    plan: Plan,
    lead: Lead,
    enrollment: Enrollment | None,
    versions: dict[str, CampaignVersion],
    now: datetime,
    report: PlanReport,
    writes: _Writes,
) -> None:
    if plan.segment != lead.segment:
        lead.segment = plan.segment
        lead.updated_at = now
    if enrollment is not None and (plan.exit_reason or plan.complete):
        enrollment.status = EnrollmentStatus.COMPLETED if plan.complete else EnrollmentStatus.EXITED
        enrollment.ended_at = now
        enrollment.end_reason = plan.exit_reason or "cycle finished"
        report.completed += plan.complete
        report.exited += bool(plan.exit_reason)
    campaign: str | None = None
    version_id: int | None = None
    touches = writes.touches
    if plan.enroll_campaign is not None:
        version = versions[plan.enroll_campaign]
        campaign, version_id = plan.enroll_campaign, version.id or 0
        writes.enrollments.append(
            {
                "lead_id": plan.lead_id,
                "campaign": campaign,
                "campaign_version_id": version_id,
                "segment": plan.segment,
                "status": EnrollmentStatus.ACTIVE,
                "started_at": now,
            }
        )
        touches = writes.waiting.setdefault(plan.lead_id, [])
        report.enrolled[plan.enroll_campaign] += 1
    elif enrollment is not None:
        campaign, version_id = enrollment.campaign, enrollment.campaign_version_id
    if plan.touches:
        assert campaign is not None and version_id is not None
        for due in plan.touches:
            touches.append(
                {
                    "lead_id": plan.lead_id,
                    "enrollment_id": None if enrollment is None else enrollment.id,
                    "campaign": campaign,
                    "campaign_version_id": version_id,
                    "step": due.step,
                    "step_day": due.step_day,
                    "channel": due.channel,
                    "status": TouchStatus.PENDING,
                    "due_at": due.due_at,
                    "not_before": due.due_at,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        report.planned += len(plan.touches)
        for due in plan.touches:
            report.planned_steps[(campaign, due.step, due.channel)] += 1


def _plan_batch(
    session: Session,
    runtime: Runtime,
    batch: list[Lead],
    versions: dict[str, CampaignVersion],
    now: datetime,
    report: PlanReport,
) -> None:
    """Plan one batch of leads and write the result in bulk, in one transaction."""
    stored = runtime.stored
    states = _states(session, batch)
    writes = _Writes()
    for lead, enrollment, state in states:
        if state.active:
            stored.get(session, state.active.campaign_version_id)
        plan = plan_lead(
            state,
            segments=runtime.segments,
            campaigns=runtime.campaigns,
            enrolled_campaigns=stored.loaded(),
            now=now,
        )
        if plan.changes_anything or plan.segment != lead.segment:
            _apply(plan, lead, enrollment, versions, now, report, writes)
    _write(session, writes)
    report.leads += len(states)
    session.commit()


def _write(session: Session, writes: _Writes) -> None:
    """Flush lead and enrollment changes (exits first, so a lead has one active
    enrollment), then insert new enrollments and all touches in bulk."""
    session.flush()
    if writes.enrollments:
        created = session.execute(
            insert(ENROLLMENTS).returning(
                ENROLLMENTS.c.id, ENROLLMENTS.c.lead_id, sort_by_parameter_order=True
            ),
            writes.enrollments,
        ).all()
        for enrollment_id, lead_id in created:
            for touch in writes.waiting.get(lead_id, []):
                touch["enrollment_id"] = enrollment_id
                writes.touches.append(touch)
    if writes.touches:
        session.execute(insert(TOUCHES), writes.touches)


def plan_all(runtime: Runtime, now: datetime) -> PlanReport:
    """Segment every lead, move enrollments along and create the touches now due."""
    report = PlanReport()
    with Session(runtime.engine, expire_on_commit=False) as session:
        versions = register_versions(session, runtime.campaigns, now)
        for batch in _lead_batches(session):
            _plan_batch(session, runtime, batch, versions, now, report)
    log.info(
        "planned %s: %d leads, %d newly enrolled, %d exited, %d completed, %d touches created",
        now.isoformat(),
        report.leads,
        sum(report.enrolled.values()),
        report.exited,
        report.completed,
        report.planned,
    )
    return report


def plan_leads(runtime: Runtime, lead_ids: Iterable[int], now: datetime) -> PlanReport:
    """Segment and plan only these leads (the rescore run re-segments the leads it moved)."""
    ids = sorted(set(lead_ids))
    report = PlanReport()
    if not ids:
        return report
    with Session(runtime.engine, expire_on_commit=False) as session:
        versions = register_versions(session, runtime.campaigns, now)
        for start in range(0, len(ids), PLAN_BATCH):
            chunk = ids[start : start + PLAN_BATCH]
            batch = list(
                session.execute(
                    select(Lead).where(Lead.id.in_(chunk)).order_by(Lead.id)  # type: ignore[union-attr,arg-type]
                ).scalars()
            )
            _plan_batch(session, runtime, batch, versions, now, report)
    return report


def run_dispatch(
    runtime: Runtime, clock: Clock, *, progress: Callable[[int], None] | None = None
) -> DispatchReport:
    """Send everything due at clock.now() through the configured channels."""
    dispatcher = Dispatcher(
        runtime.engine,
        channels=runtime.channels,
        renderer=runtime.renderer,
        settings=runtime.settings,
        clock=clock,
        stored=runtime.stored,
    )
    report = dispatcher.run(progress=progress)
    log.info(
        "dispatched %s: %d sent, %d held (%s), %d skipped, %d failed, %d ambiguous, "
        "%d recovered from a stopped run",
        clock.now().isoformat(),
        report.sent_total,
        sum(report.held.values()),
        ", ".join(f"{reason} {n}" for reason, n in sorted(report.held.items())) or "-",
        sum(report.skipped.values()),
        report.failed,
        report.ambiguous,
        report.recovered,
    )
    return report


def run_tick(
    runtime: Runtime, clock: Clock, *, progress: Callable[[int], None] | None = None
) -> TickReport:
    """One tick at clock.now(): plan, then dispatch everything due."""
    now = clock.now()
    plan = plan_all(runtime, now)
    dispatch = run_dispatch(runtime, clock, progress=progress)
    return TickReport(now=now, plan=plan, dispatch=dispatch)


def next_event(runtime: Runtime, after: datetime) -> datetime:
    """The next moment anything can happen: a held touch's retry, a step falling due, or a
    cycle ending; at most a day away, so time-based segment rules are seen daily."""
    candidates = [after + timedelta(days=1)]
    with Session(runtime.engine) as session:
        retry = session.execute(
            select(func.min(TOUCHES.c.not_before)).where(
                TOUCHES.c.status == TouchStatus.PENDING, TOUCHES.c.not_before > after
            )
        ).scalar_one()
        if retry is not None:
            candidates.append(retry)
        stored = runtime.stored
        active = session.execute(
            select(ENROLLMENTS.c.campaign_version_id, ENROLLMENTS.c.started_at).where(
                ENROLLMENTS.c.status == EnrollmentStatus.ACTIVE
            )
        ).all()
        for version_id, started_at in active:
            due = next_step_due(stored.get(session, version_id), started_at, after)
            if due is not None:
                candidates.append(due)
    return min(candidates)


@dataclass
class SimulationReport:
    start: datetime
    end: datetime
    ticks: int = 0
    totals: DispatchReport = field(default_factory=DispatchReport)
    enrolled: Counter[str] = field(default_factory=Counter)


def simulate(
    runtime: Runtime,
    start: datetime,
    end: datetime,
    *,
    on_tick: Callable[[TickReport], None] | None = None,
) -> SimulationReport:
    """Run ticks from `start` until before `end`, jumping straight to each next due moment."""
    clock = SimulatedClock(start)
    report = SimulationReport(start=start, end=end)
    while True:
        tick = run_tick(runtime, clock)
        report.ticks += 1
        report.totals.merge(tick.dispatch)
        report.enrolled.update(tick.plan.enrolled)
        if on_tick is not None:
            on_tick(tick)
        following = next_event(runtime, clock.now())
        if following >= end:
            return report
        clock.set(following)
