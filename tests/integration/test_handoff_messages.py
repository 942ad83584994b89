"""What escalation tells people, on a real database: the trigger's true wording, one
manager digest per SLA pass, and the lead's hand-off intro through the contact policy."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.models import (
    STAGE_CHANGES,
    Escalation,
    EscalationDigest,
    EscalationNotification,
    Lead,
)
from leadops.providers.base import OutgoingMessage, SendResult
from leadops.runtime import load_escalation_runtime
from leadops.sales.acks import close
from leadops.sales.escalation import escalate
from leadops.sales.notify import deliver_notifications
from leadops.sales.runtime import EscalationRuntime
from leadops.sales.scan import find_sales_ready, run_escalations
from leadops.sales.sla import check_slas
from leadops.testing.fakes import FakeSendGrid
from tests.conftest import make_settings

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # a Tuesday, inside every window below

ROUTING = """\
sla_minutes: 15
max_reroutes: 1
manager:
  name: Mia Manager
  email: mia@northwind.example
  whatsapp: "+447700900555"
  notify: [email, whatsapp]
fallback_queue:
  name: Inside sales queue
  email: queue@northwind.example
  booking_url: https://meet.northwind.example/queue
reps:
  - key: ana
    name: Ana Ames
    email: ana@northwind.example
    about: Ana looks after customers in the UK.
    booking_url: https://meet.northwind.example/ana
    territories: [GB]
    capacity: 100
  - key: ben
    name: Ben Bose
    email: ben@northwind.example
    booking_url: https://meet.northwind.example/ben
    capacity: 100
