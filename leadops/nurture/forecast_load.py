"""The forecast's reads: leads in batches, and all a batch's enrollments, escalations,
first forms and touches in one set-based query each (plain rows, no ORM objects).

A batch is a run of consecutive lead ids (keyset paging), so its other rows are read by
the id range of the batch (`lead_id BETWEEN first AND last`, an index range scan)
instead of a list of a few thousand ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlmodel import Session

from leadops.models import (
    ACTIVE_ESCALATION_STATUSES,
    ENROLLMENTS,
    ESCALATIONS,
    FINAL_TOUCH_STATUSES,
    FORM_SUBMISSIONS,
    LEADS,
    SENT_TOUCH_STATUSES,
    TOUCHES,
    EnrollmentStatus,
    TouchStatus,
)
from leadops.nurture.segments import first_forms_where

FORECAST_BATCH = 5000


class Lead(NamedTuple):
    """What the forecast reads of a lead: what planning and the contact policy look at.
    (A plain tuple: its fields are read by name for every lead, and a NamedTuple's are
    much cheaper to read than a database row's.)"""

    id: int
    email: str | None
    phone: str | None
    lifecycle_stage: str
    country: str | None
    industry: str | None
    seniority: str | None
    company_size: int | None
    score: int
    last_engaged_at: datetime | None
    created_at: datetime
    whatsapp_consent: bool
    segment: str | None
    source: str | None
    email_consent: bool
    email_suppressed_at: datetime | None
    whatsapp_suppressed_at: datetime | None
    unsubscribed_at: datetime | None
    timezone: str
    grade: str | None
    band: str | None
    properties: dict[str, Any] | None
    sms_consent: bool
    sms_suppressed_at: datetime | None


_LEAD_COLUMNS = [LEADS.c[name] for name in Lead._fields]

Pending = tuple[str, str, str, datetime]  # campaign, step, channel, not_before


@dataclass(frozen=True)
class ActiveRow:
    """A lead's active enrollment, with what its touches say about it. Two leads' are
    equal when they differ only in the enrollment's id, which planning does not look at."""

    id: int = field(compare=False)
    campaign: str
    version_id: int
    started_at: datetime
    planned: frozenset[tuple[str, str]]  # (step, channel) touches that already exist
    open_touches: int  # touches not yet final
    arm: str | None = None  # "holdout": the lead is sent nothing


@dataclass
class Batch:
    """One batch of leads and what the projection needs of them, by lead id."""

    leads: list[Lead]
    active: dict[int, ActiveRow] = field(default_factory=dict)
    past: dict[int, frozenset[str]] = field(default_factory=dict)
    escalated: set[int] = field(default_factory=set)
    forms: dict[int, str] = field(default_factory=dict)
    pending: dict[int, tuple[Pending, ...]] = field(default_factory=dict)  # in id order
    recent: dict[int, tuple[datetime, ...]] = field(default_factory=dict)  # sends, last 7 days


def batches(session: Session, now: datetime) -> Iterator[Batch]:
    """Every lead in id order, FORECAST_BATCH at a time, with its state at `now`."""
    last_id = 0
    while True:
        rows = session.execute(
            select(*_LEAD_COLUMNS)
            .where(LEADS.c.id > last_id)
            .order_by(LEADS.c.id)
            .limit(FORECAST_BATCH)
        ).all()  # one fetch: iterating a result fetches row by row
        leads = [Lead._make(row) for row in rows]
        if not leads:
            return
        yield _load(session, leads, now)
        last_id = leads[-1].id


def _load(session: Session, leads: list[Lead], now: datetime) -> Batch:
    first, last = leads[0].id, leads[-1].id
    batch = Batch(leads=leads)
    e = ENROLLMENTS.c
    past: dict[int, set[str]] = {}
    active: dict[int, tuple[int, str, int, datetime, str | None]] = {}
    enrollments = session.execute(
        select(
            e.lead_id, e.id, e.campaign, e.campaign_version_id, e.status, e.started_at, e.arm
        ).where(e.lead_id.between(first, last))
    ).all()
    for lead_id, enrollment_id, campaign, version_id, status, started_at, arm in enrollments:
        past.setdefault(lead_id, set()).add(campaign)
        if status == EnrollmentStatus.ACTIVE:
            active[lead_id] = (enrollment_id, campaign, version_id, started_at, arm)
    batch.past = {lead_id: frozenset(campaigns) for lead_id, campaigns in past.items()}
    s = ESCALATIONS.c
    batch.escalated = set(
        session.execute(
            select(s.lead_id).where(
                s.lead_id.between(first, last), s.status.in_(ACTIVE_ESCALATION_STATUSES)
            )
        ).scalars()
    )
    batch.forms = first_forms_where(session, FORM_SUBMISSIONS.c.lead_id.between(first, last))
    _touches(session, batch, active, now)
    return batch


def _touches(
    session: Session,
    batch: Batch,
    active: dict[int, tuple[int, str, int, datetime, str | None]],
    now: datetime,
) -> None:
    """The batch's touches: pending ones, recent sends, and what the active enrollments
    have planned and still open."""
    first, last = batch.leads[0].id, batch.leads[-1].id
    enrollment_ids = {row[0] for row in active.values()}
    planned: dict[int, set[tuple[str, str]]] = {}
    open_count: Counter[int] = Counter()
    pending: dict[int, list[Pending]] = {}
    recent: dict[int, list[datetime]] = {}
    week_ago = now - timedelta(days=7)
    t = TOUCHES.c
    rows = session.execute(
        select(t.lead_id, t.enrollment_id, t.campaign, t.step, t.channel, t.status, t.not_before)
        .add_columns(t.sent_at)
        .where(t.lead_id.between(first, last))
        .order_by(t.id)
    ).all()
    for lead_id, enrollment_id, campaign, step, channel, status, not_before, sent_at in rows:
        if enrollment_id in enrollment_ids:
            planned.setdefault(enrollment_id, set()).add((step, channel))
            if status not in FINAL_TOUCH_STATUSES:
                open_count[enrollment_id] += 1
        if status == TouchStatus.PENDING:
            pending.setdefault(lead_id, []).append((campaign, step, channel, not_before))
        elif status in SENT_TOUCH_STATUSES and sent_at is not None and sent_at > week_ago:
            recent.setdefault(lead_id, []).append(sent_at)
    batch.pending = {lead_id: tuple(touches) for lead_id, touches in pending.items()}
    batch.recent = {lead_id: tuple(sends) for lead_id, sends in recent.items()}
    batch.active = {
        lead_id: ActiveRow(
            id=enrollment_id,
            campaign=campaign,
            version_id=version_id,
            started_at=started_at,
            planned=frozenset(planned.get(enrollment_id, ())),
            open_touches=open_count[enrollment_id],
            arm=arm,
        )
        for lead_id, (enrollment_id, campaign, version_id, started_at, arm) in active.items()
    }
