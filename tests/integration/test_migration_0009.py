"""Migration 0009 (quarantined files, lead field issues) on a database holding rows."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import downgrade, upgrade

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_upgrade_keeps_rows_and_downgrade_removes_only_the_new_tables(engine: Engine) -> None:
    downgrade(engine, "0007")
    upgrade(engine, "0007")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO leads (email, timezone, lifecycle_stage, score, email_consent, "
                "whatsapp_consent, created_at, updated_at) VALUES ('old@x.io', 'UTC', 'lead', "
                "0, false, false, :now, :now)"
            ),
            {"now": NOW},
        )
        conn.execute(
            sa.text(
                "INSERT INTO quarantine (source, raw, reasons, status, created_at) "
                "VALUES ('csv', '{}', '[\"invalid_phone\"]', 'open', :now)"
            ),
            {"now": NOW},
        )
    upgrade(engine)
    names = set(sa.inspect(engine).get_table_names())
    assert {"quarantined_files", "lead_field_issues"} <= names
    with engine.begin() as conn:
        lead_id = conn.execute(sa.text("SELECT id FROM leads")).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO lead_field_issues (lead_id, field, value, reason, source, "
                "created_at) VALUES (:lead, 'phone', '12', 'invalid_phone', 'csv', :now)"
            ),
            {"lead": lead_id, "now": NOW},
        )
        conn.execute(
            sa.text(
                "INSERT INTO quarantined_files (source, name, path, stored_path, checksum, "
                "size, reason, detail, status, created_at) VALUES ('csv', 'a.csv', '/in/a.csv', "
                "'/data/a.csv', 'abc', 3, 'binary_file', 'NUL', 'open', :now)"
            ),
            {"now": NOW},
        )
        assert conn.execute(sa.text("SELECT count(*) FROM quarantine")).scalar_one() == 1
        # A field issue belongs to an existing lead.
        issue_lead = conn.execute(sa.text("SELECT lead_id FROM lead_field_issues")).scalar_one()
        assert issue_lead == lead_id
    downgrade(engine, "0007")
    names = set(sa.inspect(engine).get_table_names())
    assert not {"quarantined_files", "lead_field_issues"} & names
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT email FROM leads")).scalar_one() == "old@x.io"
        assert conn.execute(sa.text("SELECT count(*) FROM quarantine")).scalar_one() == 1
    upgrade(engine)
