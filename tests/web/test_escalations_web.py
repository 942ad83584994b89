"""Acknowledging an escalation through its signed link, as a rep's browser would."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from leadops.core.clock import SimulatedClock
from leadops.core.tokens import sign
from leadops.sales.escalation import escalate
from leadops.sales.sla import check_slas
from leadops.web.app import create_app
from tests.integration.test_escalation import NOW, add_lead, get, runtime_for


def ack_path(runtime_outbox: Path, rep_folder: str = "rep") -> str:
    mail = next((runtime_outbox / "email" / "escalations" / rep_folder).glob("*.eml"))
    text = mail.read_text().replace("=\n", "")
    match = re.search(r"http://127\.0\.0\.1:8000(/escalations/ack/[A-Za-z0-9_\-.]+)", text)
    assert match, text
    return match.group(1)


def test_ack_link_confirms_on_get_and_acknowledges_on_post(tmp_path: Path, engine: Engine) -> None:
    runtime = runtime_for(tmp_path, engine)
    lead_id = add_lead(engine, "olivia@acme.example", first_name="Olivia")
    result = escalate(engine, lead_id, "demo_requested", "e1", 80, ["demo"], NOW, runtime=runtime)
    path = ack_path(runtime.settings.resolved_outbox_dir)
    clock = SimulatedClock(NOW + timedelta(minutes=4))
    client = TestClient(create_app(runtime.settings, engine, clock))

    page = client.get(path)
    assert page.status_code == 200 and "Acknowledge this lead?" in page.text
    assert "Olivia" in page.text and 'method="post"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert get(engine, result.escalation_id).status == "open"  # GET changes nothing

    assert "You acknowledge as <strong>ana</strong>" in page.text
    assert 'name="by"' not in page.text  # nobody types who they are

    # A typed name is ignored: the acknowledgement is the rep the link was sent to.
    done = client.post(path, data={"by": "Mallory"})
    assert done.status_code == 200 and "Acknowledged" in done.text
    escalation = get(engine, result.escalation_id)
    assert escalation.status == "acknowledged" and escalation.acknowledged_by == "ana"
    assert escalation.acknowledged_at == NOW + timedelta(minutes=4)
    again = client.post(path)
    assert again.status_code == 200 and "Already acknowledged by ana" in again.text
    assert check_slas(runtime, NOW + timedelta(hours=1)).rerouted == 0


def test_forged_expired_and_outdated_links_are_refused(tmp_path: Path, engine: Engine) -> None:
    runtime = runtime_for(tmp_path, engine)
    lead_id = add_lead(engine, "slow@acme.example")
    result = escalate(engine, lead_id, "demo_requested", "e1", 80, ["demo"], NOW, runtime=runtime)
    path = ack_path(runtime.settings.resolved_outbox_dir)
    client = TestClient(create_app(runtime.settings, engine, SimulatedClock(NOW)))

    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert client.post(forged).status_code == 400
    wrong_purpose = sign("unsubscribe", {"e": 1, "a": 1}, runtime.settings.signing_key())
    response = client.get(f"/escalations/ack/{wrong_purpose}")
    assert response.status_code == 400 and "not &#39;ack&#39;" in response.text

    late = TestClient(create_app(runtime.settings, engine, SimulatedClock(NOW + timedelta(days=4))))
    assert "expired" in late.post(path).text

    check_slas(runtime, NOW + timedelta(minutes=16))  # re-routed from ana to ben
    response = client.post(path, data={"by": "Ana"})
    assert response.status_code == 409 and "re-routed to ben" in response.text
    assert get(engine, result.escalation_id).status == "rerouted"
    assert client.post(ack_path(runtime.settings.resolved_outbox_dir, "digest")).status_code == 200
    acknowledged = get(engine, result.escalation_id)
    assert acknowledged.status == "acknowledged"
    assert acknowledged.acknowledged_by.startswith("manager: ")  # the manager's own link
