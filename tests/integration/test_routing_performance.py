"""Performance-weighted routing on a real database: each rep's record (acknowledgement
speed, wins with CRM truth) read from escalations, assignments and crm_deals, and the
weights explained in the assignment audit."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.models import CRM_DEALS, ESCALATION_ASSIGNMENTS, ESCALATIONS, EscalationAssignment
from leadops.sales.escalation import escalate
from leadops.sales.loads import current_loads
from tests.integration.test_escalation import NOW, REASONS, add_lead, runtime_for

ROUTING = """\
intro: {triggers: {}}
manager: {name: Mia Manager, email: mia@northwind.example}
fallback_queue: {name: Inside sales queue, email: queue@northwind.example}
performance: {enabled: true, window_days: 90, min_sample: 3}
reps:
  - {key: ana, name: Ana Ames, email: ana@northwind.example, capacity: 50}
  - {key: ben, name: Ben Bose, email: ben@northwind.example, capacity: 50}
"""
keys = itertools.count(1)


def _history(engine: Engine, rep: str, ack_minutes: int, status: str, *, days: int = 10) -> int:
    """A closed escalation `rep` held, assigned `days` ago, acknowledged after
    `ack_minutes`."""
    lead = add_lead(engine, f"h{next(keys)}@example.org")
    at = NOW - timedelta(days=days)
    with engine.begin() as conn:
        escalation = conn.execute(
            ESCALATIONS.insert().values(
                lead_id=lead,
                trigger="sql_threshold",
                trigger_key=f"k{lead}",
                reasons=[],
                status=status,
                rep_key=rep,
                acknowledged_at=at + timedelta(minutes=ack_minutes),
                closed_at=at + timedelta(days=2),
                created_at=at,
                updated_at=at,
            )
        ).inserted_primary_key[0]
        conn.execute(
            ESCALATION_ASSIGNMENTS.insert().values(
                escalation_id=escalation, seq=1, rep_key=rep, rule="round_robin", assigned_at=at
            )
        )
    return int(escalation)


def test_weights_follow_the_record_and_are_explained(tmp_path: Path, engine: Engine) -> None:
    runtime = runtime_for(tmp_path, engine, ROUTING)
    for _ in range(3):
        _history(engine, "ana", 5, "closed_won")
        _history(engine, "ben", 60, "closed_lost")
    # ben closed this one won, but the CRM deal says lost: CRM truth
    crm_lost = _history(engine, "ben", 60, "closed_won")
    _history(engine, "ben", 1, "closed_won", days=200)  # outside the window
    with engine.begin() as conn:
        conn.execute(
            CRM_DEALS.insert().values(
                crm="hubspot",
                crm_id="d1",
                escalation_id=crm_lost,
                status="lost",
                closed_at=NOW - timedelta(days=5),
                created_at=NOW,
                updated_at=NOW,
            )
        )
    with Session(engine) as session:
        loads = current_loads(session, runtime.routing, NOW)
    assert loads.performance is not None
    ana, ben = loads.performance["ana"], loads.performance["ben"]
    # team: median ack of (5,5,5,60,60,60,60) = 60; won 3 of 7
    assert ana.speed == 12.0 and ben.speed == 1.0
    assert ana.win is not None and abs(ana.win - 7 / 3) < 1e-9 and ben.win == 0.0
    assert ana.factor == 2.0 and ben.factor == 0.5  # bounded

    lead = add_lead(engine, "new@example.org")
    escalate(engine, lead, "demo_requested", "e1", 70, REASONS, NOW, runtime=runtime)
    with Session(engine) as session:
        row = session.exec(
            select(EscalationAssignment).order_by(EscalationAssignment.id.desc())  # type: ignore[union-attr]
        ).first()
    assert row is not None
    audit = row[0]
    assert audit.rep_key == "ana"  # 3 recent each, weight 2.0 against 0.5
    assert "performance weights ana 1->2.00 (x2.00 (bound): ack 5 min vs team 60" in audit.detail
    assert "ben 1->0.50" in audit.detail
