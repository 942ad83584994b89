"""The incremental no-opens pass: each run looks only at what changed since the last one,
with the same outcome as a full pass; decay in batches of leads."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.engagement import ledger, rescore
from leadops.models import PASS_MARKS
from tests.engagement import Harness, engagement_settings, new_signing_key, sg_event


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


def _penalties(h: Harness, lead_id: int) -> int:
    return sum(1 for rule, _ in h.ledger(lead_id) if rule == "no_opens")


def test_no_opens_looks_at_new_windows_and_late_opens(h: Harness) -> None:
    first = h.add_lead("ada@example.com")
    h.tick()  # ada's day-1 email
    h.clock.advance(timedelta(days=3))
    second = h.add_lead("bob@example.com")
    h.tick()  # bob's, three days later
    h.rescore()  # the first run: a full pass, then the mark
    with h.engine.connect() as conn:
        assert conn.execute(sa.select(PASS_MARKS.c.name)).scalars().all() == [ledger.NO_OPENS_MARK]

    h.clock.advance(timedelta(days=28))  # ada 31 days after her email, bob 28
    h.rescore()
    assert (_penalties(h, first), _penalties(h, second)) == (1, 0)
    h.clock.advance(timedelta(days=3))
    h.rescore()
    assert (_penalties(h, first), _penalties(h, second)) == (1, 1)

    # an open arrives late (its webhook was held up): ada's quiet stretch starts again there
    touch = h.touch(first, "email")
    opened_at = h.clock.now() - timedelta(days=2)
    h.sendgrid([sg_event("open", first, touch["id"], opened_at)])
    h.rescore()
    h.clock.advance(timedelta(days=27))
    h.rescore()
    assert _penalties(h, first) == 1
    h.clock.advance(timedelta(days=2))  # 30 days after the late open
    h.rescore()
    assert (_penalties(h, first), _penalties(h, second)) == (2, 1)

    # a run at an earlier time (e.g. `leadops rescore --now` in the past) is a full pass,
    # and so is the next one; nobody is penalised twice
    earlier = h.clock.now() - timedelta(days=40)
    rescore.run_rescore(h.runtime, earlier)
    h.clock.advance(timedelta(days=1))
    h.rescore()
    assert (_penalties(h, first), _penalties(h, second)) == (2, 1)


def test_decay_runs_over_every_batch_of_leads(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger, "LEAD_BATCH", 2)  # five leads: three batches
    leads = [h.add_lead(f"lead{n}@example.com") for n in range(5)]
    h.tick()
    for lead_id in leads:
        touch = h.touch(lead_id, "email")
        h.sendgrid([sg_event("click", lead_id, touch["id"], h.clock.now(), url="https://x")])
    h.rescore()
    h.clock.advance(timedelta(days=60))
    report = h.rescore()
    assert report.decay_rows == 5
    assert all(any(rule == "decay" for rule, _ in h.ledger(lead_id)) for lead_id in leads)
