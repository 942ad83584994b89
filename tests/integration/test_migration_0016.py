"""Migration 0016 (qualification, SMS consent, experiments) on a database holding leads,
enrollments and touches from before it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import downgrade, upgrade
from leadops.models import CAMPAIGN_VERSIONS, ENROLLMENTS, LEADS, TOUCHES

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
BEFORE = "0015"  # the revision 0016 follows
NEW_LEAD_COLUMNS = {
    "grade",
    "band",
    "lead_status",
    "status_reason",
    "status_at",
    "properties",
    "sms_consent",
    "sms_consent_at",
    "sms_suppressed_at",
    "sms_suppression_reason",
}


def _columns(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns(table)}


def test_upgrade_keeps_rows_with_nothing_set_and_downgrade_drops_only_the_new_columns(
    engine: Engine,
) -> None:
    downgrade(engine, BEFORE)
    assert not NEW_LEAD_COLUMNS & _columns(engine, "leads")
    with engine.begin() as connection:
        lead = connection.execute(
            sa.text(
                "INSERT INTO leads (email, timezone, lifecycle_stage, score, email_consent, "
                "whatsapp_consent, created_at, updated_at) VALUES ('ada@example.com', 'UTC', "
                "'mql', 42, true, false, :t, :t) RETURNING id"
            ),
            {"t": T0},
        ).scalar_one()
        version = connection.execute(
            CAMPAIGN_VERSIONS.insert().values(
                campaign="educate", version=1, checksum="c1", definition={}, created_at=T0
            )
        ).inserted_primary_key[0]
        enrollment = connection.execute(
            sa.text(
                "INSERT INTO enrollments (lead_id, campaign, campaign_version_id, status, "
                "started_at) VALUES (:lead, 'educate', :version, 'active', :t) RETURNING id"
            ),
            {"lead": lead, "version": version, "t": T0},
        ).scalar_one()
        connection.execute(
            sa.text(
                "INSERT INTO touches (lead_id, enrollment_id, campaign, campaign_version_id, "
                "step, step_day, channel, status, due_at, not_before, attempts, created_at, "
                "updated_at) VALUES (:lead, :enrollment, 'educate', :version, 'day1', 1, "
                "'email', 'sent', :t, :t, 1, :t, :t)"
            ),
            {"lead": lead, "enrollment": enrollment, "version": version, "t": T0},
        )

    upgrade(engine)
    with engine.connect() as connection:
        (old,) = connection.execute(sa.select(LEADS)).all()
        (joined,) = connection.execute(sa.select(ENROLLMENTS)).all()
        (touch,) = connection.execute(sa.select(TOUCHES)).all()
    assert (old.score, old.email_consent) == (42, True)
    assert old.sms_consent is False  # nobody gave SMS consent before SMS existed
    assert (old.grade, old.band, old.lead_status, old.properties) == (None, None, None, None)
    assert joined.arm is None and touch.variant is None
    with engine.begin() as connection:
        connection.execute(
            sa.update(LEADS).values(grade="B2", band="warm", properties={"budget": "yes"})
        )
        connection.execute(sa.update(TOUCHES).values(variant="b"))

    downgrade(engine, BEFORE)
    assert not NEW_LEAD_COLUMNS & _columns(engine, "leads")
    assert "arm" not in _columns(engine, "enrollments")
    assert "variant" not in _columns(engine, "touches")
    with engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT email, score FROM leads")).all()
        sent = connection.execute(sa.text("SELECT step, status FROM touches")).all()
    assert kept == [("ada@example.com", 42)] and sent == [("day1", "sent")]
    upgrade(engine)
    assert _columns(engine, "leads") >= NEW_LEAD_COLUMNS
