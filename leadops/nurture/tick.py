"""One nurture tick (plan, then dispatch) and a simulation that runs ticks through time.

This is what the Prefect flow, the CLI and the tests all call; it needs no Prefect.
`dispatch_due` sends everything due, in this process or in several worker processes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from leadops.core.clock import Clock, SimulatedClock, ensure_utc
from leadops.delivery.dispatch import Dispatcher
from leadops.delivery.outcomes import DispatchReport, log_summary
from leadops.delivery.workers import WorkerBuilder, run_workers
from leadops.models import ENROLLMENTS, LEADS, TOUCHES, EnrollmentStatus, TouchStatus
from leadops.nurture.plan import PlanReport, plan_all
from leadops.nurture.planner import next_step_due
from leadops.nurture.runtime import Runtime

log = logging.getLogger("leadops.nurture")


@dataclass
class TickReport:
    now: datetime
    plan: PlanReport
    dispatch: DispatchReport


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
    log_summary(log, clock.now(), report)
    return report


def dispatch_due(
    runtime: Runtime,
    clock: Clock,
    *,
    workers: int,
    build: WorkerBuilder,
    progress: Callable[[int], None] | None = None,
) -> DispatchReport:
    """Send everything due at clock.now(): in this process when `workers` is 1, else in
    `workers` dispatcher processes sharing the database and the provider limits (each
    builds its own engine and channels from the runtime's settings with `build`, the
    runtime's worker builder)."""
    if workers > 1:
        at = clock.now() if isinstance(clock, SimulatedClock) else None
        return run_workers(runtime.settings, at, workers, build=build, progress=progress)
    return run_dispatch(runtime, clock, progress=progress)


def run_tick(
    runtime: Runtime, clock: Clock, *, progress: Callable[[int], None] | None = None
) -> TickReport:
    """One tick at clock.now(): plan, then dispatch everything due."""
    now = clock.now()
    plan = plan_all(runtime, now)
    dispatch = run_dispatch(runtime, clock, progress=progress)
    return TickReport(now=now, plan=plan, dispatch=dispatch)


def _inactivity_events(session: Session, runtime: Runtime, after: datetime) -> list[datetime]:
    """When a lead with no active enrollment next reaches the threshold of an inactivity
    rule it could enroll by (its stage fits, it never had the rule's campaign)."""
    e = ENROLLMENTS.c
    active = select(e.lead_id).where(e.status == EnrollmentStatus.ACTIVE)
    last_active = func.coalesce(LEADS.c.last_engaged_at, LEADS.c.created_at)
    events = []
    for rule in runtime.segments.rules:
        days = rule.when.inactive_days_at_least
        if days is None:
            continue
        span = timedelta(days=days)
        had = select(e.lead_id).where(e.campaign == rule.campaign)
        query = select(func.min(last_active)).where(
            last_active > after - span, LEADS.c.id.not_in(active), LEADS.c.id.not_in(had)
        )
        if rule.when.lifecycle_stage is not None:
            query = query.where(LEADS.c.lifecycle_stage.in_(rule.when.lifecycle_stage))
        first = session.execute(query).scalar_one()
        if first is not None:
            events.append(ensure_utc(first) + span)
    return events


def next_event(runtime: Runtime, after: datetime) -> datetime:
    """The next moment anything can happen: a held touch's retry, a step falling due, a
    cycle ending, a campaign starting or a lead waiting for a campaign reaching an
    inactivity rule; at most a day away."""
    candidates = [after + timedelta(days=1)]
    candidates += [
        c.starts_at for c in runtime.campaigns.values() if c.starts_at and c.starts_at > after
    ]
    with Session(runtime.engine) as session:
        retry = session.execute(
            select(func.min(TOUCHES.c.not_before)).where(
                TOUCHES.c.status == TouchStatus.PENDING, TOUCHES.c.not_before > after
            )
        ).scalar_one()
        if retry is not None:
            candidates.append(retry)
        candidates += _inactivity_events(session, runtime, after)
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
