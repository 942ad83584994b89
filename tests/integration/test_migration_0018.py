"""Migration 0018 (CRM write-back outbox) on a database holding a deal from before it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import downgrade, upgrade
from leadops.models import CRM_CONTACTS, CRM_DEALS

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
BEFORE = "0017"


def test_upgrade_keeps_deals_and_downgrade_drops_only_the_outbox(engine: Engine) -> None:
    downgrade(engine, BEFORE)
    assert "crm_contacts" not in sa.inspect(engine).get_table_names()
    with engine.begin() as connection:
        lead = connection.execute(
            sa.text(
                "INSERT INTO leads (email, crm_id, timezone, lifecycle_stage, score, "
                "email_consent, whatsapp_consent, created_at, updated_at) VALUES "
                "('ada@example.com', '77', 'UTC', 'sql', 80, true, false, :t, :t) RETURNING id"
            ),
            {"t": T0},
        ).scalar_one()
        connection.execute(
            sa.text(
                "INSERT INTO crm_deals (crm, crm_id, lead_id, status, amount_cents, "
                "created_at, updated_at) VALUES ('hubspot', '9001', :lead, 'won', 500, :t, :t)"
            ),
            {"lead": lead, "t": T0},
        )

    upgrade(engine)
    with engine.begin() as connection:
        deal = connection.execute(sa.select(CRM_DEALS)).one()
        assert (deal.crm_id, deal.amount_cents, deal.crm_task_id) == ("9001", 500, None)
        connection.execute(
            CRM_CONTACTS.insert().values(
                crm="hubspot",
                crm_id="77",
                lead_id=lead,
                status="pending",
                pending={"leadops_score": 80},
                queued_at=T0,
                attempts=0,
            )
        )
        connection.execute(CRM_DEALS.update().values(crm_task_id="t1"))

    downgrade(engine, BEFORE)
    tables = sa.inspect(engine).get_table_names()
    assert "crm_contacts" not in tables and "crm_owners" not in tables
    columns = {c["name"] for c in sa.inspect(engine).get_columns("crm_deals")}
    assert "crm_task_id" not in columns
    with engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT crm_id, status FROM crm_deals")).all()
    assert kept == [("9001", "won")]
    upgrade(engine)
    assert "crm_contacts" in sa.inspect(engine).get_table_names()
