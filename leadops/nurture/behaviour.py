"""What leads did in their current enrollments, read from the database for the step
conditions, waits and goals (leadops.delivery.conditions) the planner evaluates.

Opens and clicks count for the step whose message they are about (`inbox.touch_id`);
replies, site and form events, pricing page views (the `pricing_page` scoring rule,
config/scoring.yaml pricing_url_patterns) and stage changes count from the moment the
lead enrolled. An event counts once the rescore run has processed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.core.clock import ensure_utc
from leadops.delivery.conditions import Behaviour
from leadops.models import INBOX, SCORE_LEDGER, STAGE_CHANGES, TOUCHES, InboxStatus
from leadops.models.events import OPENED_EVENTS, EventType


@dataclass(frozen=True)
class Enrolled:
    """An active enrollment, as behaviour is read for it."""

    id: int
    lead_id: int
    started_at: datetime


def lead_behaviour(lead: Any) -> Behaviour:
    """The lead's score, stage, grade and band now (no events): a plan row of leads."""
    return Behaviour(
        score=lead.score or 0, stage=lead.lifecycle_stage, grade=lead.grade, band=lead.band
    )


def _first(found: dict[Any, datetime], key: Any, at: datetime) -> None:
    if key not in found or at < found[key]:
        found[key] = at


StepEvent = tuple[int, str, str]  # enrollment id, "opened" or "clicked", step key


def _step_events(conn: Connection, enrollments: list[Enrolled]) -> dict[StepEvent, datetime]:
    """(enrollment, "opened" | "clicked", step) -> when it first happened. Read by lead
    (inbox.lead_id is indexed), then kept for the message's own enrollment."""
    i, t = INBOX.c, TOUCHES.c
    kinds = {str(e): "opened" for e in OPENED_EVENTS} | {str(EventType.CLICKED): "clicked"}
    ids = {e.id for e in enrollments}
    rows = conn.execute(
        sa.select(t.enrollment_id, t.step, i.event, i.received_at)
        .select_from(INBOX.join(TOUCHES, t.id == i.touch_id))
        .where(
            i.lead_id.in_([e.lead_id for e in enrollments]),
            i.status == InboxStatus.PROCESSED,
            i.event.in_(list(kinds)),
        )
    ).all()
    found: dict[StepEvent, datetime] = {}
    for enrollment_id, step, event, at in rows:
        if enrollment_id in ids:
            _first(found, (enrollment_id, kinds[event], step), ensure_utc(at))
    return found


def _lead_events(conn: Connection, lead_ids: list[int]) -> list[tuple[int, str, datetime]]:
    """(lead, what, when) of replies, site and form events, pricing views, stages."""
    i, s, c = INBOX.c, SCORE_LEDGER.c, STAGE_CHANGES.c
    inbox = conn.execute(
        sa.select(i.lead_id, i.event, i.kind, i.received_at).where(
            i.lead_id.in_(lead_ids),
            i.status == InboxStatus.PROCESSED,
            i.event.in_([EventType.REPLIED, EventType.ACTIVITY, EventType.HAND_RAISE]),
        )
    ).all()
    found = [
        (lead_id, "replied" if event == EventType.REPLIED else f"event:{kind}", at)
        for lead_id, event, kind, at in inbox
    ]
    found += [
        (lead_id, "pricing", at)
        for lead_id, at in conn.execute(
            sa.select(s.lead_id, s.event_at).where(
                s.lead_id.in_(lead_ids), s.rule == "pricing_page"
            )
        ).all()
    ]
    found += [
        (lead_id, f"stage:{stage}", at)
        for lead_id, stage, at in conn.execute(
            sa.select(c.lead_id, c.to_stage, c.changed_at).where(c.lead_id.in_(lead_ids))
        ).all()
    ]
    return [(lead_id, what, ensure_utc(at)) for lead_id, what, at in found]


def enrollment_behaviour(
    conn: Connection, enrollments: list[Enrolled], now_of: Mapping[int, Behaviour]
) -> dict[int, Behaviour]:
    """Each enrollment's behaviour (by enrollment id): its lead's values now (`now_of`, by
    lead id) with what the lead did since the enrollment started."""
    if not enrollments:
        return {}
    steps: dict[int, dict[str, dict[str, datetime]]] = {}
    for (enrollment_id, kind, step), at in _step_events(conn, enrollments).items():
        steps.setdefault(enrollment_id, {}).setdefault(kind, {})[step] = at
    by_lead = {e.lead_id: e for e in enrollments}
    firsts: dict[int, dict[str, datetime]] = {}
    for lead_id, what, at in _lead_events(conn, list(by_lead)):
        if at >= by_lead[lead_id].started_at:
            _first(firsts.setdefault(lead_id, {}), what, at)
    result = {}
    for e in enrollments:
        mine, done = firsts.get(e.lead_id, {}), steps.get(e.id, {})
        base = now_of.get(e.lead_id, Behaviour())
        result[e.id] = Behaviour(
            score=base.score,
            stage=base.stage,
            grade=base.grade,
            band=base.band,
            opened=done.get("opened", {}),
            clicked=done.get("clicked", {}),
            replied=mine.get("replied"),
            pricing=mine.get("pricing"),
            events={w[6:]: at for w, at in mine.items() if w.startswith("event:")},
            stages={w[6:]: at for w, at in mine.items() if w.startswith("stage:")},
        )
    return result
