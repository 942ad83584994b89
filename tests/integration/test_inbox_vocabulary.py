"""The inbox stores what each event means (`event`) and the message it is about
(`touch_id`); the KPIs read those, never the text the rescore run writes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.delivery.compose import unsubscribe_url
from leadops.models import INBOX
from leadops.reporting import kpis
from tests.engagement import (
    PUBLIC_URL,
    Harness,
    engagement_settings,
    inbound_params,
    new_signing_key,
    sg_event,
    status_params,
)

ADA, BO = "+447700900123", "+447700900456"
BO_EMAIL = "bo@example.com"


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


def _inbox(h: Harness) -> dict[str, tuple[Any, ...]]:
    i = INBOX.c
    with h.engine.connect() as connection:
        rows = connection.execute(
            sa.select(i.dedupe_key, i.status, i.event, i.touch_id).order_by(i.id)
        ).all()
    return {key: tuple(rest) for key, *rest in rows}


def _first_wave(h: Harness) -> dict[str, int]:
    """Two leads with their day-1 email and WhatsApp messages sent, and one event of each
    kind the providers and our own links send, applied by the rescore run."""
    ada = h.add_lead("ada@example.com", ADA)
    bo = h.add_lead(BO_EMAIL, BO)
    h.tick()
    t = {
        "ada-email": h.touch(ada, "email")["id"],
        "ada-wa": h.touch(ada, "whatsapp")["id"],
        "bo-email": h.touch(bo, "email")["id"],
        "bo-wa": h.touch(bo, "whatsapp")["id"],
    }
    h.clock.advance(timedelta(hours=1))
    at = h.clock.now()
    assert (
        h.sendgrid(
            [
                sg_event("processed", ada, t["ada-email"], at),
                sg_event("delivered", ada, t["ada-email"], at),
                sg_event("open", ada, t["ada-email"], at, sg_machine_open=True),
                sg_event("open", ada, t["ada-email"], at, n=1),
                sg_event("click", ada, t["ada-email"], at, url="https://northwind.example/x"),
                sg_event(
                    "dropped", bo, t["bo-email"], at, reason="Bounced Address", email=BO_EMAIL
                ),
                sg_event("open", bo, 999_999, at, email=BO_EMAIL, n=2),  # no such touch
                sg_event("open", 999_998, 999_998, at, email="nobody@example.com"),  # no such lead
            ]
        ).status_code
        == 200
    )
    wa = "/webhooks/twilio/status?touch_id="
    h.twilio(f"{wa}{t['ada-wa']}", status_params("SMada", "sent"))
    h.twilio(f"{wa}{t['ada-wa']}", status_params("SMada", "read"))
    h.twilio(f"{wa}{t['bo-wa']}", status_params("SMbo", "failed", ErrorCode="21211"))
    h.twilio("/webhooks/twilio/inbound", inbound_params("SMin1", ADA, "Yes, call me"))
    h.twilio("/webhooks/twilio/inbound", inbound_params("SMin2", BO, "STOP"))
    h.rescore()
    h.clock.advance(timedelta(hours=1))
    path = unsubscribe_url(h.settings, ada).removeprefix(PUBLIC_URL)
    assert h.client.post(path, content="List-Unsubscribe=One-Click").status_code == 200
    h.rescore()
    return t


def test_each_event_is_stored_with_its_meaning_and_its_message(h: Harness) -> None:
    t = _first_wave(h)
    rows = _inbox(h)
    by_kind = dict(rows)
    assert len(rows) == 14
    sg = {key: row for key, row in rows.items() if key.startswith("sg:")}
    expected_sg = [
        ("processed", "processed", "other", t["ada-email"]),
        ("delivered", "processed", "delivered", t["ada-email"]),
        ("open", "processed", "machine_open", t["ada-email"]),
        ("open", "processed", "opened", t["ada-email"]),
        ("click", "processed", "clicked", t["ada-email"]),
        ("dropped", "processed", "dropped", t["bo-email"]),
        ("open", "processed", "opened", None),  # the touch it names does not exist
        ("open", "ignored", "opened", None),  # no such lead
    ]
    assert [(key.split(":")[1].split("-")[0], *row) for key, row in sg.items()] == expected_sg
    assert by_kind["tw:SMada:sent"] == ("processed", "sent", t["ada-wa"])
    assert by_kind["tw:SMada:read"] == ("processed", "read", t["ada-wa"])
    assert by_kind["tw:SMbo:failed"] == ("processed", "invalid_number", t["bo-wa"])
    # inbound messages and the link name only the lead: their last message before them
    assert by_kind["tw-in:SMin1"] == ("processed", "replied", t["ada-wa"])
    assert by_kind["tw-in:SMin2"] == ("processed", "opted_out", t["bo-wa"])
    link = [row for key, row in rows.items() if key.startswith("u:")]
    assert link == [("processed", "unsubscribed", max(t["ada-email"], t["ada-wa"]))]


def test_the_kpis_read_the_vocabulary_not_the_text_the_rescore_run_writes(
    h: Harness, tmp_path: Path
) -> None:
    _first_wave(h)
    before = kpis.compute(h.engine, h.clock.now(), config_dir=h.settings.config_dir)
    engagement = {(s.campaign, s.step, s.channel): s.engagement for s in before.steps}
    whatsapp = [e for (_, _, channel), e in engagement.items() if channel == "whatsapp"]
    email = [e for (_, _, channel), e in engagement.items() if channel == "email"]
    assert sum(e["replied"] or 0 for e in whatsapp) == 1
    assert sum(e["unsubscribed"] or 0 for e in whatsapp) == 2  # STOP, and Ada's link
    assert sum(e["bounced"] or 0 for e in whatsapp) == 1
    assert sum(e["opened"] or 0 for e in email) == 1  # the machine open is not an open
    assert sum(e["bounced"] or 0 for e in email) == 1
    with h.engine.begin() as connection:
        connection.execute(sa.update(INBOX).values(result="reworded for people"))
    after = kpis.compute(h.engine, h.clock.now(), config_dir=h.settings.config_dir)
    assert {(s.campaign, s.step, s.channel): s.engagement for s in after.steps} == engagement
