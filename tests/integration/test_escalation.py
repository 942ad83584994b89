"""Escalation on a real database: routing, records, notifications, SLA, hand-off, closing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.core.settings import Settings
from leadops.delivery.sending import POLICIES, MessageKind
from leadops.models import (
    ESCALATION_NOTIFICATIONS,
    Enrollment,
    Escalation,
    EscalationAssignment,
    EscalationNotification,
    Lead,
    Touch,
)
from leadops.nurture.plan import plan_all
from leadops.runtime import load_escalation_runtime, load_runtime
from leadops.sales.acks import acknowledge, close
from leadops.sales.escalation import EscalationError, escalate
from leadops.sales.notify import deliver_notifications
from leadops.sales.runtime import EscalationRuntime
from leadops.sales.scan import find_sales_ready
from leadops.sales.sla import check_slas
from tests.conftest import make_settings

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # a Tuesday, inside the reps' hours

# No hand-off intro to the lead here (tests/integration/test_handoff_messages.py has it).
ROUTING = """\
sla_minutes: 15
max_reroutes: 1
intro: {triggers: {}}
manager: {name: Mia Manager, email: mia@northwind.example}
fallback_queue: {name: Inside sales queue, email: queue@northwind.example}
reps:
  - key: ana
    name: Ana Ames
    email: ana@northwind.example
    whatsapp: "+447700900101"
    territories: [GB]
    capacity: 2
    notify: [email, whatsapp]
  - key: ben
    name: Ben Bose
    email: ben@northwind.example
    territories: [US]