"""


def runtime_for(tmp_path: Path, engine: Engine, **settings: object) -> EscalationRuntime:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    return load_escalation_runtime(
        make_settings(tmp_path, routing_file=path, **settings), engine=engine
    )


@pytest.fixture
def runtime(tmp_path: Path, engine: Engine) -> EscalationRuntime:
    return runtime_for(tmp_path, engine)


def add_lead(engine: Engine, email: str, **values: Any) -> int:
    with Session(engine, expire_on_commit=False) as session:
        lead = Lead(
            email=email,
            first_name=values.pop("first_name", email.split("@")[0].title()),
            last_name="Example",
            company=values.pop("company", "Acme Ltd"),
            phone=values.pop("phone", "+447700900999"),
            country="GB",
            lifecycle_stage=values.pop("lifecycle_stage", "sql"),
            score=values.pop("score", 72),
            created_at=NOW - timedelta(days=30),
            updated_at=NOW - timedelta(days=30),
            **values,
        )
        session.add(lead)
        session.commit()
        assert lead.id is not None
        return lead.id


def rows(engine: Engine, role: str | None = None) -> list[EscalationNotification]:
    query = select(EscalationNotification).order_by(EscalationNotification.id)  # type: ignore[arg-type]
    if role is not None:
        query = query.where(EscalationNotification.role == role)  # type: ignore[arg-type]
    with Session(engine) as session:
        return list(session.execute(query).scalars())


def files(runtime: EscalationRuntime, channel: str, step: str) -> list[Path]:
    folder = runtime.settings.resolved_outbox_dir / channel / "escalations" / step
    return sorted(folder.glob("t*.*"))


def escalation(engine: Engine, escalation_id: int | None) -> Escalation:
    with Session(engine) as session:
        row = session.get(Escalation, escalation_id)
        assert row is not None
        return row


# -- the trigger's wording --------------------------------------------------------------------


def test_a_lead_imported_at_sql_is_worded_as_imported_and_a_crossing_as_a_crossing(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    imported = add_lead(engine, "fair@acme.example", score=0, source="csv:trade-fair.csv")
    crossed = add_lead(engine, "climber@globex.example", score=85)
    with engine.begin() as conn:
        conn.execute(
            STAGE_CHANGES.insert().values(
                lead_id=crossed,
                from_stage="mql",
                to_stage="sql",
                score=85,
                reason="score 85 reached the sql threshold 80",
                changed_at=NOW - timedelta(minutes=5),
            )
        )
    results = {r.escalation_id: r for r in find_sales_ready(runtime, NOW)}
    by_lead = {escalation(engine, e).lead_id: escalation(engine, e) for e in results}
    assert (by_lead[imported].trigger, by_lead[imported].trigger_detail) == (
        "imported_sql",
        "csv:trade-fair.csv",
    )
    assert (by_lead[crossed].trigger, by_lead[crossed].trigger_detail) == (
        "sql_threshold",
        "score 85 reached the sql threshold 80",
    )
    mails = {p.read_text() for p in files(runtime, "email", "rep")}
    fair = next(m for m in mails if "fair@acme.example" in m)
    assert "was imported as sales-qualified (SQL) from csv:trade-fair.csv" in fair
    assert "score 0: the SQL stage came from the import, not from the score" in fair
    assert "crossed" not in fair and "threshold" not in fair
    climber = next(m for m in mails if "climber@globex.example" in m)
    assert "crossed the sales-qualified (SQL) score threshold" in climber
    assert "score 85 reached the sql threshold 80" in climber

    # The rescore hand-off keys the same crossing alike: never a second escalation of it.
    close(engine, by_lead[imported].id or 0, "lost", now=NOW, by="ana")
    again = escalate(
        engine, imported, "sql_threshold", "stage-sql-1", 0, ["x"], NOW, runtime=runtime
    )
    assert not again.created and again.rule == "duplicate"


# -- one manager digest per pass ----------------------------------------------------------------


def escalate_many(runtime: EscalationRuntime, engine: Engine, n: int) -> list[int]:
    ids = [add_lead(engine, f"p{i}@firm{i}.example", company=f"Firm {i}") for i in range(n)]
    with Session(engine) as session:
        for lead_id in ids:
            escalate(session, lead_id, "sql_threshold", "1", 80, ["x"], NOW, runtime=runtime)
            session.flush()
        session.commit()
    deliver_notifications(runtime, NOW)
    return ids


def test_one_sla_pass_sends_the_manager_one_digest_naming_every_escalation(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    """SQLite only, for time: the digest's recording and recovery run on both databases
    in the tests below."""
    engine = sqlite_engine
    runtime = runtime_for(tmp_path, engine)
    escalate_many(runtime, engine, 21)
    assert files(runtime, "email", "digest") == []  # assigned in hours: the manager is not told

    report = check_slas(runtime, NOW + timedelta(minutes=16))
    assert report.rerouted == 21
    (digest,) = files(runtime, "email", "digest")
    text = digest.read_text()
    assert "To: Mia Manager <mia@northwind.example>" in text
    assert "21 leads re-routed" in text
    for i in range(21):
        assert f"p{i}@firm{i}.example" in text and f"Firm {i}" in text
    assert text.count("not acknowledged by Ana Ames; now with Ben Bose") == 21
    (short,) = files(runtime, "whatsapp", "digest")  # one message per channel
    body = json.loads(short.read_text())["body"]
    assert body.startswith("21 re-routed") and body.count("Ana Ames -> Ben Bose") == 21
    told = rows(engine, "manager")
    assert len(told) == 42 and {n.status for n in told} == {"sent"}
    assert {n.digest_id for n in told if n.channel == "email"} == {1}
    assert len(files(runtime, "email", "rep")) == 42  # each rep is still told one by one

    report = check_slas(runtime, NOW + timedelta(minutes=32))  # max_reroutes 1: the queue
    assert report.to_queue == 21
    assert len(files(runtime, "email", "digest")) == 2
    second = files(runtime, "email", "digest")[1].read_text()
    assert "Subject: 21 in the fallback queue" in second and "p20@firm20.example" in second
    assert deliver_notifications(runtime, NOW + timedelta(hours=1)).sent == 0


def test_the_every_minute_pass_sends_one_digest_for_leads_queued_in_it(
    tmp_path: Path, engine: Engine
) -> None:
    runtime = runtime_for(tmp_path, engine)
    night = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)  # no rep in hours: the fallback queue
    for i in range(3):
        add_lead(engine, f"n{i}@night{i}.example")
    report = run_escalations(runtime, night)
    assert report.escalated == 3
    (digest,) = files(runtime, "email", "digest")
    assert "3 in the fallback queue" in digest.read_text()
    assert len(files(runtime, "email", "queue")) == 3


class StopsAfterWriting:
    """An email channel whose process stops right after the digest request left."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name

    def find_sent(self, touch_id: int, campaign: str, step: str) -> str | None:
        found: str | None = self.inner.find_sent(touch_id, campaign, step)
        return found

    def send(self, message: OutgoingMessage) -> SendResult:
        result: SendResult = self.inner.send(message)
        if message.step == "digest":
            raise KeyboardInterrupt  # the sender is stopped: nothing records the outcome
        return result


