"""One trigger key for an SQL crossing, whichever path escalates it: the rescore hand-off
(leadops.sales.handoff) or the every-minute scan (leadops.sales.scan)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.engagement.report import SalesReady
from leadops.engagement.scoring import Reason
from leadops.models import ESCALATIONS, Lead
from leadops.sales.acks import close
from leadops.sales.handoff import escalate_sales_ready
from leadops.sales.scan import find_sales_ready, trigger_key
from tests.integration.test_escalation import NOW, add_lead, runtime_for


def _escalations(engine: Engine) -> list[tuple[int, str, str]]:
    e = ESCALATIONS.c
    with engine.connect() as connection:
        rows = connection.execute(select(e.lead_id, e.trigger, e.trigger_key).order_by(e.id)).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def _ready(lead_id: int, minutes: int = 0) -> SalesReady:
    """The lead as the rescore run reports it when its score reaches the SQL threshold."""
    at = NOW + timedelta(minutes=minutes)
    return SalesReady(lead_id, "sql", 90, (Reason("demo_requested", 25),), at)


def _back_at_sql(engine: Engine, lead_id: int, minutes: int) -> None:
    """Its escalation closed as not ready (recycled), then the lead reaches SQL again."""
    e = ESCALATIONS.c
    with engine.connect() as connection:
        (escalation_id,) = connection.execute(
            select(e.id).where(e.lead_id == lead_id).order_by(e.id.desc()).limit(1)
        ).one()
    close(engine, escalation_id, "not_ready", now=NOW + timedelta(minutes=minutes), by="ana")
    with Session(engine) as session:
        session.execute(update(Lead).where(Lead.id == lead_id).values(lifecycle_stage="sql"))  # type: ignore[arg-type]
        session.commit()


def test_the_hand_off_and_the_scan_key_a_crossing_alike_and_escalate_it_once(
    tmp_path: Path, engine: Engine
) -> None:
    runtime = runtime_for(tmp_path, engine)
    by_rescore = add_lead(engine, "a@one.example")
    by_scan = add_lead(engine, "b@two.example")
    with Session(engine) as session:
        keys = {trigger_key(session, lead, "sql", NOW) for lead in (by_rescore, by_scan)}
    assert keys == {"stage-sql-1"}

    # the rescore run hands one lead over; the scan a minute later escalates only the other
    handed = escalate_sales_ready(runtime, [_ready(by_rescore)], NOW)
    assert (handed.escalated, handed.already) == (1, 0)
    scanned = find_sales_ready(runtime, NOW + timedelta(minutes=1))
    assert [(r.created, r.escalation_id is not None) for r in scanned] == [(True, True)]
    # the rescore run saw a score crossing; the scan, a lead whose stage no score change set
    assert _escalations(engine) == [
        (by_rescore, "sql_threshold", "stage-sql-1"),
        (by_scan, "imported_sql", "stage-sql-1"),
    ]
    # a later rescore reporting the same crossing, and the next scans: nothing new
    assert escalate_sales_ready(runtime, [_ready(by_rescore, 2)], NOW).escalated == 0
    assert find_sales_ready(runtime, NOW + timedelta(minutes=3)) == []

    # back at SQL after a recycle: the next crossing, keyed alike by either path, once
    _back_at_sql(engine, by_rescore, 4)
    _back_at_sql(engine, by_scan, 4)
    with Session(engine) as session:
        keys = {trigger_key(session, lead, "sql", NOW) for lead in (by_rescore, by_scan)}
    assert keys == {"stage-sql-2"}
    assert [r.created for r in find_sales_ready(runtime, NOW + timedelta(minutes=5))] == [
        True,
        True,
    ]
    late = escalate_sales_ready(runtime, [_ready(by_rescore, 6), _ready(by_scan, 6)], NOW)
    assert (late.escalated, late.already) == (0, 2)
    assert _escalations(engine)[2:] == [
        (by_rescore, "imported_sql", "stage-sql-2"),
        (by_scan, "imported_sql", "stage-sql-2"),
    ]


def test_a_hand_raise_is_keyed_by_its_rule_and_time() -> None:
    at = NOW + timedelta(seconds=7)
    with Session() as session:  # no database needed: only the SQL crossing counts rows
        assert trigger_key(session, 1, "reply", at) == f"reply-{at.isoformat()}"
