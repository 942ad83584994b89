"""Two dispatcher processes on one PostgreSQL database: one SIGKILLed mid-batch, the other's
database connections cut (pg_terminate_backend, standing in for a server restart, which
would disturb other tests using the server); afterwards nothing sent twice, nothing lost.

The real restart (pg_ctlcluster) is in the scale benchmark: `./dev bench scale`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from leadops.core.db import make_engine, upgrade
from leadops.models import TouchStatus
from leadops.nurture.plan import plan_all
from leadops.runtime import load_runtime
from leadops.testing.fakes import FakeSendGrid
from leadops.testing.workers import (
    SENDGRID_KEY,
    Worker,
    check_touches,
    copy_leads,
    open_touches,
    run_together,
    worker_env,
)
from tests.conftest import DEFAULT_PG, make_settings

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TOUCHES = 400


@pytest.fixture
def private_pg() -> Iterator[tuple[Engine, Engine, str, str]]:
    """(admin engine, engine, URL, application name) of a private, migrated schema."""
    base = os.environ.get("LEADOPS_TEST_DATABASE_URL", DEFAULT_PG)
    admin = make_engine(base)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {base}: {type(exc).__name__}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    app = f"leadops-{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = (
        make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}", "application_name": app})
        .render_as_string(hide_password=False)
    )
    engine = make_engine(url)
    upgrade(engine)
    try:
        yield admin, engine, url, app
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_killed_worker_and_cut_connections_lose_and_duplicate_nothing(
    private_pg: tuple[Engine, Engine, str, str], tmp_path: Path
) -> None:
    admin, engine, url, app = private_pg
    copy_leads(engine, TOUCHES, NOW)
    settings = make_settings(tmp_path, database_url=url)
    assert plan_all(load_runtime(settings, engine=engine), NOW).planned == TOUCHES

    fake = FakeSendGrid(api_key=SENDGRID_KEY, validate_every=20)
    fake.start()
    try:
        env = worker_env(
            url,
            fake.url,
            tmp_path,
            sendgrid_rate_per_second=120,  # per worker: slow enough to be hit mid-run
            sendgrid_concurrency=2,
            dispatch_batch_size=40,
            # two chunks in doubt per dispatcher at most: 2 x 2 x 16 within the bound below
            dispatch_chunk_size=16,
            claim_lease_seconds=10,
        )
        killed, survivor = Worker("dispatch", NOW, env), Worker("dispatch", NOW, env)
        for worker in (killed, survivor):
            worker.ready()
        for worker in (killed, survivor):
            worker.go()
        deadline = time.monotonic() + 30
        while len(fake.log) < TOUCHES // 4:
            assert time.monotonic() < deadline, "the dispatchers made no progress"
            time.sleep(0.005)
        killed.process.kill()
        killed.process.wait()
        killed_at = len(fake.log)
        with admin.connect() as conn:
            cut = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :app"
                ),
                {"app": app},
            ).scalar_one()
        survivor.process.wait(timeout=60)

        at = NOW
        rounds = 0
        while open_touches(engine) and rounds < 4:
            rounds += 1
            at += timedelta(minutes=10)  # the dead worker's leases have expired
            run_together([Worker("dispatch", at, env) for _ in range(2)])
        check = check_touches(
            engine, [(e.touch_id, e.message_id) for e in fake.log], expected=TOUCHES
        )
    finally:
        fake.stop()

    assert killed_at < TOUCHES
    assert cut >= 1
    assert fake.violations == []
    assert check.duplicates == {}
    assert check.problems == []
    # every touch is sent once; only those on the wire when the worker died are in doubt
    assert check.statuses[TouchStatus.SENT] + check.statuses[TouchStatus.AMBIGUOUS] == TOUCHES
    assert check.statuses[TouchStatus.AMBIGUOUS] <= 2 * 40
