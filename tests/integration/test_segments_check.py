"""`segments test`: what the rules (or a draft) would do to the leads now, writing nothing;
and planning honours the `form` and `source` conditions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from leadops.core.clock import SimulatedClock
from leadops.core.db import session_scope
from leadops.core.settings import Settings
from leadops.intake.csv_source import read_csv
from leadops.intake.importer import import_records
from leadops.models import TOUCHES, Enrollment, FormSubmission, Lead
from leadops.nurture.plan import plan_all
from leadops.nurture.segment_check import check_segments
from leadops.nurture.segments import load_segments_file
from leadops.nurture.tick import run_tick
from leadops.runtime import load_runtime
from tests.conftest import ROOT

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TICK = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

DRAFT = """\
rules:
  - segment: ebook-readers
    campaign: offer
    when:
      form: [ebook-download]
  - segment: top-of-funnel
    campaign: educate
    when:
      lifecycle_stage: [subscriber, lead]
"""


def _setup(tmp_path: Path, engine: Engine, settings: Settings) -> dict[str, int]:
    lines = (ROOT / "config" / "sample_leads.csv").read_text(encoding="utf-8").splitlines()
    small = tmp_path / "small.csv"
    small.write_text("\n".join(lines[:21]) + "\n", encoding="utf-8")
    with session_scope(engine) as session:
        import_records(
            session,
            read_csv(small),
            source="csv:test",
            now=START,
            default_region=settings.default_region,
            default_timezone=settings.default_timezone,
        )
    with Session(engine) as session:
        ids = {lead.email or "": lead.id or 0 for lead in session.exec(select(Lead))}
        anna = ids["anna.richter@zephyr-consulting.example"]  # a subscriber
        for form, key, day in (("webinar-signup", "b", 3), ("ebook-download", "a", 1)):
            session.add(
                FormSubmission(
                    form=form,
                    submission_key=key,
                    lead_id=anna,
                    raw={},
                    status="confirmed",
                    submitted_at=datetime(2026, 11, day, tzinfo=UTC),
                )
            )
        session.commit()
    return ids


def _counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        enrollments = session.execute(sa.select(sa.func.count()).select_from(Enrollment)).one()
        touches = session.execute(sa.select(sa.func.count()).select_from(TOUCHES)).one()
    return enrollments[0], touches[0]


def test_segments_test_counts_matches_and_changes_without_writing(
    tmp_path: Path, sqlite_engine: Engine, settings: Settings
) -> None:
    ids = _setup(tmp_path, sqlite_engine, settings)
    runtime = load_runtime(settings, engine=sqlite_engine)
    run_tick(runtime, SimulatedClock(TICK))  # enrolls with the live rules
    draft = tmp_path / "draft.yaml"
    draft.write_text(DRAFT, encoding="utf-8")
    config = load_segments_file(draft, set(runtime.campaigns))
    before = _counts(sqlite_engine)

    with Session(sqlite_engine) as session:
        report = check_segments(session, config, TICK)

    assert _counts(sqlite_engine) == before  # nothing written
    rules = {row["segment"]: row for row in report.rule_rows()}
    assert report.leads == len(ids)
    assert rules["ebook-readers"]["matches"] == rules["ebook-readers"]["chosen"] == 1
    assert str(ids["anna.richter@zephyr-consulting.example"]) in rules["ebook-readers"]["examples"]
    assert rules["top-of-funnel"]["matches"] > rules["top-of-funnel"]["chosen"] > 0
    assert sum(row["chosen"] for row in rules.values()) == len(ids)
    unmatched = rules["(no rule)"]["chosen"]
    assert unmatched > 0  # customers, and the mql/sql leads the draft drops
    changes = {
        (r["change"], r["from_campaign"], r["to_campaign"]): r for r in report.enrolled_rows()
    }
    assert changes[("would move", "educate", "offer")]["leads"] == 1
    assert changes[("unchanged", "educate", "educate")]["leads"] > 0
    assert any(change == "would leave" for change, _, _ in changes)
    with Session(sqlite_engine) as session:
        enrolled = session.execute(
            sa.select(sa.func.count()).select_from(Enrollment).where(Enrollment.status == "active")
        ).one()[0]
    assert sum(r["leads"] for r in changes.values()) == enrolled


def test_planning_enrolls_by_the_form_that_brought_the_lead_in(
    tmp_path: Path, sqlite_engine: Engine, settings: Settings
) -> None:
    ids = _setup(tmp_path, sqlite_engine, settings)
    draft = tmp_path / "draft.yaml"
    draft.write_text(DRAFT, encoding="utf-8")
    runtime = load_runtime(settings, engine=sqlite_engine)
    runtime.segments = load_segments_file(draft, set(runtime.campaigns))  # a loaded part
    plan_all(runtime, TICK)
    with Session(sqlite_engine) as session:
        campaigns = {e.lead_id: e.campaign for e in session.exec(select(Enrollment))}
    assert campaigns[ids["anna.richter@zephyr-consulting.example"]] == "offer"
    assert campaigns[ids["zoe.hughes@parallaxadvisory.example"]] == "educate"