def test_a_digest_whose_sender_stopped_mid_send_is_never_sent_twice(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    escalate_many(runtime, engine, 2)
    check_slas(runtime, NOW + timedelta(minutes=16), deliver=False)
    stopping = dataclasses.replace(
        runtime,
        channels={**runtime.channels, "email": StopsAfterWriting(runtime.channels["email"])},
    )
    with pytest.raises(KeyboardInterrupt):
        deliver_notifications(stopping, NOW + timedelta(minutes=16))

    def digest_of(channel: str) -> EscalationDigest:
        with Session(engine) as session:
            found = session.execute(
                select(EscalationDigest).where(EscalationDigest.channel == channel)  # type: ignore[arg-type]
            ).scalar_one()
            return found

    assert (digest_of("email").status, digest_of("email").attempts) == ("sending", 1)
    later = deliver_notifications(runtime, NOW + timedelta(minutes=17))
    assert later.sent == 1 and digest_of("whatsapp").status == "sent"  # the email is leased
    report = deliver_notifications(runtime, NOW + timedelta(minutes=22))
    assert report.recovered == 1 and report.sent == 0
    digest = digest_of("email")
    assert digest.status == "sent" and digest.provider_id  # the outbox proves it left
    assert {n.status for n in rows(engine, "manager")} == {"sent"}
    assert len(files(runtime, "email", "digest")) == 1


# -- the lead's hand-off intro ----------------------------------------------------------------


def test_a_hand_raise_gets_the_intro_once_naming_the_rep_and_no_second_at_a_reroute(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    lead_id = add_lead(engine, "olivia@acme.example", first_name="Olivia")
    result = escalate(engine, lead_id, "demo_requested", "d1", 72, ["demo"], NOW, runtime=runtime)
    (intro,) = rows(engine, "lead")
    assert (intro.channel, intro.address, intro.status, intro.recipient) == (
        "email",
        "olivia@acme.example",
        "sent",
        "Olivia Example",
    )
    (mail,) = files(runtime, "email", "lead")
    text = mail.read_text()
    assert "To: Olivia Example <olivia@acme.example>" in text
    assert "Subject: Ana from" in text and "Hi Olivia" in text
    assert "Ana Ames has your request" in text and "Ana looks after customers in the UK." in text
    assert "https://meet.northwind.example/ana" in text

    check_slas(runtime, NOW + timedelta(minutes=16))  # re-routed to ben
    assert escalation(engine, result.escalation_id).rep_key == "ben"
    assert len(rows(engine, "lead")) == 1 and len(files(runtime, "email", "lead")) == 1

    threshold = add_lead(engine, "scored@other.example")
    escalate(engine, threshold, "sql_threshold", "stage-sql-1", 90, ["x"], NOW, runtime=runtime)
    assert len(rows(engine, "lead")) == 1  # no intro for a score crossing by default


def test_a_hand_raise_at_night_gets_the_intro_when_the_window_opens_once(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    late = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)  # 22:00 in London, the lead's zone
    lead_id = add_lead(engine, "owl@acme.example", timezone="Europe/London")
    escalate(engine, lead_id, "contact_request", "c1", 60, ["contact"], late, runtime=runtime)
    (intro,) = rows(engine, "lead")
    opens = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # the send window opens at 09:00
    assert (intro.status, intro.not_before, intro.attempts) == ("pending", opens, 0)
    assert intro.error == "held: outside_send_window"
    assert deliver_notifications(runtime, opens - timedelta(minutes=1)).sent == 0
    assert files(runtime, "email", "lead") == []

    assert deliver_notifications(runtime, opens).sent == 1
    assert deliver_notifications(runtime, opens + timedelta(minutes=5)).sent == 0
    (mail,) = files(runtime, "email", "lead")
    # nobody was in hours at 22:00: the fallback queue holds it, and the intro says so
    assert "Inside sales queue has your request" in mail.read_text()
    assert "https://meet.northwind.example/queue" in mail.read_text()


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"email_suppressed_at": NOW - timedelta(days=1)}, "email: suppressed"),
        ({"unsubscribed_at": NOW - timedelta(days=1)}, "email: unsubscribed"),
    ],
)
def test_the_intro_never_goes_to_a_suppressed_or_unsubscribed_address(
    runtime: EscalationRuntime, engine: Engine, values: dict[str, Any], code: str
) -> None:
    lead_id = add_lead(engine, "gone@acme.example", **values)
    escalate(engine, lead_id, "demo_requested", "d", 72, ["demo"], NOW, runtime=runtime)
    (intro,) = rows(engine, "lead")
    assert (intro.status, intro.error) == ("skipped", code)
    assert files(runtime, "email", "lead") == []
    assert {n.status for n in rows(engine, "rep")} == {"sent"}  # the rep is still told


