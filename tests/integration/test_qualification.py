"""Qualification through the real path: a CSV import carrying BANT properties (fit scored
at once), site events in the inbox, the every-minute pass (inbox, scores, grades, stages,
re-segmenting) and escalation to a rep. Plus sunset after re-engage."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from leadops.core.settings import Settings
from leadops.engagement import inbox
from leadops.engagement.rescore import run_rescore
from leadops.engagement.site import site_records
from leadops.intake.config import load_intake_config
from leadops.intake.run import import_file
from leadops.models import ESCALATIONS, LEAD_FIELD_ISSUES, Enrollment, Lead, Touch
from leadops.nurture.plan import plan_all
from leadops.nurture.tick import simulate
from leadops.reporting.kpis import compute
from leadops.runtime import Runtime, load_runtime
from leadops.sales.acks import acknowledge, close
from leadops.sales.handoff import apply_inbox_and_escalate
from tests.conftest import ROOT, make_settings

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # a Tuesday, inside the reps' hours

HEADER = "email,first_name,job_title,company_size,industry,country,Need,Timeline,Budget\n"
# Fit 35 each (senior buyer 15, 200+ 10, software 5, served country 5); BANT adds 10 each.
READY = "ready@acme.example,Rita,VP Sales,500,software,GB,high,now,\n"
ALPHA = "alpha@acme.example,Al,VP Sales,500,software,GB,high,,\n"
VAGUE = "vague@acme.example,Vic,VP Sales,500,software,GB,,,\n"
COLD = "cold@tiny.example,Cat,Intern,3,farming,BR,,,\n"
BAD = "bad@acme.example,Bea,VP Sales,500,software,GB,urgent,tomorrow,approved\n"

ROUTING = """\
sla_minutes: 15
intro: {triggers: {}}
rules: [grade, territory, round_robin]
manager: {name: Mia Manager, email: mia@northwind.example}
fallback_queue: {name: Inside sales queue, email: queue@northwind.example}
reps:
  - key: junior
    name: Jo Junior
    email: jo@northwind.example
    territories: [GB, BR]
    hours: {start: "00:00", end: "23:59", days: [mon, tue, wed, thu, fri, sat, sun]}
  - key: senior
    name: Sam Senior
    email: sam@northwind.example
    territories: [GB, BR]
    grades: [A1, A2]
    hours: {start: "00:00", end: "23:59", days: [mon, tue, wed, thu, fri, sat, sun]}
