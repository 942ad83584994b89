"""No single input stops a pipeline: an inbox event, touch or sales-ready lead that fails
to apply is set aside as a dead letter with its error, the rest of the batch goes on, and
a retry after the fix applies it exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops import deadletters, inbox
from leadops.models import DEAD_LETTERS, INBOX, LEADS, TOUCHES
from leadops.rescore import run_inbox
from tests.engagement import Harness, engagement_settings, new_signing_key, sg_event, status_params

SID = "SM" + "a" * 32


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


def _store_raw(h: Harness, source: str, kind: str, key: str, payload: dict[str, Any]) -> int:
    """Store an event as an older version of the endpoints would have accepted it."""
    inbox.store(h.engine, [inbox.InboxRecord(source, kind, key, payload)], h.clock.now())
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
    return _store_raw(h, inbox.TWILIO_STATUS, "failed", f"tw:bad{n}", payload)


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
    results = deadletters.retry(h.engine, [letters[1]["id"]], h.clock.now())
    assert [(r.outcome, r.item_id) for r in results] == [("requeued", not_a_number)]
    assert h.rescore().events == {"twilio_status/failed": 1}
    assert _inbox(h, not_a_number)["status"] == "processed"
    assert h.touch(lead_id, "whatsapp")["status"] == "failed"
    again = deadletters.retry(h.engine, [letters[1]["id"]], h.clock.now())
    assert [r.outcome for r in again] == ["not_retried"]
    assert h.rescore().counts()["events"] == 0
    assert [d["item_id"] for d in deadletters.list_rows(h.engine)] == [too_large]

    # retrying without a fix fails again: open again, two failures counted
    deadletters.retry(h.engine, None, h.clock.now())
    assert h.rescore().dead_letters == 1
    (letter,) = deadletters.list_rows(h.engine)
    assert (letter["item_id"], letter["failures"], letter["retries"]) == (too_large, 2, 1)


def test_the_every_minute_inbox_pass_sets_a_bad_event_aside(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com")
    h.tick()
    touch = h.touch(lead_id, "email")
    bad = _store_raw(
        h,
        inbox.SENDGRID,
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
    report = run_inbox(h.runtime, h.clock.now())
    assert report.dead_letters == 1
    assert report.events == {"site/demo_requested": 1}
    assert [r.lead_id for r in report.sales_ready] == [lead_id]
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

    h.tick()  # never picked up again, never sent
    assert [status for _, status, _ in _touches(h, bad)] == ["dead_letter"]
    assert len(_outbox_files(h)) == sent_before

    with h.engine.begin() as connection:
        connection.execute(sa.update(LEADS).where(LEADS.c.id == bad).values(timezone="UTC"))
    (result,) = deadletters.retry(h.engine, None, h.clock.now())
    assert result.outcome == "requeued"
    h.tick()
    h.tick()
    assert [status for _, status, _ in _touches(h, bad)] == ["sent"]
    assert len(_outbox_files(h)) == sent_before + 1
    assert deadletters.list_rows(h.engine) == []
