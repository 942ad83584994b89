"""Planning: segment every lead, move enrollments along, and write the touches now due.

Leads are read in batches (plain rows), planned by the pure rules of
`leadops.nurture.planner`, and each batch's writes are made in bulk in one
transaction; on PostgreSQL on a second connection, while the next batch is planned.
Planners that overlap (partitions, the rescore run) write nothing twice.
"""

from __future__ import annotations

import logging
from collections import Counter, namedtuple
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from leadops.core.bulk import among
from leadops.core.clock import ensure_utc
from leadops.delivery.campaigns import StoredCampaigns, open_pauses, register_versions
from leadops.delivery.conditions import Behaviour
from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    ENROLLMENTS,
    ESCALATIONS,
    FINAL_TOUCH_STATUSES,
    FORM_SUBMISSIONS,
    LEADS,
    TOUCHES,
    CampaignVersion,
    EnrollmentStatus,
)
from leadops.models.touch_states import INITIAL_STATUS, SKIPPED_AT_PLANNING
from leadops.models.vocab import Channel, SuppressionReason
from leadops.nurture.behaviour import Enrolled, enrollment_behaviour, lead_behaviour
from leadops.nurture.plan_write import PlanReport, Writes, write
from leadops.nurture.planner import ActiveEnrollment, LeadState, Plan, plan_lead
from leadops.nurture.runtime import Runtime
from leadops.nurture.segments import LeadFacts, first_forms_where

log = logging.getLogger("leadops.nurture")

PLAN_BATCH = 5000  # leads per batch and transaction (measured against 1,000: less CPU)


Partition = tuple[int, int]  # (k, n): the leads whose id modulo n is k
WHOLE: Partition = (0, 1)


def check_partition(partition: Partition) -> Partition:
    """Refuse a partition that is not (k, n) with 0 <= k < n."""
    k, n = partition
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"partition must be (k, n) with 0 <= k < n, got ({k}, {n})")
    return partition


# What planning reads of a lead (plain rows: no ORM objects to build for every lead).
_LEAD_FIELDS = (
    LEADS.c.id,
    LEADS.c.email,
    LEADS.c.phone,
    LEADS.c.lifecycle_stage,
    LEADS.c.country,
    LEADS.c.industry,
    LEADS.c.seniority,
    LEADS.c.company_size,
    LEADS.c.score,
    LEADS.c.last_engaged_at,
    LEADS.c.created_at,
    LEADS.c.whatsapp_consent,
    LEADS.c.sms_consent,
    LEADS.c.segment,
    LEADS.c.source,
    LEADS.c.grade,
    LEADS.c.band,
    LEADS.c.properties,
    LEADS.c.email_suppression_reason,
    LEADS.c.whatsapp_suppression_reason,
    LEADS.c.sms_suppression_reason,
)
LeadRow = Any  # a _Lead: the values of _LEAD_FIELDS
# a plain named tuple: its fields read much faster than a database row's, and planning
# reads each of them again and again
_Lead = namedtuple("_Lead", [column.name for column in _LEAD_FIELDS])  # type: ignore[misc]


def _read_leads(session: Session, query: Select[Any]) -> list[LeadRow]:
    return [_Lead._make(row) for row in session.execute(query)]


def _lead_batches(session: Session, partition: Partition = WHOLE) -> Iterator[list[LeadRow]]:
    """The partition's leads in id order, PLAN_BATCH at a time (keyset paging: each batch
    is one indexed query, and only one batch is in memory)."""
    k, n = partition
    last_id = 0
    while True:
        query = select(*_LEAD_FIELDS).where(LEADS.c.id > last_id)
        if n > 1:
            query = query.where(LEADS.c.id % n == k)
        batch = _read_leads(session, query.order_by(LEADS.c.id).limit(PLAN_BATCH))
        if not batch:
            return
        yield batch
        last_id = batch[-1].id or 0