"""


def runtime_for(tmp_path: Path, engine: Engine, routing: str = ROUTING) -> EscalationRuntime:
    path = tmp_path / "routing.yaml"
    path.write_text(routing)
    settings = make_settings(tmp_path, routing_file=path)
    return load_escalation_runtime(settings, engine=engine)


@pytest.fixture
def runtime(tmp_path: Path, engine: Engine) -> EscalationRuntime:
    return runtime_for(tmp_path, engine)


def add_lead(engine: Engine, email: str, country: str = "GB", **values: Any) -> int:
    with Session(engine, expire_on_commit=False) as session:
        lead = Lead(
            email=email,
            first_name=values.pop("first_name", email.split("@")[0].title()),
            last_name="Example",
            company="Acme Ltd",
            phone="+447700900999",
            country=country,
            lifecycle_stage=values.pop("lifecycle_stage", "sql"),
            score=values.pop("score", 72),
            created_at=NOW - timedelta(days=30),
            updated_at=NOW - timedelta(days=30),
            email_consent=True,
            **values,
        )
        session.add(lead)
        session.commit()
        assert lead.id is not None
        return lead.id


REASONS = [
    {"rule": "demo", "reason": "requested a demo on /pricing", "points": 30},
    {"reason": "clicked offer/day-10", "points": 5},
    "visited pricing 3 times this week",
]


def get(engine: Engine, escalation_id: int | None) -> Escalation:
    with Session(engine) as session:
        row = session.get(Escalation, escalation_id)
        assert row is not None
        return row


def assignments(engine: Engine, escalation_id: int | None) -> list[EscalationAssignment]:
    with Session(engine) as session:
        return list(
            session.execute(
                select(EscalationAssignment)
                .where(EscalationAssignment.escalation_id == escalation_id)  # type: ignore[arg-type]
                .order_by(EscalationAssignment.seq)  # type: ignore[arg-type]
            ).scalars()
        )


def notifications(engine: Engine, escalation_id: int | None) -> list[EscalationNotification]:
    with Session(engine) as session:
        return list(
            session.execute(
                select(EscalationNotification)
                .where(EscalationNotification.escalation_id == escalation_id)  # type: ignore[arg-type]
                .order_by(EscalationNotification.id)  # type: ignore[arg-type]
            ).scalars()
        )


def outbox_files(settings: Settings) -> list[Path]:
    return sorted((settings.resolved_outbox_dir).rglob("escalations/*/t*.*"))


def test_escalate_routes_records_and_notifies_once(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    lead_id = add_lead(engine, "olivia@acme.example")
    result = escalate(engine, lead_id, "demo_requested", "evt-1", 72, REASONS, NOW, runtime=runtime)
    assert result.created and result.rep_key == "ana" and result.rule == "territory"
    escalation = get(engine, result.escalation_id)
    assert escalation.status == "open"
    assert escalation.sla_due_at == NOW + timedelta(minutes=15)
    assert escalation.reasons[0] == {"reason": "requested a demo on /pricing", "points": 30}
    assert escalation.account_domain == "acme.example"
    (first,) = assignments(engine, result.escalation_id)
    assert (first.seq, first.rep_key, first.rule) == (1, "ana", "territory")
    sent = notifications(engine, result.escalation_id)
    assert [(n.role, n.channel, n.status) for n in sent] == [
        ("rep", "email", "sent"),
        ("rep", "whatsapp", "sent"),
    ]
    files = outbox_files(runtime.settings)
    assert len(files) == 2
    email = next(f for f in files if f.suffix == ".eml").read_text()
    assert "To: Ana Ames <ana@northwind.example>" in email
    assert "requested a demo on /pricing" in email and "visited pricing 3 times" in email
    assert "/escalations/ack/" in email
    whatsapp = json.loads(next(f for f in files if f.suffix == ".json").read_text())
    assert whatsapp["to"] == "whatsapp:+447700900101"
    assert "requested a demo" in whatsapp["body"]

    again = escalate(engine, lead_id, "demo_requested", "evt-1", 72, REASONS, NOW, runtime=runtime)
    assert not again.created and again.escalation_id == result.escalation_id
    assert again.rule == "duplicate"
    other = escalate(
        engine, lead_id, "reply_intent", "msg-9", 80, ["replied"], NOW, runtime=runtime
    )
    assert not other.created and other.rule == "already_active"
    deliver_notifications(runtime, NOW + timedelta(minutes=1))
    assert len(outbox_files(runtime.settings)) == 2


def test_bad_input_is_refused_with_a_clear_error(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    with pytest.raises(EscalationError, match="no lead with id 999"):
        escalate(engine, 999, "demo_requested", "k", 1, ["x"], NOW, runtime=runtime)
    lead_id = add_lead(engine, "x@acme.example")
    with pytest.raises(EscalationError, match="reason 0 is empty"):
        escalate(engine, lead_id, "demo_requested", "k", 1, [" "], NOW, runtime=runtime)
    with pytest.raises(EscalationError, match="trigger"):
        escalate(engine, lead_id, "demo requested!", "k", 1, ["x"], NOW, runtime=runtime)


def test_same_company_domain_goes_to_the_account_owner(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    first = add_lead(engine, "a@globex.example", country="GB")
    second = add_lead(engine, "b@globex.example", country="US")
    freemail = add_lead(engine, "c@gmail.com", country="US")
    one = escalate(engine, first, "sql_threshold", "1", 70, ["x"], NOW, runtime=runtime)
    two = escalate(engine, second, "sql_threshold", "1", 70, ["x"], NOW, runtime=runtime)
    three = escalate(engine, freemail, "sql_threshold", "1", 70, ["x"], NOW, runtime=runtime)
    assert (one.rep_key, two.rep_key, two.rule) == ("ana", "ana", "account_owner")
    assert (three.rep_key, three.rule) == ("ben", "territory")


def test_capacity_sends_the_next_lead_elsewhere(runtime: EscalationRuntime, engine: Engine) -> None:
    keys = []
    for n in range(3):
        lead_id = add_lead(engine, f"p{n}@firm{n}.example", country="GB")
        keys.append(
            escalate(engine, lead_id, "sql_threshold", "1", 70, ["x"], NOW, runtime=runtime)
        )
    assert [k.rep_key for k in keys] == ["ana", "ana", "ben"]  # ana's capacity is 2
    close(engine, keys[0].escalation_id or 0, "won", now=NOW, by="ana")
    lead_id = add_lead(engine, "p9@firm9.example", country="GB")
    again = escalate(engine, lead_id, "sql_threshold", "1", 70, ["x"], NOW, runtime=runtime)
    assert again.rep_key == "ana"


def test_nobody_in_hours_goes_to_the_fallback_queue_and_the_manager_is_told(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    night = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    lead_id = add_lead(engine, "late@acme.example")
    result = escalate(engine, lead_id, "demo_requested", "n", 70, ["x"], night, runtime=runtime)
    assert result.rep_key is None and result.rule == "fallback"
    escalation = get(engine, result.escalation_id)
    assert escalation.queue == "fallback" and escalation.sla_due_at is None
    told = {(n.role, n.recipient, n.status) for n in notifications(engine, result.escalation_id)}
    assert told == {("queue", "Inside sales queue", "sent"), ("manager", "Mia Manager", "sent")}


def test_sla_reroutes_to_the_next_rep_then_to_the_fallback_queue(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    lead_id = add_lead(engine, "slow@acme.example")
    result = escalate(engine, lead_id, "demo_requested", "e", 70, REASONS, NOW, runtime=runtime)
    assert check_slas(runtime, NOW + timedelta(minutes=14)).rerouted == 0

    report = check_slas(runtime, NOW + timedelta(minutes=16))
    assert (report.rerouted, report.to_queue) == (1, 0)
    escalation = get(engine, result.escalation_id)
    assert (escalation.status, escalation.rep_key, escalation.reroutes) == ("rerouted", "ben", 1)
    assert escalation.sla_due_at == NOW + timedelta(minutes=31)
    trail = assignments(engine, result.escalation_id)
    assert [(a.seq, a.rep_key, a.end_reason) for a in trail] == [
        (1, "ana", "sla_missed"),
        (2, "ben", None),
    ]
    sent = [(n.role, n.recipient, n.status) for n in notifications(engine, result.escalation_id)]
    assert ("rep", "Ben Bose", "sent") in sent and ("manager", "Mia Manager", "sent") in sent
    manager_mail = next(
        p for p in outbox_files(runtime.settings) if "/digest/" in p.as_posix()
    ).read_text()
    assert "Ana Ames" in manager_mail and "Ben Bose" in manager_mail

    assert check_slas(runtime, NOW + timedelta(minutes=30)).rerouted == 0
    report = check_slas(runtime, NOW + timedelta(minutes=32))  # max_reroutes is 1
    assert report.to_queue == 1
    escalation = get(engine, result.escalation_id)
    assert (escalation.rep_key, escalation.queue, escalation.sla_due_at) == (None, "fallback", None)
    roles = [n.role for n in notifications(engine, result.escalation_id)]
    assert roles.count("queue") == 1 and roles.count("manager") == 2
    assert check_slas(runtime, NOW + timedelta(hours=5)).to_queue == 0


def test_acknowledged_escalations_are_not_rerouted_and_stale_links_are_refused(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    first = add_lead(engine, "quick@acme.example")
    quick = escalate(engine, first, "demo_requested", "e", 70, ["x"], NOW, runtime=runtime)
    ack = acknowledge(engine, quick.escalation_id or 0, now=NOW + timedelta(minutes=3), by="ana")
    assert ack.ok
    assert check_slas(runtime, NOW + timedelta(hours=1)).rerouted == 0
    assert get(engine, quick.escalation_id).acknowledged_by == "ana"
    assert acknowledge(engine, quick.escalation_id or 0, now=NOW, by="ana").ok  # harmless twice

    second = add_lead(engine, "late@initech.example")
    late = escalate(engine, second, "demo_requested", "e", 70, ["x"], NOW, runtime=runtime)
    old_assignment = get(engine, late.escalation_id).assignment_id
    check_slas(runtime, NOW + timedelta(minutes=16))
    stale = acknowledge(
        engine, late.escalation_id or 0, now=NOW, by="ana", assignment_id=old_assignment
    )
    assert not stale.ok and "re-routed to ben" in stale.message


def test_hand_off_leaves_nurture_and_recycling_returns_to_it(
    tmp_path: Path, engine: Engine
) -> None:
    runtime = runtime_for(tmp_path, engine)
    nurture = load_runtime(runtime.settings, engine=engine)
    lead_id = add_lead(engine, "nurtured@acme.example", lifecycle_stage="mql", score=40)
    plan_all(nurture, NOW - timedelta(days=2))
    with Session(engine) as session:
        enrollment = session.execute(select(Enrollment)).scalar_one()
        assert enrollment.status == "active" and enrollment.campaign == "connect"
        pending = session.execute(select(Touch).where(Touch.status == "pending")).scalars().all()  # type: ignore[arg-type]
        assert pending

    result = escalate(engine, lead_id, "demo_requested", "d", 75, ["demo"], NOW, runtime=runtime)
    with Session(engine) as session:
        enrollment = session.execute(select(Enrollment)).scalar_one()
        assert (enrollment.status, enrollment.end_reason) == ("exited", "escalated to sales")
        statuses = {(t.status, t.hold_reason) for t in session.execute(select(Touch)).scalars()}
        assert statuses == {("skipped", "escalated")}
    report = plan_all(nurture, NOW + timedelta(days=1))
    assert sum(report.enrolled.values()) == 0 and report.planned == 0

    close(engine, result.escalation_id or 0, "not_ready", now=NOW, by="ana", note="next quarter")
    escalation = get(engine, result.escalation_id)
    assert (escalation.status, escalation.close_note) == ("recycled", "next quarter")
    with Session(engine) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None and lead.lifecycle_stage == "recycled"
    report = plan_all(nurture, NOW + timedelta(days=1))
    assert report.enrolled == {"re-engage": 1}


def test_close_won_makes_a_customer_and_closed_escalations_stay_closed(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    lead_id = add_lead(engine, "buyer@acme.example")
    result = escalate(engine, lead_id, "demo_requested", "d", 90, ["demo"], NOW, runtime=runtime)
    closed = close(engine, result.escalation_id or 0, "won", now=NOW, by="ana")
    assert closed.status == "closed_won" and closed.closed_by == "ana"
    with Session(engine) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None and lead.lifecycle_stage == "customer"
    assert close(engine, result.escalation_id or 0, "won", now=NOW, by="ana").status == "closed_won"
    with pytest.raises(EscalationError, match="already closed_won"):
        close(engine, result.escalation_id or 0, "lost", now=NOW, by="ana")
    with pytest.raises(EscalationError, match="outcome 'maybe'"):
        close(engine, result.escalation_id or 0, "maybe", now=NOW, by="ana")
    assert not acknowledge(engine, result.escalation_id or 0, now=NOW, by="ana").ok
    (trail,) = assignments(engine, result.escalation_id)
    assert trail.end_reason == "closed won"

    lost_lead = add_lead(engine, "gone@acme.example")
    lost = escalate(engine, lost_lead, "demo_requested", "d", 90, ["demo"], NOW, runtime=runtime)
    assert close(engine, lost.escalation_id or 0, "lost", now=NOW, by="x").status == "closed_lost"
    with Session(engine) as session:
        lead = session.get(Lead, lost_lead)
        assert lead is not None and lead.lifecycle_stage == "recycled"


def test_scan_escalates_sql_leads_once_and_again_after_a_recycle(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    sql_a = add_lead(engine, "a@one.example")
    add_lead(engine, "b@two.example", lifecycle_stage="mql")
    sql_c = add_lead(engine, "c@three.example", country="US")
    results = find_sales_ready(runtime, NOW)
    assert sorted(r.escalation_id is not None and r.created for r in results) == [True, True]
    assert find_sales_ready(runtime, NOW + timedelta(minutes=1)) == []
    first = get(engine, results[0].escalation_id)
    assert (first.lead_id, first.trigger, first.trigger_key) == (
        sql_a,
        "imported_sql",  # no score change took it to SQL: the import did
        "stage-sql-1",
    )
    assert {"reason": "lifecycle stage is SQL", "points": None} in first.reasons

    close(engine, first.id or 0, "not_ready", now=NOW, by="ana")
    with Session(engine) as session:
        session.execute(update(Lead).where(Lead.id == sql_a).values(lifecycle_stage="sql"))  # type: ignore[arg-type]
        session.commit()
    (again,) = find_sales_ready(runtime, NOW + timedelta(minutes=2))
    assert again.created and get(engine, again.escalation_id).trigger_key == "stage-sql-2"
    assert sql_c != sql_a


def test_notifications_recorded_in_the_callers_session_are_sent_after_commit(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    lead_id = add_lead(engine, "rescored@acme.example")
    with Session(engine) as session:
        result = escalate(session, lead_id, "sql_threshold", "l-7", 81, ["x"], NOW, runtime=runtime)
        assert result.created and result.notifications == 2
        session.commit()
    assert outbox_files(runtime.settings) == []
    report = deliver_notifications(runtime, NOW)
    assert report.sent == 2 and len(outbox_files(runtime.settings)) == 2


def test_a_sender_stopped_mid_send_never_sends_twice(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    lead_id = add_lead(engine, "crash@acme.example")
    with Session(engine) as session:
        escalate(session, lead_id, "sql_threshold", "c", 81, ["x"], NOW, runtime=runtime)
        session.commit()
    rows = notifications(engine, 1)
    email, whatsapp = rows
    # The email went out before the crash (its file exists); the WhatsApp one is unknown.
    from leadops.sales.notify import compose_notification

    with Session(engine) as session:
        message = compose_notification(session, runtime, email, NOW)
    runtime.channels["email"].send(message)
    with engine.begin() as conn:
        conn.execute(
            update(ESCALATION_NOTIFICATIONS).values(
                status="sending", lease_until=NOW + timedelta(minutes=5), attempts=1
            )
        )
    assert deliver_notifications(runtime, NOW + timedelta(minutes=1)).sent == 0  # lease held
    report = deliver_notifications(runtime, NOW + timedelta(minutes=6))
    assert report.recovered == 2 and report.sent == 0
    states = {n.channel: n.status for n in notifications(engine, 1)}
    assert states == {"email": "sent", "whatsapp": "ambiguous"}
    assert len(outbox_files(runtime.settings)) == 1
    assert whatsapp.id is not None


SLACK_ROUTING = """\
intro: {triggers: {}}
manager: {name: Mia Manager, email: mia@northwind.example}
fallback_queue: {name: Queue, email: queue@northwind.example}
reps:
  - key: cem
    name: Cem Cole
    email: cem@northwind.example
    slack_webhook_url: env:TEST_SLACK_CEM
    notify: [slack]
