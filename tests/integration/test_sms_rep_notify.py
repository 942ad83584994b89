"""A rep notified by SMS: routing.yaml's sms number and notify choice, the short text sent
once through the SMS channel (here the file outbox)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from leadops.core.configfile import ConfigError
from leadops.sales.escalation import escalate
from tests.integration.test_escalation import (
    NOW,
    REASONS,
    add_lead,
    notifications,
    outbox_files,
    runtime_for,
)

ROUTING = """\
sla_minutes: 15
intro: {triggers: {}}
manager: {name: Mia Manager, email: mia@northwind.example}
fallback_queue: {name: Inside sales queue, email: queue@northwind.example}
reps:
  - key: ana
    name: Ana Ames
    email: ana@northwind.example
    sms: "+447700900101"
    territories: [GB]
    notify: [email, sms]
"""


def test_a_rep_gets_the_escalation_by_sms(tmp_path: Path, sqlite_engine: Engine) -> None:
    runtime = runtime_for(tmp_path, sqlite_engine, ROUTING)
    lead_id = add_lead(sqlite_engine, "olivia@acme.example")
    result = escalate(
        sqlite_engine, lead_id, "demo_requested", "evt-1", 72, REASONS, NOW, runtime=runtime
    )
    sent = notifications(sqlite_engine, result.escalation_id)
    assert [(n.channel, n.address, n.status) for n in sent] == [
        ("email", "ana@northwind.example", "sent"),
        ("sms", "+447700900101", "sent"),
    ]
    [text] = [f for f in outbox_files(runtime.settings) if f.parts[-4] == "sms"]
    document = json.loads(text.read_text())
    assert document["to"] == "+447700900101"
    assert "requested a demo" in document["body"] and "/escalations/ack/" in document["body"]


def test_notify_by_sms_needs_a_number(tmp_path: Path, sqlite_engine: Engine) -> None:
    with pytest.raises(ConfigError, match="notify by sms needs sms"):
        runtime_for(tmp_path, sqlite_engine, ROUTING.replace('    sms: "+447700900101"\n', ""))
    with pytest.raises(ConfigError, match=r"E\.164"):
        runtime_for(tmp_path, sqlite_engine, ROUTING.replace("+447700900101", "07700 900101"))
