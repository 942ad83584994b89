"""The forecast projects each profile of alike leads once: leads that differ only in what
the rules do not look at (a score or a company size on the same side of every rule's
threshold; when they went quiet, as long as no inactivity rule starts to match inside
the horizon) share one projection. Against the simulation, on
SQLite and on PostgreSQL where reachable: from a fresh start and from the middle of a
cycle (enrollments, pending touches and recent sends in flight)."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.settings import Settings
from leadops.models import LEADS, TOUCHES, TouchStatus
from leadops.nurture.calendar import pause_campaign
from leadops.nurture.forecast import forecast
from leadops.nurture.tick import simulate
from leadops.runtime import load_runtime
from tests.conftest import ROOT

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

# A rule ahead of the shipped ones: leads with a score of 40 or more at companies of
# 50 to 499 people get the offer sequence.
FANS = """rules:
  - segment: fans
    campaign: offer
    when:
      lifecycle_stage: [lead]
      score_at_least: 40
      company_size_at_least: 50
      company_size_below: 500
"""

# (stage, created days before START, time zone, WhatsApp consent, score, size, copies)
KINDS = [
    ("lead", 1.0, "UTC", True, 0, None, 3),  # educate from the start
    ("lead", 50.2, "America/New_York", False, 5, 20, 2),  # educate; quiet mid-sequence
    ("lead", 2.0, "UTC", True, 40, 50, 1),  # offer
    ("lead", 2.0, "UTC", True, 95, 499, 2),  # offer
    ("lead", 2.0, "UTC", True, 39, 100, 1),  # educate: score below 40
    ("lead", 2.0, "UTC", True, 60, 500, 1),  # educate: company too large
    ("mql", 52.0, "UTC", True, 0, None, 3),  # connect is paused: re-engage from day 8
    ("mql", 55.3, "Asia/Tokyo", True, 0, None, 1),  # the same from Saturday (Monday's sends)
    ("mql", 10.0, "UTC", True, 0, None, 2),  # waits for connect all along
    ("sql", 100.0, "Europe/Berlin", True, 0, None, 2),  # quiet already: re-engage
    ("customer", 3.0, "UTC", True, 0, None, 1),  # no segment: nothing
]


def _config(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    segments = folder / "segments.yaml"
    text = segments.read_text(encoding="utf-8")
    segments.write_text(text.replace("rules:\n", FANS, 1), encoding="utf-8")
    return folder


def _seed(engine: Engine) -> None:
    rows = []
    for kind, (stage, days, zone, whatsapp, score, size, copies) in enumerate(KINDS):
        for copy in range(copies):
            n = kind * 10 + copy
            rows.append(
                {
                    "email": f"p{n}@example.com",
                    "phone": f"+1415555{n:04d}",
                    "first_name": f"P{n}",
                    "timezone": zone,
                    "country": "US",
                    "lifecycle_stage": stage,
                    "email_consent": True,
                    "email_consent_at": START,
                    "whatsapp_consent": whatsapp,
                    "whatsapp_consent_at": START if whatsapp else None,
                    "score": score,
                    "company_size": size,
                    "created_at": START - timedelta(days=days),
                    "updated_at": START,
                }
            )
    with engine.begin() as conn:
        conn.execute(sa.insert(LEADS), rows)


def _sent_since(engine: Engine, since: datetime) -> Counter[tuple[date, str, str, str]]:
    t = TOUCHES.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.sent_at, t.campaign, t.step, t.channel).where(
                t.status == TouchStatus.SENT, t.sent_at >= since
            )
        ).all()
    return Counter((at.date(), campaign, step, channel) for at, campaign, step, channel in rows)


def test_alike_leads_share_a_projection_and_it_matches_the_simulation(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _seed(engine)
    settings = settings.model_copy(update={"config_dir": _config(tmp_path)})
    runtime = load_runtime(settings, engine=engine)
    pause_campaign(engine, runtime.campaigns, "connect", by="ops", reason="rework", now=START)
    middle, end = START + timedelta(days=3), START + timedelta(days=16)

    whole = forecast(runtime, START, 16)
    simulate(runtime, START, middle)
    rest = forecast(runtime, middle, 13)
    simulate(runtime, middle, end)

    assert whole.leads == rest.leads == sum(kind[-1] for kind in KINDS)
    assert whole.sends == _sent_since(engine, START)
    assert rest.sends == _sent_since(engine, middle)
    assert whole.waiting["connect"] == rest.waiting["connect"] == 2
    first_steps = {
        day: count
        for (day, campaign, step, channel), count in whole.sends.items()
        if (campaign, step, channel) == ("re-engage", "day-1", "email")
    }
    # two of the leads are in re-engage's 10% holdout (sent nothing), one each on the 1st and 9th
    assert first_steps == {date(2026, 12, 1): 1, date(2026, 12, 7): 1, date(2026, 12, 9): 2}
    assert whole.sends[(date(2026, 12, 1), "offer", "day-1", "email")] == 3  # the fans