"""


def _config(tmp_path: Path, **edits: tuple[str, str]) -> Path:
    """A copy of config/ with `file=(old, new)` text replacements (each must apply)."""
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    (folder / "routing.yaml").write_text(ROUTING)
    for name, (old, new) in edits.items():
        path = folder / f"{name}.yaml"
        text = path.read_text()
        assert old in text, f"{path.name} has no {old!r}"
        path.write_text(text.replace(old, new))
    return folder


def _runtime(tmp_path: Path, engine: Engine, config: Path) -> tuple[Runtime, Settings]:
    settings = make_settings(tmp_path, config_dir=config, routing_file=config / "routing.yaml")
    return load_runtime(settings, engine=engine), settings


def _import(engine: Engine, settings: Settings, tmp_path: Path, *rows: str) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(HEADER + "".join(rows))
    config = load_intake_config(settings.config_dir)
    result = import_file(engine, settings, config, path, now=NOW - timedelta(days=1))
    assert result.report is not None and result.report.quarantined_records == 0


def _site(engine: Engine, email: str, *kinds: str, at: datetime = NOW) -> None:
    events = [
        {
            "id": f"{email}-{kind}-{at:%j%H%M}",
            "type": kind,
            "email": email,
            "occurred_at": at.isoformat(),
            "properties": {"url": "https://northwind.example/blog"},
        }
        for kind in kinds
    ]
    inbox.store(engine, site_records(json.dumps(events).encode()), at)


def _lead(engine: Engine, email: str) -> Lead:
    with Session(engine) as session:
        lead = session.exec(select(Lead).where(Lead.email == email)).one()
        session.expunge(lead)
        return lead


def _escalated_to(engine: Engine, lead_id: int) -> list[tuple[str, str | None]]:
    e = ESCALATIONS.c
    with engine.connect() as conn:
        return [
            (trigger, rep)
            for trigger, rep in conn.execute(
                sa.select(e.trigger, e.rep_key).where(e.lead_id == lead_id).order_by(e.id)
            ).all()
        ]


def test_bant_gate_holds_sql_until_need_and_timeline_are_known(
    tmp_path: Path, engine: Engine
) -> None:
    gate = ("sql_gate: {}", "sql_gate:\n  properties: {need: known, timeline: known}")
    runtime, settings = _runtime(tmp_path, engine, _config(tmp_path, scoring=gate))
    _import(engine, settings, tmp_path, READY, VAGUE, BAD)
    ready, vague, bad = (_lead(engine, f"{n}@acme.example") for n in ("ready", "vague", "bad"))
    assert ready.properties == {"need": "high", "timeline": "now"}
    assert vague.properties is None
    # The trust boundary: values a property's type refuses are flagged, never stored.
    assert bad.properties == {"budget": "approved"}
    with engine.connect() as conn:
        flagged = conn.execute(
            sa.select(LEAD_FIELD_ISSUES.c.field, LEAD_FIELD_ISSUES.c.reason).where(
                LEAD_FIELD_ISSUES.c.lead_id == bad.id
            )
        ).all()
    assert sorted(flagged) == [
        ("properties.need", "invalid_property"),
        ("properties.timeline", "invalid_property"),
    ]

    for lead in (ready, vague):  # 35 fit (+20 BANT for ready) + 50 engagement: both >= 80
        _site(engine, lead.email or "", "trial_started", "appointment_booked")
    apply_inbox_and_escalate(runtime, runtime.escalation, NOW)  # type: ignore[arg-type]
    ready, vague = _lead(engine, "ready@acme.example"), _lead(engine, "vague@acme.example")
    assert (ready.lifecycle_stage, ready.score) == ("sql", 105)
    assert (vague.lifecycle_stage, vague.score) == ("mql", 85)  # held back by the gate
    assert _escalated_to(engine, ready.id or 0)[0][0] == "sql_threshold"
    assert _escalated_to(engine, vague.id or 0) == []
    assert ready.lead_status == vague.lead_status == "pql"  # trial started: product use
    with Session(engine) as session:
        held = session.execute(
            sa.text("SELECT reason FROM stage_changes WHERE lead_id = :id"), {"id": vague.id}
        ).scalar_one()
    assert "not sql: need is not known" in held

    _site(engine, "vague@acme.example", "demo_requested", at=NOW + timedelta(minutes=5))
    apply_inbox_and_escalate(runtime, runtime.escalation, NOW + timedelta(minutes=5))  # type: ignore[arg-type]
    assert [t for t, _ in _escalated_to(engine, vague.id or 0)] == ["demo_requested"]


def test_hot_leads_get_their_own_segment(tmp_path: Path, engine: Engine) -> None:
    hot_rule = (
        "rules:\n",
        "rules:\n  - segment: hot-mql\n    campaign: offer\n"
        "    when: {lifecycle_stage: [mql], band: [hot]}\n",
    )
    runtime, settings = _runtime(tmp_path, engine, _config(tmp_path, segments=hot_rule))
    _import(engine, settings, tmp_path, VAGUE, COLD)
    _site(engine, "vague@acme.example", "trial_started", "page_view")
    _site(engine, "cold@tiny.example", "trial_started", "appointment_booked")
    apply_inbox_and_escalate(runtime, runtime.escalation, NOW)  # type: ignore[arg-type]
    vague, cold = _lead(engine, "vague@acme.example"), _lead(engine, "cold@tiny.example")
    # vague: fit 35 (A), engagement 25 (2): A2, hot. cold: fit 0 (D), engagement 50 (1): D1.
    assert (vague.score, vague.grade, vague.band, vague.segment) == (60, "A2", "hot", "hot-mql")
    assert (cold.score, cold.grade, cold.band, cold.segment) == (
        50,
        "D1",
        "cold",
        "middle-of-funnel",
    )
    with Session(engine) as session:
        enrolled = {e.lead_id: e.campaign for e in session.exec(select(Enrollment))}
    assert enrolled == {vague.id: "offer", cold.id: "connect"}

    report = compute(engine, NOW, config_dir=settings.config_dir)
    assert report.bands == {"hot": 1, "warm": 0, "cold": 1}
    assert report.lead_status["pql"] == 2


def test_grade_routes_a_leads_to_the_senior_rep(tmp_path: Path, engine: Engine) -> None:
    runtime, settings = _runtime(tmp_path, engine, _config(tmp_path))
    _import(engine, settings, tmp_path, ALPHA, COLD)
    _site(engine, "alpha@acme.example", "demo_requested")
    _site(engine, "cold@tiny.example", "demo_requested", at=NOW + timedelta(minutes=1))
    apply_inbox_and_escalate(runtime, runtime.escalation, NOW + timedelta(minutes=1))  # type: ignore[arg-type]
    alpha, cold = _lead(engine, "alpha@acme.example"), _lead(engine, "cold@tiny.example")
    # alpha: fit 45 (A: 35 profile + need high), engagement 25 (2). cold: fit 0 (D).
    assert (alpha.grade, alpha.score, cold.grade) == ("A2", 70, "D2")
    assert _escalated_to(engine, alpha.id or 0) == [("demo_requested", "senior")]
    # no rep lists D2: the grade rule is passed over, round-robin picks the one less busy
    assert _escalated_to(engine, cold.id or 0) == [("demo_requested", "junior")]

    with engine.connect() as conn:
        escalation_id = conn.execute(
            sa.select(ESCALATIONS.c.id).where(ESCALATIONS.c.lead_id == cold.id)
        ).scalar_one()
    assert acknowledge(engine, escalation_id, now=NOW + timedelta(minutes=3), by="jo").ok
    assert _lead(engine, "cold@tiny.example").lead_status == "sal"
    close(
        engine,
        escalation_id,
        "disqualified",
        now=NOW + timedelta(minutes=4),
        by="jo",
        reason="wrong_fit",
    )
    cold = _lead(engine, "cold@tiny.example")
    assert (cold.lead_status, cold.status_reason) == ("disqualified", "wrong_fit")
    assert cold.email_suppression_reason == "disqualified"


def test_a_lead_that_ignores_re_engage_is_sunset_until_it_engages(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    runtime, _ = _runtime(tmp_path, sqlite_engine, _config(tmp_path))
    start = NOW - timedelta(days=1)
    with Session(sqlite_engine) as session:
        session.add(
            Lead(
                email="quiet@acme.example",
                first_name="Quinn",
                email_consent=True,
                created_at=start - timedelta(days=90),
                updated_at=start - timedelta(days=90),
            )
        )
        session.commit()
    simulate(runtime, start, start + timedelta(days=45))
    quiet = _lead(sqlite_engine, "quiet@acme.example")
    with Session(sqlite_engine) as session:
        (enrollment,) = session.exec(select(Enrollment)).all()
        sent = {t.step for t in session.exec(select(Touch)) if t.status == "sent"}
    assert enrollment.campaign == "re-engage" and enrollment.status == "completed"
    assert enrollment.end_reason == "cycle finished without engagement: sunset"
    assert sent == {"day-1", "day-10", "day-20"}
    assert (quiet.email_suppression_reason, quiet.whatsapp_suppressed_at) == ("sunset", None)
    assert (
        compute(
            sqlite_engine, start + timedelta(days=45), config_dir=runtime.settings.config_dir
        ).sunset
        == 1
    )

    # Nothing more while it stays quiet: not even a campaign its new stage would get.
    later = start + timedelta(days=45)
    with Session(sqlite_engine) as session:
        session.execute(
            sa.update(Lead).where(Lead.id == quiet.id).values(lifecycle_stage="opportunity")  # type: ignore[arg-type]
        )
        session.commit()
    assert sum(plan_all(runtime, later).enrolled.values()) == 0

    # It engages again (a visit to the site): the sunset lifts and nurture starts again.
    back = start + timedelta(days=46)
    _site(sqlite_engine, "quiet@acme.example", "page_view", at=back)
    apply_inbox_and_escalate(runtime, runtime.escalation, back)  # type: ignore[arg-type]
    assert _lead(sqlite_engine, "quiet@acme.example").email_suppressed_at is None
    assert plan_all(runtime, back).enrolled == {"offer": 1}


def test_the_rescore_run_grades_leads_stored_before_grades(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    runtime, _ = _runtime(tmp_path, sqlite_engine, _config(tmp_path))
    with Session(sqlite_engine) as session:  # as migration 0016 leaves a lead: no grade
        session.add(Lead(email="old@acme.example", created_at=NOW, updated_at=NOW))
        session.commit()
    run_rescore(runtime, NOW)
    old = _lead(sqlite_engine, "old@acme.example")
    assert (old.grade, old.band) == ("D3", "cold")
