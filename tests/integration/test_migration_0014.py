"""Migration 0014 (escalation activities) on a database holding escalations from before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import downgrade, upgrade
from leadops.models import ESCALATION_ACTIVITIES, ESCALATION_ASSIGNMENTS, ESCALATIONS, LEADS

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
BEFORE = "0013"  # the revision 0014 follows


def _escalation(connection: sa.Connection, lead: int, trigger: str, **values: object) -> int:
    """An escalation row as the previous version wrote it (only its columns)."""
    at = T0 + timedelta(hours=2)
    return int(
        connection.execute(
            ESCALATIONS.insert().values(
                lead_id=lead,
                trigger=trigger,
                trigger_key=f"{trigger}-1",
                score=80,
                reasons=[],
                status=values.get("status", "open"),
                created_at=at,
                updated_at=at,
                acknowledged_at=values.get("ack_at"),
                acknowledged_by=values.get("ack_by"),
            )
        ).inserted_primary_key[0]
    )


def test_upgrade_backfills_start_and_acknowledgements_and_downgrade_keeps_rows(
    engine: Engine,
) -> None:
    downgrade(engine, BEFORE)
    assert "escalation_activities" not in sa.inspect(engine).get_table_names()
    with engine.begin() as connection:
        lead = connection.execute(
            LEADS.insert().values(email="ada@example.com", created_at=T0, updated_at=T0)
        ).inserted_primary_key[0]
        other = connection.execute(
            LEADS.insert().values(email="bo@example.com", created_at=T0, updated_at=T0)
        ).inserted_primary_key[0]
        acked = T0 + timedelta(hours=3)
        sql = _escalation(connection, lead, "sql_threshold", ack_at=acked, ack_by="james")
        demo = _escalation(connection, other, "demo_requested", status="closed_lost")

    upgrade(engine)
    e = ESCALATIONS.c
    with engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(sa.select(ESCALATIONS)).all()}
        activities = connection.execute(sa.select(ESCALATION_ACTIVITIES)).all()
    assert rows[sql].started_at == T0  # the lead's creation
    assert rows[demo].started_at == T0 + timedelta(hours=2)  # the escalation's own time
    assert rows[sql].first_contact_at is None and rows[sql].amount_cents is None
    assert [(a.escalation_id, a.kind, a.by, a.at) for a in activities] == [
        (sql, "acknowledged", "james", T0 + timedelta(hours=3))
    ]
    with engine.begin() as connection:
        connection.execute(
            sa.update(ESCALATIONS)
            .where(e.id == demo)
            .values(status="disqualified", outcome_reason="spam", amount_cents=None)
        )
        # one activity per form key
        values = {"escalation_id": sql, "lead_id": lead, "kind": "note", "by": "james", "at": T0}
        connection.execute(ESCALATION_ACTIVITIES.insert().values(request_key="k1", **values))
    try:
        with engine.begin() as connection:
            connection.execute(ESCALATION_ACTIVITIES.insert().values(request_key="k1", **values))
    except sa.exc.IntegrityError:
        pass
    else:
        raise AssertionError("a second activity with the same request key was accepted")

    downgrade(engine, BEFORE)
    assert "escalation_activities" not in sa.inspect(engine).get_table_names()
    assert "started_at" not in {c["name"] for c in sa.inspect(engine).get_columns("escalations")}
    with engine.connect() as connection:
        statuses = dict(connection.execute(sa.text("SELECT id, status FROM escalations")).all())
        assert (
            connection.execute(
                sa.select(sa.func.count()).select_from(ESCALATION_ASSIGNMENTS)
            ).scalar_one()
            == 0
        )
    assert statuses == {sql: "open", demo: "closed_lost"}  # the previous version's statuses
    upgrade(engine)
