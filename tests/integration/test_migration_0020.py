"""Migration 0020 (partial indexes on touches' provider message ids and sent times; a
fillfactor on leads on PostgreSQL) on a database holding touches from before it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import downgrade, upgrade

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
BEFORE = "0019"  # the revision 0020 follows
PARTIAL = {"ix_touches_provider_message_id", "ix_touches_sent_at"}


def _index_where(engine: Engine) -> dict[str, str | None]:
    """The WHERE clause of each of the two indexes (None: a full index)."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(
                sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'touches'")
            ).all()
        else:
            rows = connection.execute(
                sa.text("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'touches'")
            ).all()
    where = {}
    for name, sql in rows:
        if name in PARTIAL:
            where[name] = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else None
    return where


def _fillfactor(engine: Engine) -> list[str] | None:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT reloptions FROM pg_class WHERE relname = 'leads'")
        ).scalar_one()


def _touches_by_message_id(engine: Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT step, provider_message_id FROM touches "
                "WHERE provider_message_id IN ('sg-1', 'sg-2') ORDER BY step"
            )
        ).all()
    return [(row[0], row[1]) for row in rows]


def test_upgrade_keeps_touches_and_makes_the_indexes_partial(engine: Engine) -> None:
    downgrade(engine, BEFORE)
    assert _index_where(engine) == dict.fromkeys(PARTIAL)
    with engine.begin() as connection:
        lead = connection.execute(
            sa.text(
                "INSERT INTO leads (email, timezone, lifecycle_stage, score, email_consent, "
                "whatsapp_consent, created_at, updated_at) VALUES ('ada@example.com', 'UTC', "
                "'mql', 40, true, false, :t, :t) RETURNING id"
            ),
            {"t": T0},
        ).scalar_one()
        version = connection.execute(
            sa.text(
                "INSERT INTO campaign_versions (campaign, version, checksum, definition, "
                "created_at) VALUES ('welcome', 1, 'h', '{}', :t) RETURNING id"
            ),
            {"t": T0},
        ).scalar_one()
        enrollment = connection.execute(
            sa.text(
                "INSERT INTO enrollments (lead_id, campaign, campaign_version_id, status, "
                "started_at) VALUES (:lead, 'welcome', :version, 'active', :t) RETURNING id"
            ),
            {"lead": lead, "version": version, "t": T0},
        ).scalar_one()
        for step, status, sent_at, message_id in (
            ("day-1", "sent", T0, "sg-1"),
            ("day-3", "pending", None, None),
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO touches (lead_id, enrollment_id, campaign, "
                    "campaign_version_id, step, step_day, channel, status, due_at, "
                    "not_before, attempts, sent_at, provider_message_id, created_at, "
                    "updated_at) VALUES (:lead, :enrollment, 'welcome', :version, :step, 1, "
                    "'email', :status, :t, :t, 0, :sent_at, :message_id, :t, :t)"
                ),
                {
                    "lead": lead,
                    "enrollment": enrollment,
                    "version": version,
                    "step": step,
                    "status": status,
                    "sent_at": sent_at,
                    "message_id": message_id,
                    "t": T0,
                },
            )

    upgrade(engine)
    where = _index_where(engine)
    assert set(where) == PARTIAL
    assert "provider_message_id IS NOT NULL" in str(where["ix_touches_provider_message_id"])
    assert "sent_at IS NOT NULL" in str(where["ix_touches_sent_at"])
    if engine.dialect.name == "postgresql":
        assert _fillfactor(engine) == ["fillfactor=50"]
    assert _touches_by_message_id(engine) == [("day-1", "sg-1")]
    with engine.begin() as connection:  # a touch sent after the upgrade is found as well
        connection.execute(
            sa.text(
                "UPDATE touches SET status = 'sent', sent_at = :t, provider_message_id = 'sg-2' "
                "WHERE step = 'day-3'"
            ),
            {"t": T0},
        )
    assert _touches_by_message_id(engine) == [("day-1", "sg-1"), ("day-3", "sg-2")]

    downgrade(engine, BEFORE)
    assert _index_where(engine) == dict.fromkeys(PARTIAL)
    if engine.dialect.name == "postgresql":
        assert _fillfactor(engine) is None
    assert _touches_by_message_id(engine) == [("day-1", "sg-1"), ("day-3", "sg-2")]
    upgrade(engine)
    assert set(_index_where(engine)) == PARTIAL