def _behaviours(
    session: Session,
    stored: StoredCampaigns,
    active: dict[int, _Enrollment],
    first_touch: dict[int, datetime],
    now_of: dict[int, Behaviour],
) -> dict[int, Behaviour]:
    """The behaviour of the active enrollments whose campaign version has step rules or
    a goal (by enrollment id); the others need none. An enrollment's behaviour counts from
    when it began: its first touch's creation, since resuming a paused campaign moves
    `started_at` later (leadops.nurture.calendar)."""
    ruled = []
    for enrollment in active.values():
        campaign = stored.get(session, enrollment.campaign_version_id)
        if enrollment.id is not None and campaign.has_rules():
            began = min(
                enrollment.started_at, first_touch.get(enrollment.id, enrollment.started_at)
            )
            ruled.append(Enrolled(enrollment.id, enrollment.lead_id, began))
    return enrollment_behaviour(session.connection(), ruled, now_of)


def _behaviours_now(leads: list[LeadRow]) -> dict[int, Behaviour]:
    """Each lead's score, stage, grade and band now, by lead id: one (immutable)
    Behaviour for the leads that share those values."""
    alike: dict[tuple[Any, ...], Behaviour] = {}
    now_of = {}
    for lead in leads:
        key = (lead.score, lead.lifecycle_stage, lead.grade, lead.band)
        behaviour = alike.get(key)
        if behaviour is None:
            behaviour = alike[key] = lead_behaviour(lead)
        now_of[lead.id] = behaviour
    return now_of


_NONE: frozenset[Any] = frozenset()


_ENROLLMENT_FIELDS = (
    ENROLLMENTS.c.id,
    ENROLLMENTS.c.lead_id,
    ENROLLMENTS.c.campaign,
    ENROLLMENTS.c.campaign_version_id,
    ENROLLMENTS.c.status,
    ENROLLMENTS.c.started_at,
    ENROLLMENTS.c.arm,
)


class _Enrollment(NamedTuple):
    """What planning reads of an enrollment: the values of _ENROLLMENT_FIELDS."""

    id: int
    lead_id: int
    campaign: str
    campaign_version_id: int
    status: str
    started_at: datetime
    arm: str | None


def _states(
    session: Session, stored: StoredCampaigns, leads: list[LeadRow]
) -> list[tuple[LeadRow, _Enrollment | None, LeadState]]:
    ids = [lead.id for lead in leads]
    dialect = session.get_bind().dialect.name
    active: dict[int, _Enrollment] = {}
    past: dict[int, set[str]] = {}
    query = select(*_ENROLLMENT_FIELDS).where(among(dialect, ENROLLMENTS.c.lead_id, ids))
    for row in map(_Enrollment._make, session.execute(query)):
        past.setdefault(row.lead_id, set()).add(row.campaign)
        if row.status == EnrollmentStatus.ACTIVE:
            active[row.lead_id] = row
    escalated = set(
        session.execute(
            select(ESCALATIONS.c.lead_id).where(
                among(dialect, ESCALATIONS.c.lead_id, ids),
                ESCALATIONS.c.status.in_(ACTIVE_ESCALATION_STATUSES),
            )
        ).scalars()
    )
    planned: dict[int, set[tuple[str, str]]] = {}
    open_count: Counter[int] = Counter()
    first_touch: dict[int, datetime] = {}
    if active:
        t = TOUCHES.c
        rows = session.execute(
            select(t.enrollment_id, t.step, t.channel, t.status, t.created_at).where(
                among(dialect, t.enrollment_id, [e.id or 0 for e in active.values()])
            )
        ).all()
        for enrollment_id, step, channel, status, created_at in rows:
            planned.setdefault(enrollment_id, set()).add((step, channel))
            if status not in FINAL_TOUCH_STATUSES:
                open_count[enrollment_id] += 1
            created = ensure_utc(created_at)
            first_touch[enrollment_id] = min(created, first_touch.get(enrollment_id, created))

    forms = first_forms_where(session, among(dialect, FORM_SUBMISSIONS.c.lead_id, ids))
    now_of = _behaviours_now(leads)
    behaviours = _behaviours(session, stored, active, first_touch, now_of)
    result = []
    for lead in leads:
        assert lead.id is not None
        enrollment = active.get(lead.id)
        state = LeadState(
            lead_id=lead.id,
            facts=LeadFacts.of(lead, forms.get(lead.id)),
            has_email=lead.email is not None,
            has_phone=lead.phone is not None,
            whatsapp_consent=lead.whatsapp_consent,
            sms_consent=lead.sms_consent,
            segment=lead.segment,
            active=None
            if enrollment is None or enrollment.id is None
            else ActiveEnrollment(
                id=enrollment.id,
                campaign=enrollment.campaign,
                campaign_version_id=enrollment.campaign_version_id,
                started_at=enrollment.started_at,
                planned=frozenset(planned.get(enrollment.id, _NONE)),
                open_touches=open_count[enrollment.id],
                arm=enrollment.arm,
                behaviour=behaviours.get(enrollment.id, now_of[lead.id]),
            ),
            past_campaigns=frozenset(past.get(lead.id, _NONE)),
            in_sales_hands=lead.id in escalated,
            behaviour=now_of[lead.id],
            sunset=SuppressionReason.SUNSET
            in (
                lead.email_suppression_reason,
                lead.whatsapp_suppression_reason,
                lead.sms_suppression_reason,
            ),
        )
        result.append((lead, enrollment, state))
    return result


