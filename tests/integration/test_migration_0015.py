"""Migration 0015 (trigger detail, manager digests) on a database holding escalations and
notifications from before it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import downgrade, upgrade
from leadops.models import (
    ESCALATION_ASSIGNMENTS,
    ESCALATION_DIGESTS,
    ESCALATION_NOTIFICATIONS,
    ESCALATIONS,
    LEADS,
)
from leadops.sales.triggers import trigger_label

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
BEFORE = "0014"  # the revision 0015 follows


def _columns(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns(table)}


def test_upgrade_keeps_old_rows_worded_by_trigger_and_downgrade_keeps_notifications(
    engine: Engine,
) -> None:
    downgrade(engine, BEFORE)
    assert "escalation_digests" not in sa.inspect(engine).get_table_names()
    with engine.begin() as connection:
        lead = connection.execute(
            LEADS.insert().values(email="ada@example.com", created_at=T0, updated_at=T0)
        ).inserted_primary_key[0]
        escalation = connection.execute(
            ESCALATIONS.insert().values(
                lead_id=lead,
                trigger="sql_threshold",
                trigger_key="stage-sql-1",
                score=80,
                reasons=[],
                status="rerouted",
                created_at=T0,
                updated_at=T0,
            )
        ).inserted_primary_key[0]
        assignment = connection.execute(
            ESCALATION_ASSIGNMENTS.insert().values(
                escalation_id=escalation, seq=2, rule="round_robin", assigned_at=T0
            )
        ).inserted_primary_key[0]
        note = {
            "escalation_id": escalation,
            "assignment_id": assignment,
            "recipient": "Mia Manager",
            "channel": "email",
            "address": "mia@northwind.example",
            "attempts": 0,
            "not_before": T0,
            "created_at": T0,
        }
        connection.execute(
            ESCALATION_NOTIFICATIONS.insert().values(role="manager", status="pending", **note)
        )
        connection.execute(
            ESCALATION_NOTIFICATIONS.insert().values(role="rep", status="sent", **note)
        )

    upgrade(engine)
    with engine.connect() as connection:
        (old,) = connection.execute(sa.select(ESCALATIONS)).all()
        notes = connection.execute(sa.select(ESCALATION_NOTIFICATIONS)).all()
    assert old.trigger_detail is None  # worded from its trigger alone
    assert trigger_label(old.trigger, old.trigger_detail, old.score) == (
        "crossed the sales-qualified (SQL) score threshold"
    )
    assert {(n.role, n.status, n.digest_id) for n in notes} == {
        ("manager", "pending", None),  # gathered into the next digest
        ("rep", "sent", None),
    }
    with engine.begin() as connection:
        digest = connection.execute(
            ESCALATION_DIGESTS.insert().values(
                recipient="Mia Manager",
                channel="email",
                address="mia@northwind.example",
                status="sent",
                attempts=1,
                not_before=T0,
                created_at=T0,
                sent_at=T0,
            )
        ).inserted_primary_key[0]
        connection.execute(
            sa.update(ESCALATION_NOTIFICATIONS)
            .where(ESCALATION_NOTIFICATIONS.c.role == "manager")
            .values(digest_id=digest, status="sent", sent_at=T0)
        )

    downgrade(engine, BEFORE)
    assert "escalation_digests" not in sa.inspect(engine).get_table_names()
    assert "digest_id" not in _columns(engine, "escalation_notifications")
    assert "trigger_detail" not in _columns(engine, "escalations")
    with engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT role, status FROM escalation_notifications"))
        assert set(kept.all()) == {("manager", "sent"), ("rep", "sent")}
    upgrade(engine)
    assert "digest_id" in _columns(engine, "escalation_notifications")
