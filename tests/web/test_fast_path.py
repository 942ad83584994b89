"""The fast path: which stored events kick it, how kicks coalesce and fail, and a demo
request escalated and notified by the thread of `leadops serve` (no Prefect) with no
every-minute pass."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from leadops.core.settings import Settings
from leadops.models import ESCALATION_NOTIFICATIONS, ESCALATIONS, INBOX
from leadops.ops.check import Status
from leadops.ops.doctor_prefect import check_fast_path
from leadops.ops.handoff import Kicker, fast_path_mode, run_fast_pass
from leadops.web.app import create_app
from tests.engagement import Harness, engagement_settings, new_signing_key, sg_event, status_params

WAIT_SECONDS = 30


def wait_until(condition: object, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def h(tmp_path: Path, sqlite_engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), sqlite_engine, key)


def with_on_event(h: Harness, on_event: object) -> None:
    h.client = TestClient(create_app(h.settings, h.engine, h.clock, on_event=on_event))  # type: ignore[arg-type]


def demo(email: str, n: int = 1) -> dict[str, str]:
    return {"id": f"demo-{n}", "type": "demo_requested", "email": email, "occurred_at": "now"}


def test_hand_raises_kick_the_fast_path_and_delivery_reports_do_not(h: Harness) -> None:
    kicks: list[int] = []
    with_on_event(h, lambda: kicks.append(1))
    lead_id = h.add_lead("ada@harbourbank.example", phone="+447700900123")
    at = h.clock.now()
    event = demo("ada@harbourbank.example") | {"occurred_at": at.isoformat()}
    assert h.site(event).status_code == 202
    assert len(kicks) == 1
    assert h.site(event).status_code == 202  # the same event again: nothing new stored
    assert len(kicks) == 1
    assert h.sendgrid([sg_event("open", lead_id, 1, at)]).status_code == 200
    assert h.twilio("/webhooks/twilio/status", status_params("SM1", "delivered")).status_code
    assert len(kicks) == 1
    reply = status_params("SM2", "received") | {"Body": "Yes, call me", "NumMedia": "0"}
    reply |= {"From": "whatsapp:+447700900123", "To": "whatsapp:+14155238886"}
    assert h.twilio("/webhooks/twilio/inbound", reply).status_code == 200
    assert len(kicks) == 2


def test_a_burst_of_kicks_makes_one_more_call_not_one_each() -> None:
    release = threading.Event()
    calls: list[int] = []

    def submit() -> None:
        calls.append(1)
        release.wait(10)

    kicker = Kicker(submit, name="test", spacing=0)
    try:
        kicker.kick()
        wait_until(lambda: calls)
        for _ in range(50):  # while the first call runs
            kicker.kick()
        release.set()
        wait_until(lambda: kicker.calls == 2)
        time.sleep(0.2)  # no third call comes
        assert len(calls) == 2
    finally:
        kicker.close()


def test_a_failing_submission_is_logged_once_until_it_works_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = True

    def submit() -> None:
        if failing:
            raise ConnectionError("All connection attempts failed")

    kicker = Kicker(submit, name="hand-off submission", spacing=0)
    caplog.set_level(logging.WARNING, logger="leadops.handoff")
    try:
        for n in range(1, 4):
            kicker.kick()
            wait_until(lambda n=n: kicker.failures == n)  # type: ignore[misc]
        failing = False
        kicker.kick()
        wait_until(lambda: kicker.calls == 1)
    finally:
        kicker.close()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert "hand-off submission failed: ConnectionError: All connection attempts" in messages[0]
    assert "every-minute escalate pass takes them" in messages[0]
    assert messages[1] == "fast path: hand-off submission works again"
    assert all(record.exc_info is None for record in caplog.records)


def test_the_thread_fast_path_escalates_and_notifies_a_demo_request_at_once(
    h: Harness,
) -> None:
    kicker = Kicker(lambda: run_fast_pass(h.settings), name="fast pass", spacing=0)
    with_on_event(h, kicker.kick)
    h.add_lead("ada@harbourbank.example", country="GB")
    try:
        event = demo("ada@harbourbank.example") | {"occurred_at": h.clock.now().isoformat()}
        assert h.site(event).status_code == 202
        wait_until(lambda: kicker.calls + kicker.failures >= 1)
    finally:
        kicker.close()
    assert kicker.failures == 0
    with h.engine.connect() as connection:
        assert connection.execute(sa.select(INBOX.c.status)).scalars().all() == ["processed"]
        trigger = connection.execute(sa.select(ESCALATIONS.c.trigger)).scalar_one()
        rows = connection.execute(
            sa.select(
                ESCALATION_NOTIFICATIONS.c.role,
                ESCALATION_NOTIFICATIONS.c.status,
                ESCALATION_NOTIFICATIONS.c.error,
            )
        ).all()
    # The rep hears at once; the lead's intro waits for the lead's send window (the harness
    # runs on the real clock, so outside 08:00-21:00 in the lead's zone it is held).
    assert {status for role, status, _ in rows if role == "rep"} == {"sent"}
    for role, status, error in rows:
        if role == "lead":
            assert status == "sent" or error == "held: outside_send_window", (status, error)
    assert trigger == "demo_requested"
    assert list(h.settings.resolved_outbox_dir.rglob("escalations/*/*"))


def test_auto_is_prefect_with_an_api_and_the_thread_without(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert fast_path_mode(settings, {"PREFECT_API_URL": "http://127.0.0.1:4200/api"}) == "prefect"
    assert fast_path_mode(settings, {}) == "thread"
    off = Settings(data_dir=tmp_path, fast_path="off")
    assert fast_path_mode(off, {"PREFECT_API_URL": "http://127.0.0.1:4200/api"}) == "off"


def test_doctor_names_where_the_fast_path_runs() -> None:
    now = datetime.now(UTC)
    assert check_fast_path("thread", None, now).status == Status.OK
    off = check_fast_path("off", "http://127.0.0.1:4200/api", now)
    assert off.status == Status.WARN and "every-minute escalate pass" in off.detail
    missing = check_fast_path("prefect", None, now)
    assert missing.status == Status.FAIL and "PREFECT_API_URL" in missing.detail
