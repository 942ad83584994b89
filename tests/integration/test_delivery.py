"""Real delivery end to end: plan, policy, render, send through fake providers, record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from leadops.core.clock import SimulatedClock
from leadops.core.configfile import ConfigError
from leadops.core.settings import Settings
from leadops.delivery.resolution import ResolutionError, resolve_touch
from leadops.models import LEADS, TOUCH_AUDIT, TOUCHES, TouchStatus
from leadops.nurture.tick import run_tick
from leadops.runtime import load_runtime
from leadops.testing.fakes import HANG, RATE_LIMITED, SERVER_ERROR, FakeSendGrid, FakeTwilio
from leadops.testing.scenario import (
    SENDGRID_KEY,
    TEMPLATE_SID,
    TWILIO_SID,
    TWILIO_TOKEN,
    provider_config,
    seed_leads,
)
from tests.conftest import make_settings

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # Tuesday, inside the send window


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSendGrid, FakeTwilio]]:
    sendgrid = FakeSendGrid(api_key=SENDGRID_KEY, hang_seconds=3)
    twilio = FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, hang_seconds=3)
    twilio.templates = {TEMPLATE_SID}
    sendgrid.faults.retry_after = 0
    twilio.faults.retry_after = 0
    sendgrid.start()
    twilio.start()
    yield sendgrid, twilio
    sendgrid.stop()
    twilio.stop()


def provider_settings(
    tmp_path: Path, sendgrid: FakeSendGrid, twilio: FakeTwilio, **extra: object
) -> Settings:
    values: dict[str, object] = {
        "config_dir": provider_config(tmp_path / "config"),
        "email_channel": "sendgrid",
        "sendgrid_api_key": SENDGRID_KEY,
        "sendgrid_base_url": sendgrid.url,
        # Long enough that a busy CI machine's slow answer is not taken for a hang (the
        # timeout test sets its own, shorter one).
        "sendgrid_timeout_seconds": 10,
        "whatsapp_channel": "twilio",
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": TWILIO_TOKEN,
        "twilio_whatsapp_from": "+14155550100",
        "twilio_base_url": twilio.url,
        "twilio_timeout_seconds": 10,
        "public_url": "https://hooks.example.com",
    }
    values.update(extra)
    return make_settings(tmp_path, **values)


def _touches(engine: Engine) -> list[dict[str, object]]:
    t = TOUCHES.c
    with engine.connect() as conn:
        rows = conn.execute(select(TOUCHES).order_by(t.id)).mappings().all()
    return [dict(row) for row in rows]


def test_tick_sends_each_touch_once_and_records_provider_ids(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    settings = provider_settings(tmp_path, sendgrid, twilio)
    seed_leads(engine, 30, NOW)
    runtime = load_runtime(settings, engine=engine)

    tick = run_tick(runtime, SimulatedClock(NOW))
    again = run_tick(runtime, SimulatedClock(NOW + timedelta(hours=1)))

    assert tick.dispatch.sent_total == 60 and again.dispatch.sent_total == 0
    sendgrid.check_contract()
    twilio.check_contract()
    touches = _touches(engine)
    assert {row["status"] for row in touches} == {TouchStatus.SENT}
    by_touch = {e.touch_id: e.message_id for e in sendgrid.log + twilio.log}
    assert len(by_touch) == 60 == len(sendgrid.log) + len(twilio.log)
    for row in touches:
        assert by_touch[str(row["id"])] == row["provider_message_id"]
    # outside the 24-hour window every WhatsApp message is the approved template
    assert all(e.body["ContentSid"] == TEMPLATE_SID for e in twilio.log)
    assert all(e.body["ContentVariables"].startswith('{"1": "Lead') for e in twilio.log)
    assert twilio.late_failures == []


def test_open_whatsapp_session_sends_free_text(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    settings = provider_settings(tmp_path, sendgrid, twilio)
    seed_leads(engine, 2, NOW)
    with engine.begin() as conn:
        conn.execute(
            update(LEADS).where(LEADS.c.id == 1).values(last_inbound_at=NOW - timedelta(hours=3))
        )
    twilio.open_sessions.add("+14150000000")
    run_tick(load_runtime(settings, engine=engine), SimulatedClock(NOW))
    bodies = {e.to: e.body for e in twilio.log}
    assert "Body" in bodies["whatsapp:+14150000000"]
    assert "ContentSid" not in bodies["whatsapp:+14150000000"]
    assert bodies["whatsapp:+14150000001"]["ContentSid"] == TEMPLATE_SID
    assert twilio.late_failures == []


def test_transient_errors_are_retried_in_place_and_never_duplicated(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    settings = provider_settings(tmp_path, sendgrid, twilio, sendgrid_concurrency=1)
    seed_leads(engine, 1, NOW)
    sendgrid.script.extend([RATE_LIMITED, SERVER_ERROR])
    twilio.script.append(RATE_LIMITED)
    tick = run_tick(load_runtime(settings, engine=engine), SimulatedClock(NOW))
    assert tick.dispatch.sent_total == 2
    assert sendgrid.answers == {"rate_limited": 1, "server_error": 1, "202": 1}
    assert len(sendgrid.log) == 1 and len(twilio.log) == 1


def test_rate_limit_beyond_inline_retries_waits_for_a_later_run(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    settings = provider_settings(tmp_path, sendgrid, twilio, provider_retry_attempts=2)
    seed_leads(engine, 1, NOW)
    sendgrid.script.extend([RATE_LIMITED, RATE_LIMITED])
    sendgrid.faults.retry_after = 0
    runtime = load_runtime(settings, engine=engine)
    tick = run_tick(runtime, SimulatedClock(NOW))
    email = next(row for row in _touches(engine) if row["channel"] == "email")
    assert tick.dispatch.held["provider_retry"] == 1
    assert email["status"] == TouchStatus.PENDING and "429" in str(email["error"])
    run_tick(runtime, SimulatedClock(NOW + timedelta(minutes=5)))
    email = next(row for row in _touches(engine) if row["channel"] == "email")
    assert email["status"] == TouchStatus.SENT and len(sendgrid.log) == 1


def test_bad_address_fails_the_touch_and_suppresses_the_channel(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    settings = provider_settings(tmp_path, sendgrid, twilio)
    seed_leads(engine, 2, NOW)
    sendgrid.bad_addresses.add("lead000000@example.com")
    twilio.bad_numbers.add("+14150000001")
    tick = run_tick(load_runtime(settings, engine=engine), SimulatedClock(NOW))
    assert tick.dispatch.failed == 2 and tick.dispatch.sent_total == 2
    failed = [row for row in _touches(engine) if row["status"] == TouchStatus.FAILED]
    assert {(row["lead_id"], row["channel"]) for row in failed} == {(1, "email"), (2, "whatsapp")}
    assert any("valid address" in str(row["error"]) for row in failed)
    assert any("21211" in str(row["error"]) for row in failed)
    with engine.connect() as conn:
        leads = {
            row.id: row
            for row in conn.execute(
                select(LEADS.c.id, LEADS.c.email_suppressed_at, LEADS.c.whatsapp_suppressed_at)
            )
        }
    assert leads[1].email_suppressed_at is not None and leads[1].whatsapp_suppressed_at is None
    assert leads[2].whatsapp_suppressed_at is not None and leads[2].email_suppressed_at is None


def test_bad_credentials_stop_the_channel_and_keep_touches_pending(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    settings = provider_settings(tmp_path, sendgrid, twilio, sendgrid_api_key="SG.revoked")
    seed_leads(engine, 20, NOW)
    tick = run_tick(load_runtime(settings, engine=engine), SimulatedClock(NOW))
    emails = [row for row in _touches(engine) if row["channel"] == "email"]
    assert {row["status"] for row in emails} == {TouchStatus.PENDING}
    assert all(row["attempts"] == 0 for row in emails)
    assert sendgrid.answers["401"] <= settings.sendgrid_concurrency  # stopped, not hammered
    assert tick.dispatch.sent_total == 20  # WhatsApp went on
    assert any("401" in error for error in tick.dispatch.errors)


def test_timeout_is_ambiguous_listed_and_resolvable(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    settings = provider_settings(tmp_path, sendgrid, twilio)
    seed_leads(engine, 1, NOW)
    sendgrid.script.append(HANG)
    runtime = load_runtime(
        settings.model_copy(update={"sendgrid_timeout_seconds": 0.5}), engine=engine
    )
    tick = run_tick(runtime, SimulatedClock(NOW))
    assert tick.dispatch.ambiguous == 1
    email = next(row for row in _touches(engine) if row["channel"] == "email")
    assert email["status"] == TouchStatus.AMBIGUOUS and "no answer" in str(email["error"])
    # never re-sent automatically
    run_tick(runtime, SimulatedClock(NOW + timedelta(days=1)))
    assert len(sendgrid.log) == 1

    with pytest.raises(ResolutionError, match="reason"):
        resolve_touch(engine, int(email["id"]), sent=False, reason=" ", actor="ops", now=NOW)
    resolve_touch(
        engine,
        int(email["id"]),
        sent=False,
        reason="not in activity feed",
        actor="ops",
        now=NOW + timedelta(days=1),
    )
    run_tick(runtime, SimulatedClock(NOW + timedelta(days=1, minutes=1)))
    email = next(row for row in _touches(engine) if row["channel"] == "email")
    assert email["status"] == TouchStatus.SENT and len(sendgrid.log) == 2
    with pytest.raises(ResolutionError, match="only ambiguous"):
        resolve_touch(engine, int(email["id"]), sent=True, reason="x", actor="ops", now=NOW)
    with engine.connect() as conn:
        audit = conn.execute(select(TOUCH_AUDIT)).mappings().all()
    assert [(a["action"], a["from_status"], a["to_status"], a["actor"]) for a in audit] == [
        ("resolve_not_sent", "ambiguous", "pending", "ops")
    ]


def test_twilio_channel_refuses_to_start_without_templates(
    sqlite_engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    settings = provider_settings(tmp_path, sendgrid, twilio)
    no_templates = settings.model_copy(update={"config_dir": Path(__file__).parents[2] / "config"})
    with pytest.raises(ConfigError, match=r"content_sid.*educate/day-1"):
        load_runtime(no_templates, engine=sqlite_engine)


def test_dispatcher_stopped_by_an_error_records_what_it_knows(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    from leadops.nurture.plan import plan_all
    from leadops.nurture.tick import run_dispatch

    sendgrid, twilio = fakes
    settings = provider_settings(
        tmp_path,
        sendgrid,
        twilio,
        dispatch_batch_size=40,
        sendgrid_concurrency=1,
        twilio_concurrency=1,
        sendgrid_rate_per_second=100,
        twilio_rate_per_second=100,
    )
    seed_leads(engine, 30, NOW)
    runtime = load_runtime(settings, engine=engine)
    plan_all(runtime, NOW)

    def stop(_: int) -> None:
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        run_dispatch(runtime, SimulatedClock(NOW), progress=stop)

    accepted = {e.touch_id for e in sendgrid.log + twilio.log}
    touches = _touches(engine)
    assert 0 < len(accepted) < 60
    for row in touches:
        if str(row["id"]) in accepted:
            assert row["status"] == TouchStatus.SENT
        else:  # never started, or never claimed: waiting, not in doubt
            assert row["status"] == TouchStatus.PENDING, row
            assert row["attempts"] == 0
    assert any("stopped before sending" in str(row["error"]) for row in touches)
    # and the next run finishes the job without a duplicate
    run_dispatch(runtime, SimulatedClock(NOW + timedelta(minutes=10)))
    assert {row["status"] for row in _touches(engine)} == {TouchStatus.SENT}
    assert sendgrid.duplicates() == {} and twilio.duplicates() == {}
