"""SMS over a 30-day simulation, on SQLite and PostgreSQL: every SMS goes out once, only to
leads who consented, only 08:00-21:00 their time; an SMS STOP suppresses SMS at once and
no SMS follows it, while email goes on."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.settings import Settings
from leadops.delivery.sms_text import OPT_OUT_LINE
from leadops.engagement import inbox
from leadops.engagement.apply import process_inbox
from leadops.engagement.report import RescoreReport
from leadops.engagement.scoring import load_scoring
from leadops.models import LEADS, TOUCHES
from leadops.nurture.tick import TickReport, simulate
from leadops.providers.twilio.events import twilio_inbound_record
from leadops.runtime import load_runtime
from tests.conftest import ROOT, make_settings

START = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)  # a Tuesday, before anyone's send window
# name: (stage, time zone, SMS consent, SMS suppressed already)
LEADS_GIVEN: dict[str, tuple[str, str, bool, bool]] = {
    "utc": ("mql", "UTC", True, False),
    "new-york": ("mql", "America/New_York", True, False),
    "kolkata": ("sql", "Asia/Kolkata", True, False),
    "no-consent": ("mql", "UTC", False, False),
    "suppressed": ("mql", "UTC", True, True),
    "stopper": ("mql", "Europe/London", True, False),
}


def _insert_leads(engine: Engine) -> dict[str, int]:
    rows = [
        {
            "email": f"{name}@example.com",
            "phone": f"+1415555{n:04d}",
            "first_name": name.title(),
            "last_name": "Example",
            "company": "Example Co",
            "timezone": zone,
            "country": "US",
            "lifecycle_stage": stage,
            "email_consent": True,
            "email_consent_at": START,
            "whatsapp_consent": False,
            "sms_consent": consent,
            "sms_consent_at": START if consent else None,
            "sms_suppressed_at": START - timedelta(days=3) if suppressed else None,
            "sms_suppression_reason": "invalid_number" if suppressed else None,
            "score": 0,
            "created_at": START - timedelta(days=1),
            "updated_at": START,
        }
        for n, (name, (stage, zone, consent, suppressed)) in enumerate(LEADS_GIVEN.items())
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(LEADS), rows)
        found = conn.execute(sa.select(LEADS.c.id, LEADS.c.email)).all()
    return {email.split("@")[0]: lead_id for lead_id, email in found}


def _settings(tmp_path: Path, engine: Engine) -> Settings:
    # A send window wider than SMS quiet hours: email may go at 07:00, SMS waits for 08:00.
    return make_settings(
        tmp_path,
        database_url=engine.url.render_as_string(hide_password=False),
        send_window_start=time(7, 0),
        send_window_end=time(22, 0),
    )


def _touches(engine: Engine) -> list[Any]:
    t = TOUCHES.c
    with engine.connect() as conn:
        return conn.execute(
            sa.select(
                t.id, t.lead_id, t.campaign, t.step, t.channel, t.status, t.sent_at, t.hold_reason
            ).order_by(t.id)
        ).all()


def test_thirty_days_of_sms_once_with_consent_in_quiet_hours_and_stop_at_once(
    engine: Engine, tmp_path: Path
) -> None:
    leads = _insert_leads(engine)
    settings = _settings(tmp_path, engine)
    runtime = load_runtime(settings, engine=engine)
    scoring = load_scoring(ROOT / "config")
    stopped: dict[str, Any] = {}

    def stop_after_first_sms(tick: TickReport) -> None:
        """Once the stopper's first SMS is out, they reply "Stop" (applied at once)."""
        if stopped:
            return
        sent = [
            row
            for row in _touches(engine)
            if row.lead_id == leads["stopper"] and row.channel == "sms" and row.sent_at
        ]
        if not sent:
            return
        at = tick.now + timedelta(minutes=5)
        params = {
            "MessageSid": "SM" + "5" * 32,
            "From": "+14155550005",
            "To": "+14155550100",
            "Body": "Stop ",
        }
        inbox.store(engine, [twilio_inbound_record(params)], at)
        process_inbox(engine, scoring, at, RescoreReport(now=at))
        with engine.connect() as conn:
            lead = conn.execute(sa.select(LEADS).where(LEADS.c.id == leads["stopper"])).one()
        stopped.update(at=at, suppressed_at=lead.sms_suppressed_at, why=lead.sms_suppression_reason)

    report = simulate(runtime, START, START + timedelta(days=30), on_tick=stop_after_first_sms)
    runtime.dispose()
    assert report.ticks > 5
    zones = {leads[name]: ZoneInfo(zone) for name, (_, zone, _, _) in LEADS_GIVEN.items()}
    touches = _touches(engine)
    sms = [row for row in touches if row.channel == "sms"]
    sent = [row for row in sms if row.status == "sent"]

    # Once: one sent SMS per lead and step; connect has SMS on day 1 and 10, offer on day 1.
    assert Counter((r.lead_id, r.campaign, r.step) for r in sent).most_common(1)[0][1] == 1
    expected = {
        (leads["utc"], "connect", "day-1"),
        (leads["utc"], "connect", "day-10"),
        (leads["new-york"], "connect", "day-1"),
        (leads["new-york"], "connect", "day-10"),
        (leads["kolkata"], "offer", "day-1"),
        (leads["stopper"], "connect", "day-1"),
    }
    assert {(r.lead_id, r.campaign, r.step) for r in sent} == expected
    # Only with consent: no SMS touch at all without it; a suppressed number is skipped.
    assert not [r for r in sms if r.lead_id == leads["no-consent"]]
    assert {r.status for r in sms if r.lead_id == leads["suppressed"]} == {"skipped"}
    # Only 08:00-21:00 local, while email went at 07:00 where its window allowed.
    for row in sent:
        local = row.sent_at.astimezone(zones[row.lead_id])
        assert time(8, 0) <= local.time() < time(21, 0), (row.lead_id, local)
    first = {(r.lead_id, r.channel): r.sent_at for r in touches if r.step == "day-1"}
    assert first[(leads["utc"], "email")] == START.replace(hour=7)
    assert first[(leads["utc"], "sms")] == START.replace(hour=8)

    # STOP: suppressed when applied, nothing on SMS after it, email continues.
    assert stopped["suppressed_at"] == stopped["at"] and stopped["why"] == "sms_opt_out"
    after = [r for r in sms if r.lead_id == leads["stopper"] and r.step != "day-1"]
    assert [(r.status, r.hold_reason) for r in after] == [("skipped", "suppressed")]
    emails = {r.step for r in touches if r.lead_id == leads["stopper"] and r.channel == "email"}
    assert emails == {"day-1", "day-10", "day-20"}

    # The file outbox holds each sent SMS once; the lead's first names the sender and
    # carries the opt-out line, a later one does not repeat them.
    files = sorted((settings.resolved_outbox_dir / "sms").rglob("t*.json"))
    assert len(files) == len(sent)
    bodies = {
        (doc["lead_id"], doc["step"]): doc
        for doc in (json.loads(path.read_text()) for path in files)
    }
    day1, day10 = bodies[(leads["utc"], "day-1")], bodies[(leads["utc"], "day-10")]
    assert day1["to"] == "+14155550000"
    assert day1["body"].startswith("Northwind Analytics: ")
    assert day1["body"].endswith(OPT_OUT_LINE)
    assert OPT_OUT_LINE not in day10["body"] and "Northwind" not in day10["body"]
