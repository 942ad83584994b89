"""The fast path and the every-minute pass at once: each hand-raise is applied, escalated
and notified exactly once however the two passes interleave (two engines, as two
processes: the task worker and the escalate flow run)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import make_engine
from leadops.models import ESCALATION_NOTIFICATIONS, ESCALATIONS, INBOX, SCORE_LEDGER
from leadops.runtime import build_runtime
from leadops.sales.handoff import apply_inbox_and_escalate
from leadops.sales.notify import deliver_notifications
from tests.engagement import Harness, engagement_settings, new_signing_key

LEADS = 6
ROUNDS = 2


def second_engine(engine: Engine) -> Engine:
    """Another engine on the same database, as another process has."""
    return make_engine(engine.url.render_as_string(hide_password=False))


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


def test_two_passes_at_once_escalate_and_notify_each_hand_raise_once(h: Harness) -> None:
    engines = [second_engine(h.engine), second_engine(h.engine)]
    runtimes = [build_runtime(h.settings, engine=engine, clock=h.clock) for engine in engines]
    for runtime in runtimes:
        runtime.nurture()
    at = h.clock.now()
    emails = {
        h.add_lead(email, country="GB"): email
        for email in (f"buyer{n}@company{n}.example" for n in range(LEADS * ROUNDS))
    }
    lead_ids = list(emails)
    errors: list[BaseException] = []

    def one_pass(index: int, barrier: threading.Barrier) -> None:
        runtime = runtimes[index]
        escalation = runtime.require_escalation()
        try:
            barrier.wait()
            apply_inbox_and_escalate(runtime, escalation, at)
            deliver_notifications(escalation, at)
        except BaseException as exc:  # reported below, with the other thread's
            errors.append(exc)

    try:
        for round_ in range(ROUNDS):
            batch = lead_ids[round_ * LEADS : (round_ + 1) * LEADS]
            events = [
                {
                    "id": f"demo-{lead_id}",
                    "type": "demo_requested",
                    "email": emails[lead_id],
                    "occurred_at": at.isoformat(),
                }
                for lead_id in batch
            ]
            assert h.site(events).status_code == 202
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=one_pass, args=(i, barrier)) for i in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert not errors, errors
    finally:
        for engine in engines:
            engine.dispose()

    with h.engine.connect() as connection:
        statuses = Counter(connection.execute(sa.select(INBOX.c.status)).scalars())
        demo_rows = Counter(
            connection.execute(
                sa.select(SCORE_LEDGER.c.lead_id).where(SCORE_LEDGER.c.rule == "demo_requested")
            ).scalars()
        )
        escalated = Counter(connection.execute(sa.select(ESCALATIONS.c.lead_id)).scalars())
        n, e = ESCALATION_NOTIFICATIONS.c, ESCALATIONS.c
        notified = connection.execute(
            sa.select(e.lead_id, n.channel, n.status)
            .select_from(ESCALATION_NOTIFICATIONS.join(ESCALATIONS, n.escalation_id == e.id))
            .where(n.role == "rep")
        ).all()
    assert statuses == {"processed": LEADS * ROUNDS}
    assert demo_rows == dict.fromkeys(lead_ids, 1)  # each event applied once
    assert escalated == dict.fromkeys(lead_ids, 1)
    per_lead = Counter((lead_id, channel) for lead_id, channel, _ in notified)
    assert set(per_lead.values()) == {1}
    assert {status for _, _, status in notified} == {"sent"}
    files = list(h.settings.resolved_outbox_dir.rglob("escalations/rep/*"))
    assert len(files) == len(notified)
