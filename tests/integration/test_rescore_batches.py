"""The inbox applied in many small batches scores as one batch would: the caps' history
is carried from batch to batch (engagement.effects.CapHistory), including rows written
by an earlier batch or run, leads first seen in a later batch, and events older than any
before."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from leadops.engagement import apply
from tests.engagement import Harness, engagement_settings, new_signing_key, sg_event


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


def _opens(h: Harness, lead_id: int) -> list[int]:
    return [points for rule, points in h.ledger(lead_id) if rule == "email_open"]


def test_caps_hold_across_inbox_batches(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply, "INBOX_BATCH", 2)  # five events: three batches
    ada = h.add_lead("ada@example.com")
    bob = h.add_lead("bob@example.com")
    h.tick()
    at = h.clock.now()
    ada_touch, bob_touch = h.touch(ada, "email"), h.touch(bob, "email")
    events = [sg_event("open", ada, ada_touch["id"], at, n=n) for n in range(4)]
    # bob opens only in the third batch: his history is read then, not before
    events.append(sg_event("open", bob, bob_touch["id"], at, n=9, email="bob@example.com"))
    h.sendgrid(events)
    h.rescore()
    # 5 points each, at most 15 in any 7 days: three opens score, the fourth is recorded at 0
    assert _opens(h, ada) == [5, 5, 5, 0]
    assert _opens(h, bob) == [5]


def test_an_event_older_than_any_before_reads_the_older_history(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = h.add_lead("ada@example.com")
    h.tick()
    touch = h.touch(ada, "email")
    at = h.clock.now()
    long_ago = at - timedelta(days=97)
    h.sendgrid([sg_event("open", ada, touch["id"], long_ago, n=n) for n in range(3)])
    h.rescore()
    monkeypatch.setattr(apply, "INBOX_BATCH", 1)
    # the first batch holds ada's history from 90 days before now; the second event is a
    # day after the three old opens, so their 7-day cap applies to it
    h.sendgrid(
        [
            sg_event("open", ada, touch["id"], at, n=3),
            sg_event("open", ada, touch["id"], long_ago + timedelta(days=1), n=4),
        ]
    )
    h.rescore()
    assert _opens(h, ada) == [5, 5, 5, 5, 0]


def test_caps_count_rows_another_pass_wrote_between_runs(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply, "INBOX_BATCH", 1)
    ada = h.add_lead("ada@example.com")
    h.tick()
    touch = h.touch(ada, "email")
    at = h.clock.now()
    h.sendgrid([sg_event("open", ada, touch["id"], at, n=n) for n in range(2)])
    h.rescore()
    h.sendgrid([sg_event("open", ada, touch["id"], at, n=n) for n in range(2, 4)])
    h.rescore()
    assert _opens(h, ada) == [5, 5, 5, 0]