"""


def test_slack_webhook_posts_and_keeps_the_url_secret(
    tmp_path: Path, engine: Engine, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_for(tmp_path, engine, SLACK_ROUTING)
    url = httpserver.url_for("/services/T000/B000/secret-part")
    monkeypatch.setenv("TEST_SLACK_CEM", url)
    httpserver.expect_oneshot_request(
        "/services/T000/B000/secret-part", method="POST"
    ).respond_with_data("ok")
    first = add_lead(engine, "s1@acme.example", first_name="Ann <b>&")
    result = escalate(
        engine, first, "demo_requested", "s", 70, ["demo <now>"], NOW, runtime=runtime
    )
    (note,) = notifications(engine, result.escalation_id)
    assert (note.channel, note.status, note.address) == ("slack", "sent", "env:TEST_SLACK_CEM")
    ((request, _),) = httpserver.log
    text = request.get_json()["text"]
    assert (
        "Ann &lt;b&gt;&amp;" in text and "demo &lt;now&gt;" in text and "/escalations/ack/" in text
    )

    httpserver.expect_oneshot_request("/services/T000/B000/secret-part").respond_with_data(
        "rate limited", status=429, headers={"Retry-After": "30"}
    )
    second = add_lead(engine, "s2@other.example")
    result = escalate(engine, second, "demo_requested", "s", 70, ["x"], NOW, runtime=runtime)
    (note,) = notifications(engine, result.escalation_id)
    assert note.status == "pending" and note.not_before == NOW + timedelta(seconds=30)

    httpserver.expect_oneshot_request("/services/T000/B000/secret-part").respond_with_data(
        "no_service", status=404
    )
    deliver_notifications(runtime, NOW + timedelta(seconds=31))
    (note,) = notifications(engine, result.escalation_id)
    assert note.status == "failed" and "no_service" in (note.error or "")
    assert "secret-part" not in (note.error or "")

    monkeypatch.delenv("TEST_SLACK_CEM")
    third = add_lead(engine, "s3@third.example")
    result = escalate(engine, third, "demo_requested", "s", 70, ["x"], NOW, runtime=runtime)
    (note,) = notifications(engine, result.escalation_id)
    assert note.status == "failed" and "TEST_SLACK_CEM" in (note.error or "")


WEIGHTED = """\
manager: {name: Mia Manager, email: mia@northwind.example}
fallback_queue: {name: Queue, email: queue@northwind.example}
reps:
  - {key: ana, name: Ana, email: ana@northwind.example, weight: 1, capacity: 1000}
  - {key: ben, name: Ben, email: ben@northwind.example, weight: 2, capacity: 1000}
