"""No single input stops a pipeline: an inbox event, touch or sales-ready lead that fails
to apply is set aside as a dead letter with its error, the rest of the batch goes on, and
a retry after the fix applies it exactly once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops import deadletters
from leadops.delivery.suppression import leave_nurture
from leadops.engagement import inbox
from leadops.engagement.report import SalesReady
from leadops.engagement.scoring import Reason
from leadops.models import (
    DEAD_LETTERS,
    ESCALATION_ASSIGNMENTS,
    ESCALATION_NOTIFICATIONS,
    ESCALATIONS,
    INBOX,
    LEADS,
    SCORE_LEDGER,
    TOUCHES,
)
from leadops.ops.retry import retry
from leadops.providers import inbound
from leadops.reporting.summary import touch_summary
from leadops.sales.escalation import escalate
from leadops.sales.handoff import apply_inbox_and_escalate, escalate_sales_ready
from leadops.sales.scan import find_sales_ready
from leadops.sales.sla import check_slas
from tests.engagement import Harness, engagement_settings, new_signing_key, sg_event, status_params
from tests.integration.test_escalation import NOW as ESC_NOW
from tests.integration.test_escalation import add_lead, runtime_for

SID = "SM" + "a" * 32


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


def _store_raw(h: Harness, source: str, kind: str, key: str, payload: dict[str, Any]) -> int:
    """Store an event as an older version of the endpoints would have accepted it."""
    inbox.store(h.engine, [inbound.InboxRecord(source, kind, key, payload)], h.clock.now())
    with h.engine.connect() as connection:
        return int(
            connection.execute(sa.select(INBOX.c.id).where(INBOX.c.dedupe_key == key)).scalar_one()
        )


def _inbox(h: Harness, inbox_id: int) -> dict[str, Any]:
    with h.engine.connect() as connection:
        return connection.execute(sa.select(INBOX).where(INBOX.c.id == inbox_id)).one()._asdict()


def _status_event(h: Harness, touch_id: object, n: int) -> int:
    payload: dict[str, Any] = {
        **status_params(SID, "failed", ErrorCode="63016"),
        "touch_id": touch_id,
    }
    return _store_raw(h, inbound.TWILIO_STATUS, "failed", f"tw:bad{n}", payload)


def test_an_out_of_range_status_callback_is_set_aside_and_the_rescore_goes_on(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com", "+447700900123")
    h.tick()
    email = h.touch(lead_id, "email")
    whatsapp = h.touch(lead_id, "whatsapp")
    at = h.clock.now()
    h.sendgrid([sg_event("click", lead_id, email["id"], at, n=1, url="https://x.example/a")])
    too_large = _status_event(h, 10**30, 1)  # beyond any integer column
    not_a_number = _status_event(h, "abc", 2)
    h.sendgrid([sg_event("open", lead_id, email["id"], at, n=2)])

    report = h.rescore()

    assert report.dead_letters == 2
    assert report.events == {"sendgrid/click": 1, "sendgrid/open": 1}
    assert [rule for rule, _ in h.ledger(lead_id) if rule.startswith("email")] == [
        "email_click",
        "email_open",
    ]
    for inbox_id, error in ((too_large, "integer"), (not_a_number, "abc")):
        row = _inbox(h, inbox_id)
        assert row["status"] == "dead_letter"
        assert error in row["result"].lower()
        assert row["processed_at"] == h.clock.now()
    letters = deadletters.list_rows(h.engine)
    assert [(d["item"], d["item_id"], d["stage"], d["item_status"]) for d in letters] == [
        ("inbox", too_large, "rescore", "dead_letter"),
        ("inbox", not_a_number, "rescore", "dead_letter"),
    ]
    assert "\n" not in letters[0]["error"] and "SELECT" not in letters[0]["error"]

    # every later run goes on, and applies nothing twice
    assert h.rescore().counts()["events"] == 0

    # the fix (here: the callback's touch id corrected), then the retry: applied once
    with h.engine.begin() as connection:
        payload = {**status_params(SID, "failed", ErrorCode="63016"), "touch_id": whatsapp["id"]}
        connection.execute(
            sa.update(INBOX).where(INBOX.c.id == not_a_number).values(payload=payload)
        )
    results = retry(h.engine, [letters[1]["id"]], h.clock.now())
    assert [(r.outcome, r.item_id) for r in results] == [("requeued", not_a_number)]
    assert h.rescore().events == {"twilio_status/failed": 1}
    assert _inbox(h, not_a_number)["status"] == "processed"
    assert h.touch(lead_id, "whatsapp")["status"] == "failed"
    again = retry(h.engine, [letters[1]["id"]], h.clock.now())
    assert [r.outcome for r in again] == ["not_retried"]
    assert h.rescore().counts()["events"] == 0
    assert [d["item_id"] for d in deadletters.list_rows(h.engine)] == [too_large]

    # retrying without a fix fails again: open again, two failures counted
    retry(h.engine, None, h.clock.now())
    assert h.rescore().dead_letters == 1
    (letter,) = deadletters.list_rows(h.engine)
    assert (letter["item_id"], letter["failures"], letter["retries"]) == (too_large, 2, 1)


def test_the_every_minute_inbox_pass_sets_a_bad_event_aside(h: Harness, tmp_path: Path) -> None:
    lead_id = h.add_lead("ada@example.com")
    h.tick()
    touch = h.touch(lead_id, "email")
    bad = _store_raw(
        h,
        inbound.SENDGRID,
        "open",
        "sg:bad",
        {**sg_event("open", lead_id, touch["id"], h.clock.now()), "timestamp": "soon"},
    )
    h.site(
        [
            {
                "id": "demo-1",
                "type": "demo_requested",
                "email": "ada@example.com",
                "occurred_at": h.clock.now().isoformat(),
            }
        ]
    )
    handed = apply_inbox_and_escalate(h.runtime, runtime_for(tmp_path, h.engine), h.clock.now())
    assert (handed.events, handed.dead_letters, handed.escalated) == (1, 1, 1)
    assert [lead for lead, _, _ in _escalations(h.engine)] == [lead_id]
    assert _inbox(h, bad)["status"] == "dead_letter"
    with h.engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(DEAD_LETTERS)).scalar_one()
            == 1
        )


def _touches(h: Harness, lead_id: int) -> list[tuple[str, str, str | None]]:
    t = TOUCHES.c
    with h.engine.connect() as connection:
        return [
            (channel, status, error)
            for channel, status, error in connection.execute(
                sa.select(t.channel, t.status, t.error).where(t.lead_id == lead_id).order_by(t.id)
            ).all()
        ]


def _outbox_files(h: Harness) -> list[Path]:
    return sorted(h.settings.resolved_outbox_dir.rglob("*.*"))


def test_a_touch_whose_lead_data_breaks_the_decision_is_set_aside_and_sent_once_after_retry(
    h: Harness,
) -> None:
    good = h.add_lead("grace@example.com")
    bad = h.add_lead("ada@example.com")
    with h.engine.begin() as connection:  # stored by hand or an older importer
        connection.execute(sa.update(LEADS).where(LEADS.c.id == bad).values(timezone="Mars/Base"))

    h.tick()

    assert [status for _, status, _ in _touches(h, good)] == ["sent"]
    ((channel, status, error),) = _touches(h, bad)
    assert (channel, status) == ("email", "dead_letter")
    assert error is not None and "Mars/Base" in error
    (letter,) = deadletters.list_rows(h.engine)
    assert (letter["item"], letter["stage"], letter["item_status"]) == (
        "touch",
        "dispatch",
        "dead_letter",
    )
    sent_before = len(_outbox_files(h))

    (summary,) = [s for s in touch_summary(h.engine) if s.held]
    assert summary.held == {"dead_letter": 1} and summary.waiting == 0
    h.tick()  # never picked up again, never sent
    assert [status for _, status, _ in _touches(h, bad)] == ["dead_letter"]
    assert len(_outbox_files(h)) == sent_before

    with h.engine.begin() as connection:
        connection.execute(sa.update(LEADS).where(LEADS.c.id == bad).values(timezone="UTC"))
    (result,) = retry(h.engine, None, h.clock.now())
    assert result.outcome == "requeued"
    h.tick()
    h.tick()
    assert [status for _, status, _ in _touches(h, bad)] == ["sent"]
    assert len(_outbox_files(h)) == sent_before + 1
    assert deadletters.list_rows(h.engine) == []


def _escalations(engine: Engine) -> list[tuple[int, str, str]]:
    e = ESCALATIONS.c
    with engine.connect() as connection:
        return [
            (lead_id, trigger, key)
            for lead_id, trigger, key in connection.execute(
                sa.select(e.lead_id, e.trigger, e.trigger_key).order_by(e.id)
            ).all()
        ]


def test_a_lead_that_cannot_be_escalated_is_set_aside_and_the_scan_goes_on(
    tmp_path: Path, engine: Engine
) -> None:
    runtime = runtime_for(tmp_path, engine)
    broken = add_lead(engine, "ana@one.example")
    fine = add_lead(engine, "ben@two.example")
    with engine.begin() as connection:  # a ledger row no reason can be made of
        connection.execute(
            SCORE_LEDGER.insert().values(
                lead_id=broken,
                kind="engagement",
                rule="   ",
                points=40,
                reason="imported by hand",
                event_at=ESC_NOW,
                created_at=ESC_NOW,
            )
        )

    results = find_sales_ready(runtime, ESC_NOW)

    assert [(r.created, r.rule != "") for r in results] == [(True, True)]
    assert [lead for lead, _, _ in _escalations(engine)] == [fine]
    (letter,) = deadletters.list_rows(engine)
    assert (letter["item"], letter["item_id"], letter["stage"]) == (
        "escalation",
        broken,
        "escalation",
    )
    assert "reason 0 is empty" in letter["error"]
    # the scan leaves it alone until it is retried: one failure, not one a minute
    assert find_sales_ready(runtime, ESC_NOW + timedelta(minutes=1)) == []
    assert deadletters.list_rows(engine)[0]["failures"] == 1

    with engine.begin() as connection:  # the fix: the bad row corrected
        connection.execute(
            sa.update(SCORE_LEDGER).where(SCORE_LEDGER.c.rule == "   ").values(rule="demo")
        )
        # the retry escalates with what was recorded; correct the stored reasons too
        connection.execute(
            sa.update(DEAD_LETTERS).values(
                payload={
                    **letter_payload(connection),
                    "reasons": [{"reason": "demo", "points": 40}],
                }
            )
        )
    (result,) = retry(engine, None, ESC_NOW, escalation_runtime=lambda: runtime)
    assert result.outcome == "escalated"
    assert _escalations(engine) == [  # both came in at SQL: the scan escalates imported_sql
        (fine, "imported_sql", "stage-sql-1"),
        (broken, "imported_sql", "stage-sql-1"),
    ]
    (again,) = retry(engine, [letter["id"]], ESC_NOW, escalation_runtime=lambda: runtime)
    assert again.outcome == "not_retried"
    assert find_sales_ready(runtime, ESC_NOW + timedelta(minutes=2)) == []
    assert len(_escalations(engine)) == 2


def letter_payload(connection: sa.Connection) -> dict[str, Any]:
    return dict(connection.execute(sa.select(DEAD_LETTERS.c.payload)).scalar_one())


def test_a_rescore_hand_raise_for_a_lead_that_is_gone_does_not_stop_the_others(
    tmp_path: Path, engine: Engine
) -> None:
    runtime = runtime_for(tmp_path, engine)
    fine = add_lead(engine, "ben@two.example", lifecycle_stage="mql")
    ready = [
        SalesReady(
            lead_id=10_000,
            trigger="demo_requested",
            score=30,
            reasons=(Reason("demo", 30),),
            at=ESC_NOW,
        ),
        SalesReady(
            lead_id=fine,
            trigger="demo_requested",
            score=30,
            reasons=(Reason("demo", 30),),
            at=ESC_NOW,
        ),
    ]
    report = escalate_sales_ready(runtime, ready, ESC_NOW)
    assert (report.escalated, report.dead_letters) == (1, 1)
    assert [lead for lead, _, _ in _escalations(engine)] == [fine]
    (letter,) = deadletters.list_rows(engine)
    assert letter["item_id"] == 10_000 and "no lead with id 10000" in letter["error"]


def test_an_escalation_that_cannot_be_rerouted_does_not_stop_the_sla_check(
    tmp_path: Path, engine: Engine
) -> None:
    runtime = runtime_for(tmp_path, engine)
    broken = escalate(
        engine,
        add_lead(engine, "a@one.example"),
        "demo",
        "d-1",
        30,
        ["demo"],
        ESC_NOW,
        runtime=runtime,
    )
    fine = escalate(
        engine,
        add_lead(engine, "b@two.example"),
        "demo",
        "d-1",
        30,
        ["demo"],
        ESC_NOW,
        runtime=runtime,
    )
    with engine.begin() as connection:  # its assignment trail removed by hand
        connection.execute(
            sa.delete(ESCALATION_NOTIFICATIONS).where(
                ESCALATION_NOTIFICATIONS.c.escalation_id == broken.escalation_id
            )
        )
        connection.execute(
            sa.update(ESCALATIONS)
            .where(ESCALATIONS.c.id == broken.escalation_id)
            .values(assignment_id=None)
        )
        connection.execute(
            sa.delete(ESCALATION_ASSIGNMENTS).where(
                ESCALATION_ASSIGNMENTS.c.escalation_id == broken.escalation_id
            )
        )
    later = ESC_NOW + timedelta(hours=2)

    report = check_slas(runtime, later, deliver=False)

    assert (report.rerouted + report.to_queue, report.failed) == (1, 1)
    with engine.connect() as connection:
        statuses = dict(connection.execute(sa.select(ESCALATIONS.c.id, ESCALATIONS.c.status)).all())
    assert statuses == {broken.escalation_id: "open", fine.escalation_id: "rerouted"}
    (letter,) = deadletters.list_rows(engine)
    assert f"re-route of escalation {broken.escalation_id}" in letter["error"]
    check_slas(runtime, later + timedelta(minutes=1), deliver=False)  # tried again
    assert deadletters.list_rows(engine)[0]["failures"] == 2


def test_a_dead_lettered_touch_of_a_sequence_that_ended_is_skipped_on_retry(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com", timezone="Mars/Base")
    h.tick()
    assert [status for _, status, _ in _touches(h, lead_id)] == ["dead_letter"]
    with h.engine.begin() as connection:  # the lead replied meanwhile: sequence stopped
        assert leave_nurture(connection, lead_id, "replied", h.clock.now())
        connection.execute(sa.update(LEADS).where(LEADS.c.id == lead_id).values(timezone="UTC"))
    (result,) = retry(h.engine, None, h.clock.now())
    assert result.outcome == "skipped"
    h.tick()
    assert [status for _, status, _ in _touches(h, lead_id)] == ["skipped"]
    assert _outbox_files(h) == []
