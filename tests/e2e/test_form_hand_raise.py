"""A hand-raise form reaches a rep before any marketing consent: form POST -> inbox ->
`leadops escalations run` -> the rep is notified, the lead has no consent, and the form
did not change its stage."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadops.core.clock import SimulatedClock
from leadops.core.db import make_engine
from leadops.core.settings import get_settings
from leadops.models import ESCALATIONS, INBOX, LEADS
from leadops.web.app import create_app
from tests.e2e.test_cli import invoke, workdir

__all__ = ["workdir"]
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # a Tuesday afternoon in Europe
SECRET = "contact-secret-0123456789"


def test_a_contact_request_reaches_a_rep_without_consent_and_without_a_stage_change(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADOPS_FORM_CONTACT_US_SECRET", SECRET)
    invoke("init")
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    client = TestClient(create_app(settings, engine, SimulatedClock(NOW)))
    body = {
        "work_email": "mara.klein@kleinlogistik.example",
        "name_first": "Mara",
        "company": "Klein Logistik",
        "country": "DE",
        "message": "We ship 2,000 parcels a day. Can you call me on Thursday?",
    }
    response = client.post(
        "/forms/lead?form=contact-us", json=body, headers={"X-Leadops-Form-Secret": SECRET}
    )
    assert response.status_code == 202, response.text
    with engine.connect() as connection:
        lead = connection.execute(sa.select(LEADS)).mappings().one()
        inbox_rows = connection.execute(sa.select(INBOX.c.source, INBOX.c.status)).all()
    assert inbox_rows == [("form", "pending")]
    assert lead["lifecycle_stage"] == "lead" and lead["email_consent"] is False

    out = invoke("escalations", "run", "--now", NOW.isoformat())
    assert "webhook events applied 1" in out and "escalated 1" in out

    with engine.connect() as connection:
        escalation = connection.execute(sa.select(ESCALATIONS)).mappings().one()
        after = connection.execute(sa.select(LEADS)).mappings().one()
    assert escalation["lead_id"] == lead["id"]
    assert escalation["trigger"] == "contact_request"
    assert escalation["rep_key"]  # a rep, not the fallback queue
    assert after["email_consent"] is False and after["whatsapp_consent"] is False
    assert after["lifecycle_stage"] == "lead"  # scoring added points; nothing set the stage
    notes = list(settings.resolved_outbox_dir.rglob("escalations/rep/*"))
    assert notes, "the rep got no notification"
    text = "\n".join(path.read_text(errors="replace") for path in notes)
    assert "Mara" in text and "asked to be contacted" in text
    rows = json.loads(invoke("escalations", "list", "--format", "json"))
    assert [(row["lead_id"], row["trigger"]) for row in rows] == [(lead["id"], "contact_request")]