"""


def test_round_robin_follows_the_weights_through_the_database(
    tmp_path: Path, engine: Engine
) -> None:
    runtime = runtime_for(tmp_path, engine, WEIGHTED)
    ids = [add_lead(engine, f"p{n}@firm{n}.example") for n in range(30)]
    with Session(engine) as session:
        for lead_id in ids:
            escalate(session, lead_id, "sql_threshold", "1", 70, ["x"], NOW, runtime=runtime)
            session.flush()
        session.commit()
    with Session(engine) as session:
        reps = [e.rep_key for e in session.execute(select(Escalation)).scalars()]
    assert (reps.count("ana"), reps.count("ben")) == (10, 20)
    assert reps[:3] == ["ben", "ana", "ben"]


def test_a_rep_removed_from_the_file_is_rerouted_away_from(tmp_path: Path, engine: Engine) -> None:
    runtime = runtime_for(tmp_path, engine)
    lead_id = add_lead(engine, "left@acme.example")
    result = escalate(engine, lead_id, "demo_requested", "e", 70, ["x"], NOW, runtime=runtime)
    assert result.rep_key == "ana"
    without_ana = (
        ROUTING.split("  - key: ana")[0] + "  - key: ben" + ROUTING.split("  - key: ben")[1]
    )
    (tmp_path / "later").mkdir()
    later = runtime_for(tmp_path / "later", engine, without_ana)
    assert check_slas(later, NOW + timedelta(minutes=16)).rerouted == 1
    told = {(n.role, n.status) for n in notifications(engine, result.escalation_id)}
    assert ("manager", "sent") in told and ("rep", "sent") in told
    manager = next(p for p in outbox_files(later.settings) if "/digest/" in p.as_posix())
    assert "not acknowledged by ana" in manager.read_text()


def test_concurrent_escalations_of_one_lead_create_one(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lead_id = add_lead(engine, "rush@acme.example")

    def attempt(n: int) -> bool:
        trigger = "demo_requested" if n % 2 else "reply_intent"
        result = escalate(engine, lead_id, trigger, f"k{n}", 70, ["x"], NOW, runtime=runtime)
        return result.created

    with ThreadPoolExecutor(max_workers=4) as pool:
        created = list(pool.map(attempt, range(8)))
    assert created.count(True) == 1
    with Session(engine) as session:
        assert len(list(session.execute(select(Escalation)).scalars())) == 1
    assert len(outbox_files(runtime.settings)) == 2  # ana: email and WhatsApp, once


def test_a_notification_waiting_for_a_retry_is_skipped_once_acknowledged(
    tmp_path: Path, engine: Engine, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_for(tmp_path, engine, SLACK_ROUTING)
    monkeypatch.setenv("TEST_SLACK_CEM", httpserver.url_for("/hook"))
    httpserver.expect_oneshot_request("/hook").respond_with_data("busy", status=429)
    lead_id = add_lead(engine, "retry@acme.example")
    result = escalate(engine, lead_id, "demo_requested", "r", 70, ["x"], NOW, runtime=runtime)
    (note,) = notifications(engine, result.escalation_id)
    assert note.status == "pending"
    assert acknowledge(engine, result.escalation_id or 0, now=NOW, by="cem (phone)").ok
    report = deliver_notifications(runtime, NOW + timedelta(minutes=5))
    assert report.skipped == 1 and report.sent == 0
    (note,) = notifications(engine, result.escalation_id)
    assert (note.status, note.error) == ("skipped", "not sent: already acknowledged")
    assert len(httpserver.log) == 1


def test_a_notification_that_keeps_failing_gives_up_after_its_policy_s_attempts(
    tmp_path: Path, engine: Engine, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_for(tmp_path, engine, SLACK_ROUTING)
    monkeypatch.setenv("TEST_SLACK_CEM", httpserver.url_for("/hook"))
    httpserver.expect_request("/hook").respond_with_data("busy", status=429)
    lead_id = add_lead(engine, "flaky@acme.example")
    result = escalate(engine, lead_id, "demo_requested", "r", 70, ["x"], NOW, runtime=runtime)
    limit = POLICIES[MessageKind.NOTIFICATION].max_attempts
    assert limit is not None
    at = NOW
    for _ in range(limit + 2):  # more passes than the policy allows attempts
        at += timedelta(minutes=10)
        deliver_notifications(runtime, at)
    (note,) = notifications(engine, result.escalation_id)
    assert (note.status, note.attempts) == ("failed", limit)
    assert note.error is not None and note.error.startswith(f"gave up after {limit} attempts")
    assert len(httpserver.log) == limit
