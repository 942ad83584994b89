"""The rep's hand-off page through the real app, from the link in the rep's email: the
lead's story, the actions and what they record, and what the page refuses."""

from __future__ import annotations

import html
import re
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.core.clock import SimulatedClock
from leadops.core.tokens import sign
from leadops.delivery.policy import (
    REASON_MEANINGS,
    Action,
    Caps,
    Reason,
    SendWindow,
    contact_facts,
    decide,
)
from leadops.models import (
    ESCALATION_ACTIVITIES,
    INBOX,
    LEADS,
    TOUCHES,
    WEBHOOK_REJECTIONS,
    Escalation,
    FormSubmission,
    InboxEvent,
    Lead,
    ScoreEntry,
)
from leadops.models.vocab import SuppressionReason
from leadops.nurture.tick import run_tick
from leadops.reporting.kpis import compute
from leadops.runtime import load_runtime
from leadops.sales.acks import close
from leadops.sales.escalation import escalate
from leadops.sales.runtime import EscalationRuntime
from leadops.sales.scan import RETRY_DUE, find_retries_due, run_escalations
from leadops.sales.sla import check_slas
from leadops.views.handoff import _events
from leadops.web.app import create_app
from tests.integration.test_escalation import NOW, add_lead, get, runtime_for

LINK = re.compile(r"http://127\.0\.0\.1:8000(/escalations/ack/[A-Za-z0-9_\-.]+)")
FORM = re.compile(
    r'name="action" value="(\w+)"><input type="hidden" name="nonce" value="([\w-]+)">'
    r'<input type="hidden" name="csrf" value="(\w+)">'
)


def emailed_link(runtime: EscalationRuntime, role: str = "rep") -> str:
    """The hand-off link in the newest email to `role`, as a path."""
    folder = runtime.settings.resolved_outbox_dir / "email" / "escalations" / role
    mail = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)[-1]
    match = LINK.search(mail.read_text().replace("=\n", ""))
    assert match, mail.read_text()
    return match.group(1)


def forms(html: str) -> dict[str, dict[str, str]]:
    """The one-time fields of each form on the page, by action."""
    return {a: {"action": a, "nonce": n, "csrf": c} for a, n, c in FORM.findall(html)}


def activities(engine: Engine, escalation_id: int | None) -> list[tuple[Any, ...]]:
    a = ESCALATION_ACTIVITIES.c
    with engine.connect() as connection:
        rows = connection.execute(
            select(a.kind, a.channel, a.reason, a.amount_cents, a.by)
            .where(a.escalation_id == escalation_id)
            .order_by(a.id)
        ).all()
    return [tuple(row) for row in rows]


def refusals(engine: Engine) -> dict[str, int]:
    w = WEBHOOK_REJECTIONS.c
    with engine.connect() as connection:
        rows = connection.execute(
            select(w.reason, w.count).where(w.source == "escalation_ack")
        ).all()
    return {reason: count for reason, count in rows}


def hand_raise(engine: Engine, lead_id: int) -> None:
    """What the lead sent: a demo request form with a message, and a WhatsApp reply; and
    what scored it."""
    with Session(engine) as session:
        session.add(
            FormSubmission(
                form="demo",
                submission_key="k1",
                lead_id=lead_id,
                raw={"email": "olivia@acme.example", "message": "Can we see it <b>this week</b>?"},
                status="not_needed",
                submitted_at=NOW - timedelta(minutes=5),
            )
        )
        session.add(
            InboxEvent(
                source="twilio_inbound",
                kind="inbound",
                dedupe_key="SM1",
                payload={"Body": "Yes please, call me after 3"},
                received_at=NOW - timedelta(minutes=3),
                status="processed",
                lead_id=lead_id,
                event="replied",
            )
        )
        for rule, kind, points in (("demo_request", "engagement", 40), ("title-coo", "fit", 15)):
            session.add(
                ScoreEntry(
                    lead_id=lead_id,
                    kind=kind,
                    rule=rule,
                    points=points,
                    reason=rule,
                    event_at=NOW - timedelta(minutes=5),
                    created_at=NOW - timedelta(minutes=5),
                )
            )
        session.commit()


def setup(tmp_path: Path, engine: Engine, minutes: int = 4) -> tuple[TestClient, Any, int, str]:
    runtime = runtime_for(tmp_path, engine)
    lead_id = add_lead(engine, "olivia@acme.example", first_name="Olivia", timezone="Europe/London")
    hand_raise(engine, lead_id)
    result = escalate(engine, lead_id, "demo_requested", "e1", 80, ["demo"], NOW, runtime=runtime)
    assert result.escalation_id is not None
    clock = SimulatedClock(NOW + timedelta(minutes=minutes))
    client = TestClient(create_app(runtime.settings, engine, clock))
    return client, runtime, result.escalation_id, emailed_link(runtime)


