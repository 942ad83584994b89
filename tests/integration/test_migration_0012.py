"""Migration 0012 (campaign pauses) on a database holding rows from before it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import downgrade, upgrade
from leadops.models import CAMPAIGN_PAUSES, TOUCHES
from tests.integration.test_migration_0010 import _touch_and_event

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
BEFORE = "0011"  # the revision 0012 follows


def test_upgrade_keeps_rows_and_downgrade_releases_paused_touches(engine: Engine) -> None:
    downgrade(engine, BEFORE)
    assert "campaign_pauses" not in sa.inspect(engine).get_table_names()
    with engine.begin() as connection:
        touch, _ = _touch_and_event(connection)

    upgrade(engine)
    with engine.begin() as connection:
        assert connection.execute(sa.select(TOUCHES.c.id, TOUCHES.c.status)).one() == (
            touch,
            "pending",
        )
        connection.execute(
            CAMPAIGN_PAUSES.insert().values(
                campaign="educate", paused_at=T0, paused_by="maya", pause_reason="typo"
            )
        )
        connection.execute(sa.update(TOUCHES).values(hold_reason="campaign_paused"))
    # one open pause per campaign
    with engine.begin() as connection:
        try:
            connection.execute(
                CAMPAIGN_PAUSES.insert().values(
                    campaign="educate", paused_at=T0, paused_by="ops", pause_reason=""
                )
            )
        except sa.exc.IntegrityError:
            pass
        else:
            raise AssertionError("a second open pause of one campaign was accepted")

    downgrade(engine, BEFORE)
    assert "campaign_pauses" not in sa.inspect(engine).get_table_names()
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(TOUCHES.c.id, TOUCHES.c.status, TOUCHES.c.hold_reason)
        ).one()
    assert tuple(row) == (touch, "pending", None)  # the previous version sends it on time
    upgrade(engine)
