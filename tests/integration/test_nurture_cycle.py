"""The whole loop on a real database: import, 30-day simulation, idempotency, recovery."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from leadops.core.clock import SimulatedClock
from leadops.core.db import make_engine, session_scope, upgrade
from leadops.core.settings import Settings
from leadops.intake.csv_source import read_csv
from leadops.intake.importer import import_records
from leadops.models import (
    TOUCHES,
    CampaignVersion,
    Enrollment,
    Lead,
    QuarantinedRecord,
    Touch,
    TouchStatus,
)
from leadops.nurture.tick import run_tick, simulate
from leadops.runtime import load_runtime
from tests.conftest import ROOT, make_settings

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SAMPLE = ROOT / "config" / "sample_leads.csv"


def _import(engine: Engine, settings: Settings, path: Path = SAMPLE) -> None:
    with session_scope(engine) as session:
        import_records(
            session,
            read_csv(path),
            source="csv:test",
            now=START,
            default_region=settings.default_region,
            default_timezone=settings.default_timezone,
        )


def _small_csv(tmp_path: Path, rows: int) -> Path:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "small.csv"
    path.write_text("\n".join(lines[: rows + 1]) + "\n", encoding="utf-8")
    return path


def _sent(engine: Engine) -> list[tuple[int, str, str, str, datetime, str]]:
    with Session(engine) as session:
        return [
            (t.lead_id, t.campaign, t.step, t.channel, t.sent_at, lead.timezone)  # type: ignore[misc]
            for t, lead in session.exec(
                select(Touch, Lead).where(Touch.lead_id == Lead.id, Touch.status == "sent")
            )
        ]


def test_thirty_day_cycle_sends_each_step_once_inside_local_windows(
    sqlite_engine: Engine, settings: Settings
) -> None:
    _import(sqlite_engine, settings)
    runtime = load_runtime(settings, engine=sqlite_engine)
    report = simulate(runtime, START, START + timedelta(days=30))
    assert report.ticks > 10

    with Session(sqlite_engine) as session:
        quarantined = session.exec(select(QuarantinedRecord)).all()
        leads = session.exec(select(Lead)).all()
        enrollments = session.exec(select(Enrollment)).all()
        pending = session.exec(select(Touch).where(Touch.status == "pending")).all()
    reasons = Counter(r for q in quarantined for r in q.reasons)
    assert len(quarantined) == 5  # the sample's one duplicate is merged, not quarantined
    # A bad time zone or creation date costs no lead: both are imported, the value flagged.
    assert len(leads) == 222
    assert reasons == {
        "invalid_email": 2,
        "invalid_phone": 1,
        "missing_contact": 1,
        "invalid_lifecycle_stage": 1,
    }
    assert pending == []  # nothing left waiting: every held step went out when allowed

    sent = _sent(sqlite_engine)
    per_lead_channel: Counter[tuple[int, str, str]] = Counter()
    for lead_id, campaign, step, channel, sent_at, zone in sent:
        local = sent_at.astimezone(ZoneInfo(zone))
        assert local.weekday() < 5 and 9 <= local.hour < 18, (lead_id, step, local)
        per_lead_channel[(lead_id, campaign, channel)] += 1
    sms_steps = {"connect": 2, "offer": 1}  # the sample campaigns' SMS steps
    for (lead_id, campaign, channel), n in per_lead_channel.items():
        assert n == (sms_steps[campaign] if channel == "sms" else 3), (lead_id, campaign)
    assert any(channel == "sms" for _, _, channel in per_lead_channel)

    enrolled = {e.lead_id: e.campaign for e in enrollments}
    held_out = {e.lead_id for e in enrollments if e.arm == "holdout"}
    assert held_out  # re-engage holds out 10% of its leads: they are sent nothing
    for lead in leads:
        if lead.lifecycle_stage == "customer":
            assert lead.id not in enrolled
            continue
        campaign = enrolled[lead.id]
        expected = set()
        if lead.email and lead.email_consent and lead.id not in held_out:
            expected.add("email")
        if lead.phone and lead.whatsapp_consent and lead.id not in held_out:
            expected.add("whatsapp")
        if lead.phone and lead.sms_consent and campaign in sms_steps:
            expected.add("sms")
        got = {ch for (lid, c, ch) in per_lead_channel if lid == lead.id and c == campaign}
        assert got == expected, lead.id
        steps = sorted(s for (lid, _, s, ch, _, _) in sent if lid == lead.id and ch in expected)
        assert set(steps) <= {"day-1", "day-10", "day-20"}

    # Every sent message is a file in the outbox.
    files = list(settings.resolved_outbox_dir.rglob("t*.eml")) + list(
        settings.resolved_outbox_dir.rglob("t*.json")
    )
    assert len(files) == len(sent)

    # Running the whole simulation again sends nothing twice.
    simulate(runtime, START, START + timedelta(days=30))
    assert len(_sent(sqlite_engine)) == len(sent)


def test_steps_fall_due_on_day_1_10_and_20(sqlite_engine: Engine, settings: Settings) -> None:
    _import(sqlite_engine, settings, _small_csv(settings.data_dir.parent, 30))
    runtime = load_runtime(settings, engine=sqlite_engine)
    simulate(runtime, START, START + timedelta(days=30))
    with Session(sqlite_engine) as session:
        for touch in session.exec(select(Touch)):
            enrollment = session.get(Enrollment, touch.enrollment_id)
            assert enrollment is not None
            expected_day = {"day-1": 1, "day-10": 10, "day-20": 20}[touch.step]
            assert touch.due_at == enrollment.started_at + timedelta(days=expected_day - 1)
            assert touch.sent_at is None or touch.sent_at >= touch.due_at
            # held at most until the next weekday window opens (Friday evening -> Monday)
            if touch.sent_at is not None:
                assert touch.sent_at - touch.due_at < timedelta(days=4)


def test_same_tick_twice_sends_nothing_twice(engine: Engine, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    _import(engine, settings, _small_csv(tmp_path, 25))
    runtime = load_runtime(settings, engine=engine)
    at = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # a Wednesday: Europe and US east are open
    first = run_tick(runtime, SimulatedClock(at))
    second = run_tick(runtime, SimulatedClock(at))
    assert first.dispatch.sent_total > 0
    assert second.dispatch.sent_total == 0
    with engine.connect() as conn:
        dupes = conn.execute(
            sa.select(TOUCHES.c.lead_id, TOUCHES.c.step, TOUCHES.c.channel, sa.func.count())
            .group_by(TOUCHES.c.lead_id, TOUCHES.c.step, TOUCHES.c.channel)
            .having(sa.func.count() > 1)
        ).all()
    assert dupes == []


def _with_copied_folder(tmp_path: Path, folder: str, leads: int) -> tuple[Path, Settings, Engine]:
    """A migrated SQLite database whose `folder` (config or templates) is a private copy."""
    copy = tmp_path / folder
    shutil.copytree(ROOT / folder, copy)
    settings = make_settings(tmp_path, **{f"{folder}_dir": copy})
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    _import(engine, settings, _small_csv(tmp_path, leads))
    return copy, settings, engine


def test_editing_a_campaign_after_enrollment_does_not_resend(tmp_path: Path) -> None:
    config, settings, engine = _with_copied_folder(tmp_path, "config", 20)
    at = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    run_tick(load_runtime(settings, engine=engine), SimulatedClock(at))
    before = len(_sent(engine))
    assert before > 0

    path = config / "campaigns" / "educate.yaml"
    path.write_text(path.read_text().replace("Welcome and the metrics guide", "Welcome!"))
    run_tick(load_runtime(settings, engine=engine), SimulatedClock(at + timedelta(hours=1)))
    with Session(engine) as session:
        versions = {e.campaign_version_id for e in session.exec(select(Enrollment))}
        edited = session.exec(
            select(CampaignVersion).where(
                CampaignVersion.campaign == "educate", CampaignVersion.version == 2
            )
        ).one()
        counts = Counter(
            (t.lead_id, t.step, t.channel)
            for t in session.exec(select(Touch))
            if t.status == "sent"
        )
    assert len(_sent(engine)) == before
    assert set(counts.values()) == {1}
    assert edited.id not in versions  # leads stay on the version they enrolled in


def test_broken_template_holds_touches_until_fixed(tmp_path: Path) -> None:
    templates, settings, engine = _with_copied_folder(tmp_path, "templates", 40)
    broken = templates / "email" / "educate" / "day-1.subject.j2"
    original = broken.read_text()
    broken.write_text("{{ lead.no_such_field }}\n")
    at = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    tick = run_tick(load_runtime(settings, engine=engine), SimulatedClock(at))
    assert tick.dispatch.held["render_error"] > 0
    assert any("email/educate/day-1.subject.j2:1" in e for e in tick.dispatch.errors)
    with Session(engine) as session:
        held = session.exec(select(Touch).where(Touch.hold_reason == "render_error")).all()
    assert held and all(t.status == "pending" for t in held)
    assert "day-1.subject.j2:1" in (held[0].error or "")

    broken.write_text(original)
    simulate(load_runtime(settings, engine=engine), at + timedelta(hours=1), at + timedelta(days=3))
    with Session(engine) as session:
        after = [session.get(Touch, t.id) for t in held]
    assert all(t is not None and t.status == "sent" for t in after)


@pytest.mark.parametrize("file_written", [True, False])
def test_dispatcher_crash_while_sending_is_recovered_without_resending(
    sqlite_engine: Engine, settings: Settings, file_written: bool
) -> None:
    _import(sqlite_engine, settings, _small_csv(settings.data_dir.parent, 10))
    runtime = load_runtime(settings, engine=sqlite_engine)
    at = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    run_tick(runtime, SimulatedClock(at))
    with Session(sqlite_engine) as session:
        touch = session.exec(select(Touch).where(Touch.status == "sent")).first()
        assert touch is not None and touch.provider_id is not None
        path = settings.resolved_outbox_dir / touch.provider_id
        assert path.exists()
        # Simulate a dispatcher killed between "sending" and recording the result.
        touch.status, touch.lease_until, touch.claim_token = "sending", at, "dead-worker"
        touch.provider_id = None
        session.add(touch)
        session.commit()
        touch_id = touch.id
    if not file_written:
        path.unlink()
    run_tick(runtime, SimulatedClock(at + timedelta(minutes=10)))
    with Session(sqlite_engine) as session:
        recovered = session.get(Touch, touch_id)
    assert recovered is not None
    if file_written:
        assert recovered.status == TouchStatus.SENT
        assert recovered.provider_id is not None
    else:
        assert recovered.status == TouchStatus.AMBIGUOUS
        assert "not re-sent" in (recovered.error or "")
        assert not path.exists()


def test_unsubscribed_and_suppressed_leads_are_skipped_with_reasons(
    sqlite_engine: Engine, settings: Settings
) -> None:
    _import(sqlite_engine, settings, _small_csv(settings.data_dir.parent, 12))
    at = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    with Session(sqlite_engine) as session:
        leads = session.exec(select(Lead).where(Lead.email_consent == True)).all()  # noqa: E712
        leads[0].unsubscribed_at = at
        leads[1].email_suppressed_at, leads[1].email_suppression_reason = at, "hard bounce"
        session.add_all(leads[:2])
        session.commit()
        ids = [leads[0].id, leads[1].id]
    tick = run_tick(load_runtime(settings, engine=sqlite_engine), SimulatedClock(at))
    assert tick.dispatch.skipped["unsubscribed"] >= 1
    assert tick.dispatch.skipped["suppressed"] >= 1
    with Session(sqlite_engine) as session:
        touches = session.exec(select(Touch).where(Touch.lead_id.in_(ids))).all()  # type: ignore[attr-defined]
    assert touches and all(t.status == "skipped" for t in touches if t.channel == "email")


def test_a_file_is_imported_once_unless_forced(engine: Engine, tmp_path: Path) -> None:
    from leadops.intake.csv_source import import_csv_file

    path = _small_csv(tmp_path, 15)
    options = {
        "source": "csv:small.csv",
        "now": START,
        "default_region": "US",
        "default_timezone": "UTC",
    }
    with session_scope(engine) as session:
        first, _ = import_csv_file(session, path, **options)  # type: ignore[arg-type]
    with session_scope(engine) as session:
        second, earlier = import_csv_file(session, path, **options)  # type: ignore[arg-type]
    with session_scope(engine) as session:
        forced, _ = import_csv_file(session, path, force=True, **options)  # type: ignore[arg-type]
    assert first is not None and first.created > 0
    assert second is None and earlier is not None and earlier.leads_created == first.created
    assert forced is not None and forced.created == 0
    assert forced.merged == first.created  # merged into the leads they made, not lost
    with Session(engine) as session:
        assert len(session.exec(select(Lead)).all()) == first.created