def submit(client: TestClient, path: str, action: str, **values: str) -> Any:
    """Post one form of the page as it is now, with `values` filled in."""
    page = client.get(path)
    return client.post(path, data={**forms(page.text)[action], **values})


def test_a_rep_acknowledges_logs_a_call_and_closes_won_from_the_emailed_link(
    tmp_path: Path, engine: Engine
) -> None:
    client, runtime, escalation_id, path = setup(tmp_path, engine)
    sent = [p.read_text() for p in runtime.settings.resolved_outbox_dir.rglob("*/rep/*.*")]
    assert len(sent) == 2 and all("Open the hand-off page" in message for message in sent)
    assert not any("leadops escalations" in message for message in sent)  # no CLI for reps

    page = client.get(path)
    assert page.status_code == 200
    assert "Olivia" in page.text and "requested a demo" in page.text
    assert "Can we see it &lt;b&gt;this week&lt;/b&gt;?" in page.text  # escaped
    assert "Yes please, call me after 3" in page.text
    assert "Tue 01 Dec 14:04 GMT" in page.text  # the lead's local time
    assert re.search(r"demo_request</td><td class=\"n\">\+40", page.text)  # the breakdown
    assert "Act as ana" in page.text and 'name="by"' not in page.text
    assert get(engine, escalation_id).status == "open"  # GET changes nothing
    headers = page.headers
    assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"
    assert headers["x-robots-tag"] == "noindex"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "<script" not in page.text

    done = client.post(path, data=forms(page.text)["acknowledge"], follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("?done=acknowledge")
    assert "Acknowledged" in client.get(done.headers["location"]).text
    escalation = get(engine, escalation_id)
    assert (escalation.status, escalation.acknowledged_by) == ("acknowledged", "ana")

    called = submit(client, path, "contact", channel="call", note="Booked a demo")
    assert called.status_code == 200 and "Contact logged." in called.text
    escalation = get(engine, escalation_id)
    assert escalation.first_contact_at == NOW + timedelta(minutes=4)
    assert (escalation.first_contact_by, escalation.first_contact_channel) == ("ana", "call")

    won_form = forms(client.get(path).text)["won"]
    won = client.post(path, data={**won_form, "amount": "1,250.50"})
    assert won.status_code == 200 and "Closed won" in won.text and "1,250.50" in won.text
    again = client.post(path, data={**won_form, "amount": "99"})  # a double tap
    assert again.status_code == 200 and "Already recorded" in again.text
    escalation = get(engine, escalation_id)
    assert (escalation.status, escalation.closed_by) == ("closed_won", "ana")
    assert escalation.amount_cents == 125050
    with Session(engine) as session:
        lead = session.get(Lead, escalation.lead_id)
        assert lead is not None and lead.lifecycle_stage == "customer"
    assert activities(engine, escalation_id) == [
        ("acknowledged", None, None, None, "ana"),
        ("contacted", "call", None, None, "ana"),
        ("won", None, None, 125050, "ana"),
    ]

    # The report's speed to lead and outcomes count it (the rep's first contact, the amount).
    figures = compute(engine, NOW + timedelta(minutes=10), config_dir=runtime.settings.config_dir)
    assert escalation.started_at is not None
    minutes = (escalation.first_contact_at - escalation.started_at).total_seconds() / 60
    overall = {(s.by, s.key): s for s in figures.speed_to_lead}
    assert overall[("rep", "ana")].contacted == 1
    assert overall[("rep", "ana")].median_minutes == pytest.approx(minutes)
    assert (figures.outcomes.won, figures.outcomes.won_amount_total) == (1, 1250.5)

    stale = client.post(path, data={**won_form, "nonce": "n" * 22, "csrf": "0" * 64})
    assert stale.status_code == 403  # a key the page never gave
    late = client.post(path, data=forms(page.text)["note"] | {"note": "one more thing"})
    assert late.status_code == 409 and "already closed_won" in late.text
    assert len(activities(engine, escalation_id)) == 3


def test_closing_unacknowledged_acknowledges_first_and_each_action_is_checked(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    client, _, escalation_id, path = setup(tmp_path, sqlite_engine)
    bad = [
        ("lost", {}, "Choose a reason"),
        ("lost", {"reason": "bored"}, "lost reason 'bored'"),
        ("not_ready", {"reason": "timing"}, "Choose when to try again"),
        ("not_ready", {"reason": "timing", "retry_on": "2026-11-30"}, "in the future"),
        ("not_ready", {"reason": "timing", "retry_on": "soon"}, "use YYYY-MM-DD"),
        ("won", {"amount": "12.345"}, "at most two decimals"),
        ("won", {"amount": "-5"}, "positive number"),
        ("disqualify", {}, "disqualifying needs a reason"),
        ("contact", {"channel": "fax"}, "contact channel 'fax'"),
        ("note", {"note": "   "}, "a note needs some text"),
    ]
    for action, values, message in bad:
        response = submit(client, path, action, **values)
        shown = html.unescape(response.text).lower()
        assert response.status_code == 422 and message.lower() in shown, (action, values)
    assert activities(sqlite_engine, escalation_id) == []
    assert get(sqlite_engine, escalation_id).status == "open"

    lost = submit(client, path, "lost", reason="competitor", note="went with Initech")
    assert lost.status_code == 200 and "Closed lost" in lost.text
    assert activities(sqlite_engine, escalation_id) == [
        ("acknowledged", None, None, None, "ana"),
        ("lost", None, "competitor", None, "ana"),
    ]
    escalation = get(sqlite_engine, escalation_id)
    assert (escalation.outcome_reason, escalation.close_note) == ("competitor", "went with Initech")
    assert escalation.acknowledged_by == "ana"


def test_forged_missing_and_cross_site_forms_are_refused_and_counted(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    client, runtime, escalation_id, path = setup(tmp_path, sqlite_engine)
    fields = forms(client.get(path).text)["acknowledge"]
    attempts = [
        ({"action": "acknowledge"}, {}, 403),  # no CSRF token
        ({**fields, "csrf": "f" * 64}, {}, 403),  # forged
        ({**fields, "action": "won"}, {}, 403),  # another form's token
        (fields, {"Origin": "https://evil.example"}, 403),
        (fields, {"Sec-Fetch-Site": "cross-site"}, 403),
        ({**fields, "by": "Mallory"}, {}, 400),  # a field the page has not
    ]
    for data, headers, status in attempts:
        assert client.post(path, data=data, headers=headers).status_code == status, data
    wrong_type = client.post(path, json=fields)
    assert wrong_type.status_code == 415
    assert activities(sqlite_engine, escalation_id) == []
    assert refusals(sqlite_engine) == {
        "csrf_missing": 1,
        "csrf_invalid": 2,
        "cross_site": 2,
        "malformed": 1,
        "unsupported_type": 1,
    }
    same_site = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert client.post(path, data=fields, headers=same_site).status_code == 200
    assert get(sqlite_engine, escalation_id).status == "acknowledged"
    twice = submit(client, path, "contact", channel="email")  # a page that no longer asks
    assert twice.status_code == 200 and "I have it" not in twice.text
    assert [row[0] for row in activities(sqlite_engine, escalation_id)] == [
        "acknowledged",
        "contacted",
    ]

    key = runtime.settings.signing_key()
    wrong_purpose = client.get(f"/escalations/ack/{sign('unsubscribe', {'e': 1, 'a': 1}, key)}")
    assert wrong_purpose.status_code == 400 and "not &#39;ack&#39;" in wrong_purpose.text

    assert client.get(path[:-2] + "xx").status_code == 400
    settings = runtime.settings
    later = TestClient(
        create_app(settings, sqlite_engine, SimulatedClock(NOW + timedelta(days=30)))
    )
    expired = later.get(path)
    assert expired.status_code == 400 and "expired" in expired.text
    assert refusals(sqlite_engine)["bad_token"] == 3


def test_an_old_link_after_a_reroute_shows_the_lead_but_cannot_act(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    client, runtime, escalation_id, path = setup(tmp_path, sqlite_engine)
    before = forms(client.get(path).text)
    check_slas(runtime, NOW + timedelta(minutes=16))  # ana did not acknowledge: ben has it
    page = client.get(path)
    assert page.status_code == 200 and "re-routed to ben" in page.text and not forms(page.text)
    refused = client.post(path, data={**before["contact"], "channel": "call"})
    assert refused.status_code == 409 and "re-routed to ben" in refused.text
    assert activities(sqlite_engine, escalation_id) == []
    manager = emailed_link(runtime, "digest")  # the manager's digest of the pass
    assert submit(client, manager, "acknowledge").status_code == 200
    assert activities(sqlite_engine, escalation_id)[0][-1] == "manager: Mia Manager"


def test_disqualifying_suppresses_the_lead_and_marketing_stops(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    client, runtime, escalation_id, path = setup(tmp_path, sqlite_engine)
    done = submit(client, path, "disqualify", reason="student")
    assert done.status_code == 200 and "marketing to the lead has stopped" in done.text
    escalation = get(sqlite_engine, escalation_id)
    assert (escalation.status, escalation.outcome_reason) == ("disqualified", "student")
    with Session(sqlite_engine) as session:
        lead = session.get(Lead, escalation.lead_id)
        assert lead is not None
        assert lead.email_suppression_reason == lead.whatsapp_suppression_reason == "disqualified"
        decision = decide(
            channel="email",
            lead=contact_facts(lead),
            now=NOW,
            window=SendWindow(time(0), time.max, frozenset(range(7))),
            caps=Caps(per_day=5, per_week=10),
            recent_sends=[],
        )
    assert (decision.action, decision.reason) == (Action.SKIP, Reason.SUPPRESSED)
    assert SuppressionReason.DISQUALIFIED in REASON_MEANINGS

    nurture = load_runtime(runtime.settings, engine=sqlite_engine)
    run_tick(nurture, SimulatedClock(NOW + timedelta(days=7)))  # a week of nurture later
    with Session(sqlite_engine) as session:
        t = TOUCHES.c
        query = select(t.status, t.hold_reason).where(t.lead_id == lead.id)
        assert set(session.execute(query).all()) == {("skipped", "suppressed")}  # none sent


def test_a_lead_not_ready_is_escalated_again_once_on_its_date(
    tmp_path: Path, engine: Engine
) -> None:
    client, runtime, escalation_id, path = setup(tmp_path, engine)
    done = submit(client, path, "not_ready", reason="timing", retry_on="2026-12-08")
    assert done.status_code == 200 and "Not ready" in done.text
    retry_at = get(engine, escalation_id).retry_at
    assert retry_at is not None and retry_at.isoformat() == "2026-12-08T09:00:00+00:00"

    assert run_escalations(runtime, retry_at - timedelta(minutes=1)).escalated == 0
    report = run_escalations(runtime, retry_at)
    assert (report.escalated, report.retried) == (1, 1)
    assert run_escalations(runtime, retry_at + timedelta(minutes=1)).escalated == 0
    with Session(engine) as session:
        again = session.execute(
            select(Escalation).where(Escalation.trigger == RETRY_DUE)  # type: ignore[arg-type]
        ).scalar_one()
    assert (again.trigger_key, again.rep_key) == (f"retry-{escalation_id}", "ana")
    assert any("not ready on 2026-12-01 (timing)" in r["reason"] for r in again.reasons)


def test_a_retry_skips_leads_that_became_customers_were_suppressed_or_disqualified(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    runtime = runtime_for(tmp_path, sqlite_engine)
    retry_at = NOW + timedelta(days=7)
    ids = {}
    for name in ("customer", "suppressed", "busy", "disqualified", "due"):
        lead_id = add_lead(sqlite_engine, f"{name}@{name}.example")
        result = escalate(
            sqlite_engine, lead_id, "demo_requested", "e", 80, ["x"], NOW, runtime=runtime
        )
        assert result.escalation_id is not None
        close(
            sqlite_engine, result.escalation_id, "not_ready", now=NOW, by="ana", retry_at=retry_at
        )
        ids[name] = lead_id
    with Session(sqlite_engine) as session:
        customer = session.get(Lead, ids["customer"])
        suppressed = session.get(Lead, ids["suppressed"])
        assert customer is not None and suppressed is not None
        customer.lifecycle_stage = "customer"
        suppressed.email_suppressed_at = NOW
        session.commit()
    escalate(sqlite_engine, ids["busy"], "reply_intent", "r", 80, ["x"], NOW, runtime=runtime)
    gone = escalate(
        sqlite_engine, ids["disqualified"], "reply_intent", "r", 80, ["x"], NOW, runtime=runtime
    )
    assert gone.escalation_id is not None
    close(sqlite_engine, gone.escalation_id, "disqualified", now=NOW, by="ana", reason="spam")

    results = find_retries_due(runtime, retry_at)
    assert [(r.created, get(sqlite_engine, r.escalation_id).lead_id) for r in results] == [
        (True, ids["due"])
    ]
    assert find_retries_due(runtime, retry_at + timedelta(hours=1)) == []


def test_the_page_shows_what_the_lead_wrote_in_an_email_reply(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as connection:
        lead = connection.execute(
            LEADS.insert().values(email="ada@example.com", created_at=NOW, updated_at=NOW)
        ).inserted_primary_key[0]
        for n, (source, payload) in enumerate(
            [
                ("sendgrid_inbound", {"text": "Can we talk on Friday?", "subject": "Re: guide"}),
                ("twilio_inbound", {"Body": "Call me"}),
            ]
        ):
            connection.execute(
                INBOX.insert().values(
                    source=source,
                    kind="reply",
                    event="replied",
                    dedupe_key=f"r{n}",
                    payload=payload,
                    lead_id=lead,
                    received_at=NOW + timedelta(minutes=n),
                    status="processed",
                )
            )
    with Session(sqlite_engine) as session:
        events, counts = _events(session, int(lead))
    assert [(e["what"], e["text"]) for e in events] == [
        ("replied", "Call me"),
        ("replied", "Can we talk on Friday?"),
    ]
    assert counts["replies"] == 2
