"""From a signed webhook to the rep's notification: a demo request and a click make a lead
sales-ready, and the every-minute pass escalates it with the ledger's reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.models import ESCALATIONS
from leadops.runtime import load_escalation_runtime
from leadops.sales.handoff import apply_inbox_and_escalate
from tests.engagement import Harness, engagement_settings, new_signing_key, sg_event


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


def test_demo_request_and_click_reach_the_rep_with_reasons_in_one_pass(h: Harness) -> None:
    lead_id = h.add_lead(
        "ada@harbourbank.example", seniority="director", company_size=300, country="GB"
    )
    h.tick()  # the educate day-1 email goes out
    touch = h.touch(lead_id, "email")
    at = h.clock.now()
    demo = {
        "id": "demo-1",
        "type": "demo_requested",
        "email": "ada@harbourbank.example",
        "occurred_at": at.isoformat(),
    }
    assert h.site(demo).status_code in (200, 202)
    click = sg_event(
        "click", lead_id, touch["id"], at, email="ada@harbourbank.example", url="https://x.example"
    )
    assert h.sendgrid([click]).status_code in (200, 202)

    escalation = load_escalation_runtime(h.settings, engine=h.engine)
    handed = apply_inbox_and_escalate(h.runtime, escalation, at)
    assert (handed.events, handed.escalated) == (2, 1)

    with h.engine.connect() as connection:
        row = connection.execute(sa.select(ESCALATIONS)).one()
    assert (row.lead_id, row.trigger, row.rep_key) == (lead_id, "demo_requested", "james")
    assert [r["reason"] for r in row.reasons][:1] == ["demo_requested"]

    notes = sorted((h.settings.resolved_outbox_dir / "whatsapp").rglob("escalations/rep/*.json"))
    assert len(notes) == 1
    text = json.dumps(json.loads(notes[0].read_text()))
    assert "demo_requested" in text and "Ada" in text
    emails = list((h.settings.resolved_outbox_dir / "email").rglob("escalations/rep/*"))
    assert len(emails) == 1

    # The same webhooks again change nothing: no second escalation, no second message.
    assert h.site(demo).status_code in (200, 202)
    again = apply_inbox_and_escalate(h.runtime, escalation, at)
    assert again.escalated == 0
    assert len(list(h.settings.resolved_outbox_dir.rglob("escalations/rep/*"))) == 2