def _apply(
    plan: Plan,
    lead: LeadRow,
    enrollment: _Enrollment | None,
    versions: dict[str, CampaignVersion],
    now: datetime,
    report: PlanReport,
    writes: Writes,
) -> None:
    if plan.segment != lead.segment:
        writes.segments.append({"lead_id": plan.lead_id, "segment": plan.segment})
    if enrollment is not None and plan.exit_reason:
        # leaves nurture (leadops.delivery.suppression): its held touches are skipped too
        writes.exits.append((plan.lead_id, plan.exit_reason, plan.goal_reached))
        report.exited += 1
        report.goals_reached += plan.goal_reached
    elif enrollment is not None and plan.complete:
        report.completed += 1
        if not plan.sunset:
            writes.completed.append((enrollment.id, "cycle finished"))
        else:
            writes.completed.append((enrollment.id, "cycle finished without engagement: sunset"))
            channels = [Channel.EMAIL.value] if lead.email else []
            channels += [Channel.WHATSAPP.value] if lead.phone else []
            channels += [Channel.SMS.value] if lead.phone and lead.sms_consent else []
            writes.sunsets.append((plan.lead_id, channels))
            report.sunset += 1
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
                "arm": plan.enroll_arm,
            }
        )
        touches = writes.waiting.setdefault(plan.lead_id, [])
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
                    "variant": due.variant,
                    # a new touch starts here (touch_states); a step whose rules say
                    # not to send it is recorded as skipped, with why
                    "status": SKIPPED_AT_PLANNING if due.skip else INITIAL_STATUS,
                    "hold_reason": due.skip,
                    "error": due.detail,
                    "due_at": due.due_at,
                    "not_before": due.due_at,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )


def _plan_batch(
    session: Session,
    runtime: Runtime,
    batch: list[LeadRow],
    versions: dict[str, CampaignVersion],
    now: datetime,
    report: PlanReport,
    paused: frozenset[str],
) -> Writes:
    """Plan one batch of leads: what to write for it (`_write_batch`)."""
    stored = runtime.stored
    states = _states(session, stored, batch)
    writes = Writes()
    for lead, enrollment, state in states:
        if state.active:
            stored.get(session, state.active.campaign_version_id)
        plan = plan_lead(
            state,
            segments=runtime.segments,
            campaigns=runtime.campaigns,
            enrolled_campaigns=stored.loaded(),
            now=now,
            paused=paused,
        )
        if plan.changes_anything or plan.segment != lead.segment:
            _apply(plan, lead, enrollment, versions, now, report, writes)
    writes.leads = len(states)
    return writes


def _write_batch(session: Session, writes: Writes, now: datetime) -> PlanReport:
    """Write one batch's plan in bulk and commit; what was written."""
    written = PlanReport(leads=writes.leads)
    write(session, writes, written, now)
    session.commit()
    return written


