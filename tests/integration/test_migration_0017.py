"""Migration 0017 (CRM deals) on a database holding leads and escalations from before it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import downgrade, upgrade
from leadops.models import CRM_DEALS

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
BEFORE = "0016"  # the revision 0017 follows


def test_upgrade_keeps_leads_and_escalations_and_downgrade_drops_only_the_deals(
    engine: Engine,
) -> None:
    downgrade(engine, BEFORE)
    assert "crm_deals" not in sa.inspect(engine).get_table_names()
    with engine.begin() as connection:
        lead = connection.execute(
            sa.text(
                "INSERT INTO leads (email, timezone, lifecycle_stage, score, email_consent, "
                "whatsapp_consent, created_at, updated_at) VALUES ('ada@example.com', 'UTC', "
                "'sql', 80, true, false, :t, :t) RETURNING id"
            ),
            {"t": T0},
        ).scalar_one()
        escalation = connection.execute(
            sa.text(
                "INSERT INTO escalations (lead_id, trigger, trigger_key, score, reasons, "
                "status, reroutes, created_at, updated_at) VALUES (:lead, 'sql', 'k1', 80, "
                "'[]', 'open', 0, :t, :t) RETURNING id"
            ),
            {"lead": lead, "t": T0},
        ).scalar_one()

    upgrade(engine)
    with engine.begin() as connection:
        assert connection.execute(sa.text("SELECT score FROM leads")).scalar_one() == 80
        connection.execute(
            CRM_DEALS.insert().values(
                crm="hubspot",
                crm_id="9001",
                leadops_key=f"esc-{escalation}",
                lead_id=lead,
                escalation_id=escalation,
                status="won",
                amount_cents=1_250_000,
                closed_at=T0,
                created_at=T0,
                updated_at=T0,
            )
        )
    with engine.connect() as connection:
        (deal,) = connection.execute(sa.select(CRM_DEALS)).all()
    assert (deal.status, deal.amount_cents, deal.closed_at) == ("won", 1_250_000, T0)

    downgrade(engine, BEFORE)
    assert "crm_deals" not in sa.inspect(engine).get_table_names()
    with engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT trigger, status FROM escalations")).all()
    assert kept == [("sql", "open")]
    upgrade(engine)
    assert "crm_deals" in sa.inspect(engine).get_table_names()
