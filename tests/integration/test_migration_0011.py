"""Migration 0011 (the inbox event vocabulary) on a database holding the first wave's
events: the columns it adds are filled in with what the rescore run would store, a
pending event is applied later, and it downgrades cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import current_revision, downgrade, upgrade
from tests.engagement import Harness, engagement_settings, new_signing_key, sg_event
from tests.integration.test_inbox_vocabulary import _first_wave, _inbox


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


def test_migration_0011_fills_in_what_the_rescore_run_would_store(h: Harness) -> None:
    t = _first_wave(h)
    stored = _inbox(h)
    downgrade(h.engine, "0010")
    columns = {c["name"] for c in sa.inspect(h.engine).get_columns("inbox")}
    assert "event" not in columns and "touch_id" not in columns
    # the rows as revision 0010 left them: events applied, and one still pending
    pending = sg_event("open", 1, t["ada-email"], h.clock.now(), n=5)
    with h.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO inbox (source, kind, dedupe_key, payload, received_at, status)"
                " VALUES ('sendgrid', 'open', 'sg:pending', :payload, :at, 'pending')"
            ),
            {"payload": json.dumps(pending), "at": h.clock.now()},
        )
    upgrade(h.engine, "0011")
    assert current_revision(h.engine) == "0011"
    backfilled = _inbox(h)
    assert backfilled.pop("sg:pending") == ("pending", None, None)  # applied later
    assert backfilled == stored
    downgrade(h.engine, "0010")
    assert "event" not in {c["name"] for c in sa.inspect(h.engine).get_columns("inbox")}
    # today's rescore run reads today's schema: the pending event is applied after the
    # upgrade to the latest revision
    upgrade(h.engine)
    h.rescore()
    assert _inbox(h)["sg:pending"] == ("processed", "opened", t["ada-email"])