def _plan_pipelined(
    runtime: Runtime,
    batches: Iterator[list[LeadRow]],
    reader: Session,
    plan_batch: Callable[[list[LeadRow]], Writes],
    now: datetime,
    report: PlanReport,
    progress: Callable[[int], None] | None,
) -> None:
    """Plan batch after batch in this thread while the batch before is written in
    another, on a connection of its own: the planner's CPU and the server's writes
    overlap. Each batch is still written in one transaction, in order, one at a time;
    a failed write stops planning and is raised."""
    with (
        Session(runtime.engine, expire_on_commit=False) as writer,
        ThreadPoolExecutor(1, thread_name_prefix="plan-write") as pool,
    ):
        pending: Future[PlanReport] | None = None
        for batch in batches:
            writes = plan_batch(batch)
            reader.commit()  # no transaction left open while the writes go on
            if pending is not None:
                report.merge(pending.result())
                if progress is not None:
                    progress(report.leads)
            pending = pool.submit(_write_batch, writer, writes, now)
        if pending is not None:
            report.merge(pending.result())
            if progress is not None:
                progress(report.leads)


def _register_versions(
    session: Session, runtime: Runtime, now: datetime
) -> dict[str, CampaignVersion]:
    """Record the current campaign versions; when a planner running at the same time
    recorded a new version first (UNIQUE), use that one."""
    try:
        versions = register_versions(session, runtime.campaigns, now)
        session.commit()
    except IntegrityError:
        session.rollback()
        versions = register_versions(session, runtime.campaigns, now)
        session.commit()
    return versions


def plan_all(
    runtime: Runtime,
    now: datetime,
    partition: Partition = WHOLE,
    *,
    progress: Callable[[int], None] | None = None,
) -> PlanReport:
    """Segment every lead, move enrollments along and create the touches now due.

    `partition=(k, n)` plans only the leads whose id modulo n is k, so n planners (Prefect
    task runs, on one worker or many) share the work; together they plan every lead once.
    Planners that overlap anyway write nothing twice (see `plan_write.write`). `progress` is called
    with the number of leads planned so far after each batch."""
    k, n = check_partition(partition)
    report = PlanReport()  # the leads and what was written
    planned = PlanReport()  # what the plans say besides (exits, completions)
    with Session(runtime.engine, expire_on_commit=False) as session:
        versions = _register_versions(session, runtime, now)
        paused = frozenset(open_pauses(session, now))

        def plan_batch(batch: list[LeadRow]) -> Writes:
            return _plan_batch(session, runtime, batch, versions, now, planned, paused)

        batches = _lead_batches(session, (k, n))
        if runtime.engine.dialect.name == "postgresql":
            _plan_pipelined(runtime, batches, session, plan_batch, now, report, progress)
        else:  # SQLite: one writer at a time, so each batch's reads and writes in turn
            for batch in batches:
                report.merge(_write_batch(session, plan_batch(batch), now))
                if progress is not None:
                    progress(report.leads)
    report.merge(planned)
    log.info(
        "planned %s%s: %d leads, %d newly enrolled, %d exited (%d goal reached), "
        "%d completed (%d sunset), "
        "%d touches created, %d rows already written by another planner",
        now.isoformat(),
        f" (partition {k} of {n})" if n > 1 else "",
        report.leads,
        sum(report.enrolled.values()),
        report.exited,
        report.goals_reached,
        report.completed,
        report.sunset,
        report.planned,
        report.conflicts,
    )
    return report


def plan_leads(runtime: Runtime, lead_ids: Iterable[int], now: datetime) -> PlanReport:
    """Segment and plan only these leads (the rescore run re-segments the leads it moved)."""
    ids = sorted(set(lead_ids))
    report = PlanReport()
    if not ids:
        return report
    with Session(runtime.engine, expire_on_commit=False) as session:
        versions = _register_versions(session, runtime, now)
        paused = frozenset(open_pauses(session, now))
        for start in range(0, len(ids), PLAN_BATCH):
            chunk = ids[start : start + PLAN_BATCH]
            query = select(*_LEAD_FIELDS).where(LEADS.c.id.in_(chunk)).order_by(LEADS.c.id)
            batch = _read_leads(session, query)
            writes = _plan_batch(session, runtime, batch, versions, now, report, paused)
            report.merge(_write_batch(session, writes, now))
    return report