def test_a_whatsapp_reply_gets_the_intro_on_whatsapp_inside_the_24_hours_else_by_email(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    fresh = add_lead(engine, "fresh@acme.example", last_inbound_at=NOW - timedelta(hours=1))
    stale = add_lead(engine, "stale@other.example", last_inbound_at=NOW - timedelta(hours=30))
    escalate(engine, fresh, "reply_intent", "r1", 70, ["reply"], NOW, runtime=runtime)
    escalate(engine, stale, "reply_intent", "r2", 70, ["reply"], NOW, runtime=runtime)
    by_address = {n.address: n for n in rows(engine, "lead")}
    assert by_address["+447700900999"].channel == "whatsapp"
    assert by_address["+447700900999"].status == "sent"
    assert by_address["stale@other.example"].channel == "email"  # the window had closed
    assert by_address["stale@other.example"].status == "sent"
    (message,) = files(runtime, "whatsapp", "lead")
    body = json.loads(message.read_text())["body"]
    assert "Ana Ames has your request" in body and "https://meet.northwind.example/ana" in body
    stale_mail = files(runtime, "email", "lead")
    assert len(stale_mail) == 1 and "stale@other.example" in stale_mail[0].read_text()


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    fake = FakeSendGrid(api_key="SG.test-key")
    fake.start()
    yield fake
    fake.stop()


def test_the_intro_email_passes_the_sendgrid_spec(
    tmp_path: Path, engine: Engine, sendgrid: FakeSendGrid
) -> None:
    runtime = runtime_for(
        tmp_path,
        engine,
        email_channel="sendgrid",
        sendgrid_api_key="SG.test-key",
        sendgrid_base_url=sendgrid.url,
    )
    lead_id = add_lead(engine, "spec@acme.example", first_name="Sam")
    escalate(engine, lead_id, "demo_requested", "d", 72, ["demo"], NOW, runtime=runtime)
    assert sendgrid.violations == []
    intro = next(a for a in sendgrid.log if a.to == "spec@acme.example")
    (content,) = [c for c in intro.body["content"] if c["type"] == "text/html"]
    assert (
        "Ana Ames" in content["value"] and "https://meet.northwind.example/ana" in content["value"]
    )
    assert {n.status for n in rows(engine)} == {"sent"}


def test_a_closed_escalation_sends_no_held_intro(
    runtime: EscalationRuntime, engine: Engine
) -> None:
    late = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
    lead_id = add_lead(engine, "spam@acme.example")
    result = escalate(engine, lead_id, "demo_requested", "d", 5, ["demo"], late, runtime=runtime)
    close(engine, result.escalation_id or 0, "lost", now=late, by="queue")
    deliver_notifications(runtime, datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    (intro,) = rows(engine, "lead")
    assert (intro.status, intro.error) == ("skipped", "not sent: already closed_lost")
    assert files(runtime, "email", "lead") == []
