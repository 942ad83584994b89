"""Campaigns on a calendar, on a real database: pause and resume in the middle of a
simulated cycle, the forecast against what the simulation sends, and a campaign's end."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.clock import ensure_utc
from leadops.core.db import make_engine, session_scope, upgrade
from leadops.core.settings import Settings
from leadops.intake.csv_source import read_csv
from leadops.intake.importer import import_records
from leadops.models import ENROLLMENTS, TOUCHES, TouchStatus
from leadops.nurture.calendar import pause_campaign, resume_campaign
from leadops.nurture.forecast import forecast
from leadops.nurture.runtime import Runtime
from leadops.nurture.tick import simulate
from leadops.runtime import load_runtime
from tests.conftest import ROOT, make_settings

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SAMPLE = ROOT / "config" / "sample_leads.csv"
SAMPLE_ROWS = 120  # the first rows of the sample (every segment and time zone): enough here


def _config(tmp_path: Path, **edits: tuple[str, str]) -> Path:
    """A copy of the sample config; `edits` replace text in a campaign file by its key."""
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    for key, (old, new) in edits.items():
        path = folder / "campaigns" / f"{key.replace('_', '-')}.yaml"
        text = path.read_text(encoding="utf-8")
        assert old in text, (key, old)
        path.write_text(text.replace(old, new), encoding="utf-8")
    return folder


def _engine(tmp_path: Path, config: Path) -> tuple[Engine, Settings]:
    settings = make_settings(tmp_path, config_dir=config)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return engine, settings


def _import(engine: Engine, settings: Settings, path: Path = SAMPLE, at: datetime = START) -> None:
    with session_scope(engine) as session:
        import_records(
            session,
            read_csv(path),
            source=f"csv:{path.name}",
            now=at,
            default_region=settings.default_region,
            default_timezone=settings.default_timezone,
        )


def _runtime(engine: Engine, settings: Settings) -> Runtime:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[: SAMPLE_ROWS + 1]
    sample = settings.data_dir / "sample_leads.csv"
    sample.parent.mkdir(parents=True, exist_ok=True)
    sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _import(engine, settings, sample)
    return load_runtime(settings, engine=engine)


def _sent_per_day(engine: Engine) -> Counter[tuple[date, str, str, str]]:
    t = TOUCHES.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.sent_at, t.campaign, t.step, t.channel).where(t.status == TouchStatus.SENT)
        ).all()
    return Counter(
        (sent_at.date(), campaign, step, channel) for sent_at, campaign, step, channel in rows
    )


def test_forecast_matches_what_the_simulation_sends_day_by_day(
    engine: Engine, settings: Settings
) -> None:
    """On SQLite, and on PostgreSQL where reachable."""
    runtime = _runtime(engine, settings)
    with engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(TOUCHES)).scalar_one()
    predicted = forecast(runtime, START, 30)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(TOUCHES)).scalar_one() == before
        assert conn.execute(sa.select(sa.func.count()).select_from(ENROLLMENTS)).scalar_one() == 0
    simulate(runtime, START, START + timedelta(days=30))
    sent = _sent_per_day(engine)
    assert predicted.total > 300
    assert predicted.sends == sent


def test_forecast_follows_the_calendar_and_pauses(tmp_path: Path) -> None:
    """A campaign starting on day 4 with its own days, hours and a blackout date, and a
    paused one: the forecast still matches the simulation, day by day."""
    config = _config(
        tmp_path,
        educate=(
            "cycle_days: 30\n",
            "cycle_days: 30\nstarts_at: 2026-12-04T13:30:00Z\n"
            "blackout_dates: [2026-12-14, 2026-12-15]\nsend_days: [mon, tue, thu]\n"
            "send_window: {start: '10:00', end: '16:00'}\n",
        ),
    )
    engine, settings = _engine(tmp_path, config)
    runtime = _runtime(engine, settings)
    pause_campaign(engine, runtime.campaigns, "offer", by="ops", reason="pricing review", now=START)
    predicted = forecast(runtime, START, 30)
    simulate(runtime, START, START + timedelta(days=30))
    sent = _sent_per_day(engine)
    assert predicted.sends == sent
    assert predicted.waiting["offer"] > 0  # leads for a paused campaign wait
    with engine.connect() as conn:
        educate = [
            sent_at.astimezone(ZoneInfo(zone))
            for sent_at, zone in conn.execute(
                sa.text(
                    "SELECT touches.sent_at, leads.timezone FROM touches JOIN leads "
                    "ON leads.id = touches.lead_id WHERE touches.campaign = 'educate' "
                    "AND touches.status = 'sent'"
                )
            ).all()
            for sent_at in [ensure_utc(datetime.fromisoformat(str(sent_at)).replace(tzinfo=UTC))]
        ]
    assert len(educate) > 50 and min(educate) >= datetime(2026, 12, 4, 13, 30, tzinfo=UTC)
    assert not {date(2026, 12, 14), date(2026, 12, 15)} & {local.date() for local in educate}
    assert {local.weekday() for local in educate} <= {0, 1, 3}
    assert all(10 <= local.hour < 16 for local in educate)
    assert not [key for key in sent if key[1] == "offer"]
    engine.dispose()


def test_pause_on_day_5_and_resume_on_day_9_holds_then_sends_everything_once(
    tmp_path: Path,
) -> None:
    # Educate's second step falls on day 7, inside the pause.
    config = _config(
        tmp_path, educate=("  - key: day-10\n    day: 10\n", "  - key: day-10\n    day: 7\n")
    )
    engine, settings = _engine(tmp_path, config)
    runtime = _runtime(engine, settings)
    paused_at, resumed_at = START + timedelta(days=4), START + timedelta(days=8)
    simulate(runtime, START, paused_at)
    pause_campaign(engine, runtime.campaigns, "educate", by="maya", reason="typo", now=paused_at)
    during = forecast(runtime, paused_at + timedelta(hours=1), 7)
    assert during.held_paused["educate"] > 0
    assert not [key for key in during.sends if key[1] == "educate"]
    simulate(runtime, paused_at, resumed_at)

    t = TOUCHES.c
    with engine.connect() as conn:
        held = conn.execute(
            sa.select(t.lead_id, t.step, t.channel, t.due_at).where(
                t.campaign == "educate", t.status == TouchStatus.PENDING
            )
        ).all()
        reasons = set(
            conn.execute(
                sa.select(t.hold_reason).where(
                    t.campaign == "educate", t.status == TouchStatus.PENDING
                )
            ).scalars()
        )
        sent_during = conn.execute(
            sa.select(sa.func.count()).where(
                t.campaign == "educate", t.sent_at >= paused_at, t.sent_at < resumed_at
            )
        ).scalar_one()
    assert sent_during == 0
    assert held and reasons == {"campaign_paused"}
    assert {step for _, step, _, _ in held} == {"day-10"}

    result = resume_campaign(
        engine, runtime.campaigns, "educate", by="maya", reason="fixed", now=resumed_at
    )
    assert result.touches_retimed == len(held)
    simulate(runtime, resumed_at, START + timedelta(days=28))

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.lead_id, t.step, t.channel, t.status, t.due_at, t.sent_at).where(
                t.campaign == "educate"
            )
        ).all()
    assert TouchStatus.PENDING not in {status for *_, status, _, _ in rows}
    per_lead: dict[tuple[int, str], dict[str, tuple[datetime, datetime]]] = {}
    for lead_id, step, channel, status, due_at, sent_at in rows:
        if status == TouchStatus.SENT:
            per_lead.setdefault((lead_id, channel), {})[step] = (due_at, sent_at)
    shift = resumed_at - paused_at
    for lead_id, step, channel, due_at in held:
        assert per_lead[(lead_id, channel)][step][0] == due_at + shift
    assert len(per_lead) > 50
    for steps in per_lead.values():
        assert set(steps) == {"day-1", "day-10", "day-20"}  # none lost, each sent once
        first, second, third = (steps[s][0] for s in ("day-1", "day-10", "day-20"))
        # the remaining steps keep their spacing: both moved by the pause
        assert second - first == timedelta(days=6) + shift
        assert third - second == timedelta(days=13)
        assert steps["day-10"][1] >= resumed_at
        assert steps["day-20"][1] - steps["day-10"][1] > timedelta(days=9)
    engine.dispose()


def test_a_campaign_past_its_end_stops_enrolling_and_lets_enrollments_finish(
    tmp_path: Path,
) -> None:
    ends_at = START + timedelta(days=1)
    config = _config(
        tmp_path,
        educate=("cycle_days: 30\n", f"cycle_days: 30\nends_at: {ends_at:%Y-%m-%dT%H:%M:%SZ}\n"),
    )
    engine, settings = _engine(tmp_path, config)
    runtime = _runtime(engine, settings)
    simulate(runtime, START, START + timedelta(days=2))
    late = tmp_path / "late.csv"
    late.write_text(
        "email,first_name,lifecycle_stage,email_consent,created_at\n"
        "late.subscriber@example.com,Late,subscriber,true,2026-12-03T08:00:00Z\n",
        encoding="utf-8",
    )
    _import(engine, settings, late, START + timedelta(days=2))
    simulate(runtime, START + timedelta(days=2), START + timedelta(days=23))

    e, t = ENROLLMENTS.c, TOUCHES.c
    with engine.connect() as conn:
        late_enrollments = conn.execute(
            sa.text(
                "SELECT count(*) FROM enrollments JOIN leads ON leads.id = enrollments.lead_id "
                "WHERE leads.email = 'late.subscriber@example.com'"
            )
        ).scalar_one()
        enrolled = conn.execute(
            sa.select(sa.func.count()).where(e.campaign == "educate")
        ).scalar_one()
        last_steps = conn.execute(
            sa.select(sa.func.count()).where(
                t.campaign == "educate", t.step == "day-20", t.status == TouchStatus.SENT
            )
        ).scalar_one()
    assert late_enrollments == 0  # past the end: waits, no enrollment
    assert enrolled > 50
    assert last_steps >= enrolled  # every enrollment in flight still got its last step
    engine.dispose()
