"""`leads why`: each step of a lead's campaign explained (sent, held, skipped, not yet due)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from leadops.core.clock import SimulatedClock
from leadops.core.db import session_scope
from leadops.core.settings import Settings
from leadops.delivery.campaigns import StoredCampaigns
from leadops.intake.csv_source import read_csv
from leadops.intake.importer import import_records
from leadops.models import Lead
from leadops.nurture.tick import run_tick
from leadops.nurture.why import LeadWhy, StepWhy, explain_lead
from leadops.runtime import load_runtime
from tests.conftest import ROOT

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TICK = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday: 10:00 in Berlin, 01:00 in LA


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
    run_tick(load_runtime(settings, engine=engine), SimulatedClock(TICK))
    with Session(engine) as session:
        return {lead.email or "": lead.id or 0 for lead in session.exec(select(Lead))}


def _why(engine: Engine, settings: Settings, lead_id: int) -> LeadWhy:
    runtime = load_runtime(settings, engine=engine)
    with Session(engine) as session:
        return explain_lead(
            session, lead_id, segments=runtime.segments, stored=StoredCampaigns(), now=TICK
        )


def _step(why: LeadWhy, step: str, channel: str) -> StepWhy:
    (found,) = [s for s in why.steps if (s.step, s.channel) == (step, channel)]
    return found


def test_why_explains_a_sent_a_held_and_a_skipped_step(
    tmp_path: Path, sqlite_engine: Engine, settings: Settings
) -> None:
    ids = _setup(tmp_path, sqlite_engine, settings)

    berlin = _why(sqlite_engine, settings, ids["anna.richter@zephyr-consulting.example"])
    assert "top-of-funnel" in berlin.segment and "educate" in berlin.segment
    sent = _step(berlin, "day-1", "email")
    assert (sent.state, sent.at, sent.reason) == ("sent", TICK, None)
    assert sent.explanation == "sent at 2026-12-01 09:00 UTC"
    later = _step(berlin, "day-10", "email")  # it waits for a click on day-1
    assert later.state == "waiting_for_event"
    assert later.at == datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    assert later.explanation == (
        "waiting for clicked day-1, sent 2 day(s) after it; "
        "until 2026-12-10 09:00 UTC (day 10), sent then"
    )

    los_angeles = _why(sqlite_engine, settings, ids["grace.chen@greystoneshipping.example"])
    held = _step(los_angeles, "day-1", "email")
    assert (held.state, held.reason) == ("held", "outside_send_window")
    assert held.at == datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # 09:00 in Los Angeles
    assert held.explanation.startswith("held until 2026-12-01 17:00 UTC: outside the send window")
    no_phone = _step(los_angeles, "day-1", "whatsapp")
    assert no_phone.state == "waiting_for_consent"  # a phone, but no WhatsApp opt-in

    dublin = _why(sqlite_engine, settings, ids["niamh.walsh@graniteadvisory.example.org"])
    skipped = _step(dublin, "day-1", "email")
    assert (skipped.state, skipped.reason) == ("skipped", "no_consent")
    assert skipped.explanation == "skipped: the lead gave no marketing consent on this channel"
    assert _step(dublin, "day-1", "whatsapp").state == "not_sent"  # no phone number
    assert {row["code"] for row in dublin.legend} == {"no_consent"}
    assert dublin.as_dict()["steps"][0]["reason"] == "no_consent"


def test_why_names_the_segment_rules_a_lead_matches_none_of(
    tmp_path: Path, sqlite_engine: Engine, settings: Settings
) -> None:
    ids = _setup(tmp_path, sqlite_engine, settings)
    customer = _why(sqlite_engine, settings, ids["s.mueller@weberkrueger.example"])
    assert customer.steps == [] and customer.enrollments == []
    assert customer.segment.startswith("no segment rule matches")
    assert "top-of-funnel: lifecycle_stage is 'customer', not one of subscriber, lead" in (
        customer.segment
    )


def test_why_says_when_the_rules_would_move_or_end_an_enrollment(
    tmp_path: Path, sqlite_engine: Engine, settings: Settings
) -> None:
    ids = _setup(tmp_path, sqlite_engine, settings)
    anna = ids["anna.richter@zephyr-consulting.example"]  # in educate
    for stage, expected in (
        ("mql", "segment rule 'middle-of-funnel' matches: campaign connect; moves from educate"),
        ("customer", "no segment rule matches ("),
    ):
        with Session(sqlite_engine) as session:
            lead = session.get(Lead, anna)
            assert lead is not None
            lead.lifecycle_stage = stage
            session.add(lead)
            session.commit()
        why = _why(sqlite_engine, settings, anna)
        assert why.segment.startswith(expected), why.segment
    assert why.segment.endswith("; leaves educate at the next tick")


def test_why_says_a_lead_waits_for_a_paused_campaign(
    tmp_path: Path, sqlite_engine: Engine, settings: Settings
) -> None:
    from leadops.nurture.calendar import pause_campaign

    runtime = load_runtime(settings, engine=sqlite_engine)
    pause_campaign(
        sqlite_engine, runtime.campaigns, "educate", by="maya", reason="fix link", now=START
    )
    ids = _setup(tmp_path, sqlite_engine, settings)  # imports, then one tick: educate waits
    with Session(sqlite_engine) as session:
        why = explain_lead(
            session,
            ids["anna.richter@zephyr-consulting.example"],
            segments=runtime.segments,
            stored=StoredCampaigns(),
            now=TICK,
            campaigns=runtime.campaigns,
        )
    assert why.enrollments == []
    assert "educate is paused since 2026-12-01 08:00 UTC by maya" in why.segment
