"""Migration 0010 (dead letters) on a database holding rows from before it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import downgrade, upgrade
from leadops.models import (
    CAMPAIGN_VERSIONS,
    DEAD_LETTERS,
    ENROLLMENTS,
    INBOX,
    LEADS,
    TOUCHES,
)

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


def _touch_and_event(connection: sa.Connection) -> tuple[int, int]:
    lead = connection.execute(
        LEADS.insert().values(email="ada@example.com", created_at=T0, updated_at=T0)
    ).inserted_primary_key[0]
    version = connection.execute(
        CAMPAIGN_VERSIONS.insert().values(
            campaign="educate", version=1, checksum="c" * 64, definition={}, created_at=T0
        )
    ).inserted_primary_key[0]
    enrollment = connection.execute(
        ENROLLMENTS.insert().values(
            lead_id=lead, campaign="educate", campaign_version_id=version, started_at=T0
        )
    ).inserted_primary_key[0]
    touch = connection.execute(
        TOUCHES.insert().values(
            lead_id=lead,
            enrollment_id=enrollment,
            campaign="educate",
            campaign_version_id=version,
            step="day-1",
            step_day=1,
            channel="email",
            status="pending",
            due_at=T0,
            not_before=T0,
            created_at=T0,
            updated_at=T0,
        )
    ).inserted_primary_key[0]
    event = connection.execute(
        INBOX.insert().values(
            source="sendgrid",
            kind="open",
            dedupe_key="sg:1",
            payload={"event": "open"},
            received_at=T0,
            status="pending",
        )
    ).inserted_primary_key[0]
    return int(touch), int(event)


def test_upgrade_keeps_rows_and_downgrade_returns_dead_letters_to_pending(engine: Engine) -> None:
    downgrade(engine, "0009")
    assert "dead_letters" not in sa.inspect(engine).get_table_names()
    with engine.begin() as connection:
        touch, event = _touch_and_event(connection)

    upgrade(engine)
    with engine.begin() as connection:
        assert connection.execute(sa.select(TOUCHES.c.status)).scalar_one() == "pending"
        assert connection.execute(sa.select(INBOX.c.status)).scalar_one() == "pending"
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(DEAD_LETTERS)).scalar_one()
            == 0
        )
        # set aside the way the pipelines do
        connection.execute(sa.update(TOUCHES).values(status="dead_letter", error="boom"))
        connection.execute(sa.update(INBOX).values(status="dead_letter", result="boom"))
        connection.execute(
            DEAD_LETTERS.insert().values(
                key=f"inbox:{event}",
                item="inbox",
                item_id=event,
                stage="rescore",
                status="open",
                error="boom",
                payload={},
                failures=1,
                first_failed_at=T0,
                last_failed_at=T0,
                retries=0,
            )
        )

    downgrade(engine, "0009")
    assert "dead_letters" not in sa.inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert connection.execute(sa.select(TOUCHES.c.id, TOUCHES.c.status)).one() == (
            touch,
            "pending",
        )
        assert connection.execute(sa.select(INBOX.c.id, INBOX.c.status)).one() == (event, "pending")
    upgrade(engine)
