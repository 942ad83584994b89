"""Two dispatcher processes on one database: each touch claimed and sent by exactly one."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.clock import SimulatedClock
from leadops.core.settings import Settings
from leadops.delivery.workers import WorkerParts, dispatch_worker, run_workers, worker_settings
from leadops.models import TOUCHES, TouchStatus
from leadops.nurture.plan import plan_all
from leadops.nurture.tick import dispatch_due
from leadops.runtime import load_runtime, worker_runtime
from leadops.testing.fakes import FakeSendGrid, FakeTwilio
from leadops.testing.scenario import seed_leads
from tests.integration.test_delivery import NOW, provider_settings

pytest_plugins = ["tests.integration.test_delivery"]  # the `fakes` fixture

LEADS = 100


def _database_url(engine: Engine, tmp_path: Path) -> str:
    """The URL a worker process connects with, reaching the same database."""
    return engine.url.render_as_string(hide_password=False)


def test_two_worker_processes_send_every_touch_exactly_once(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    settings = provider_settings(
        tmp_path,
        sendgrid,
        twilio,
        database_url=_database_url(engine, tmp_path),
        dispatch_batch_size=10,
        # totals for both workers; slow enough that the second starts before all is sent
        sendgrid_rate_per_second=60,
        twilio_rate_per_second=60,
    )
    seed_leads(engine, LEADS, NOW)
    plan = plan_all(load_runtime(settings, engine=engine), NOW)
    assert plan.planned == 2 * LEADS

    report = run_workers(settings, NOW, 2, build=worker_runtime)

    assert report.sent_total == 2 * LEADS
    assert len(report.worker_sent) == 2 and min(report.worker_sent) > 0, report.worker_sent
    assert sendgrid.duplicates() == {} and twilio.duplicates() == {}
    sendgrid.check_contract()
    twilio.check_contract()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(TOUCHES.c.id, TOUCHES.c.status, TOUCHES.c.provider_message_id)
        ).all()
    assert {status for _, status, _ in rows} == {TouchStatus.SENT}
    accepted = {e.touch_id: e.message_id for e in sendgrid.log + twilio.log}
    assert len(accepted) == len(rows) == len(sendgrid.log) + len(twilio.log)
    assert all(accepted[str(touch_id)] == message_id for touch_id, _, message_id in rows)


def test_workers_share_the_provider_limits(tmp_path: Path) -> None:
    from tests.conftest import make_settings

    settings = make_settings(
        tmp_path,
        sendgrid_rate_per_second=100,
        twilio_rate_per_second=30,
        sendgrid_concurrency=16,
        twilio_concurrency=3,
    )
    share = worker_settings(settings, 2)
    assert (share.sendgrid_rate_per_second, share.twilio_rate_per_second) == (50, 15)
    assert (share.sendgrid_concurrency, share.twilio_concurrency) == (8, 2)
    assert worker_settings(settings, 1) is settings


def test_a_failing_worker_is_raised_with_its_own_traceback(tmp_path: Path) -> None:
    from leadops.core.db import DatabaseNotReady
    from tests.conftest import make_settings

    empty = tmp_path / "empty.db"  # never migrated
    settings = make_settings(tmp_path, database_url=f"sqlite:///{empty}")

    with pytest.raises(DatabaseNotReady, match="leadops init") as raised:
        run_workers(settings, NOW, 2, build=worker_runtime)

    assert "Traceback" in str(raised.value.__cause__)  # as it happened in the worker
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("workers", [1, 2])
def test_dispatch_due_sends_in_process_or_with_worker_processes(
    workers: int, engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    settings = provider_settings(
        tmp_path, sendgrid, twilio, database_url=_database_url(engine, tmp_path)
    )
    seed_leads(engine, 10, NOW)
    runtime = load_runtime(settings, engine=engine)
    plan_all(runtime, NOW)

    report = dispatch_due(runtime, SimulatedClock(NOW), workers=workers, build=worker_runtime)

    assert report.sent_total == 20
    assert len(report.worker_sent) == (2 if workers == 2 else 0)
    assert sendgrid.duplicates() == {} and twilio.duplicates() == {}


def test_a_dispatcher_process_sends_with_the_parts_its_builder_built(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    """dispatch_worker, as each worker process runs it (here in this process): the runtime's
    worker builder builds its engine, renderer and channels, and its engine is closed after."""
    sendgrid, twilio = fakes
    settings = provider_settings(
        tmp_path, sendgrid, twilio, database_url=_database_url(engine, tmp_path)
    )
    seed_leads(engine, 3, NOW)
    plan_all(load_runtime(settings, engine=engine), NOW)
    built: list[WorkerParts] = []
    disposed: list[bool] = []

    def build(share: Settings) -> WorkerParts:
        parts = worker_runtime(share)
        dispose = parts.dispose

        def recorded_dispose() -> None:
            disposed.append(True)
            dispose()

        parts.dispose = recorded_dispose  # type: ignore[method-assign]
        built.append(parts)
        return parts

    report = dispatch_worker(settings, NOW, build)

    assert report.sent_total == 6 and len(sendgrid.log) + len(twilio.log) == 6
    (parts,) = built
    assert parts.settings is settings
    assert parts.engine.pool.checkedout() == 0
    assert disposed == [True]  # disposed when done, once


def test_a_builder_that_cannot_reach_a_worker_process_fails_before_any_starts(
    tmp_path: Path,
) -> None:
    from tests.conftest import make_settings

    with pytest.raises(TypeError, match="module-level function"):
        run_workers(make_settings(tmp_path), NOW, 2, build=lambda s: worker_runtime(s))

    assert multiprocessing.active_children() == []
