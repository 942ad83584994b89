"""A nurture process killed mid-dispatch leaves neither its lock nor stuck leads behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.clock import SimulatedClock
from leadops.core.db import session_scope
from leadops.core.locks import run_lock
from leadops.core.settings import Settings
from leadops.intake.csv_source import read_csv
from leadops.intake.importer import import_records
from leadops.models import TOUCHES, TouchStatus
from leadops.nurture.tick import run_tick
from leadops.runtime import load_runtime
from tests.conftest import ROOT

AT = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def test_killed_dispatcher_releases_lock_and_its_claims_are_sent_next_run(
    sqlite_engine: Engine, settings: Settings
) -> None:
    lines = (ROOT / "config" / "sample_leads.csv").read_text().splitlines()[:21]
    csv = settings.data_dir.parent / "leads.csv"
    csv.write_text("\n".join(lines) + "\n")
    with session_scope(sqlite_engine) as session:
        import_records(
            session,
            read_csv(csv),
            source="csv",
            now=AT - timedelta(days=1),
            default_region="US",
            default_timezone="UTC",
        )
    code = textwrap.dedent(f"""
        import os
        from datetime import datetime
        from leadops.core.clock import SimulatedClock
        from leadops.delivery.dispatch import Dispatcher
        from leadops.core.locks import run_lock
        from leadops.nurture.plan import plan_all
        from leadops.runtime import load_runtime
        from leadops.core.settings import Settings
        settings = Settings(data_dir={str(settings.data_dir)!r},
                            config_dir={str(ROOT / "config")!r},
                            templates_dir={str(ROOT / "templates")!r},
                            secret_key="test-secret-key-0123456789", _env_file=None)
        runtime = load_runtime(settings)
        at = datetime.fromisoformat({AT.isoformat()!r})
        with run_lock(runtime.engine, "nurture"):
            plan_all(runtime, at)
            d = Dispatcher(runtime.engine, channels=runtime.channels, renderer=runtime.renderer,
                           settings=settings, clock=SimulatedClock(at), stored=runtime.stored)
            token, batch = d.claim(1000)
            print(len(batch), flush=True)
            os._exit(9)  # killed after claiming, before sending anything
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 9, done.stderr
    claimed = int(done.stdout.strip())
    assert claimed > 0
    with sqlite_engine.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.select(TOUCHES.c.status, sa.func.count()).group_by(TOUCHES.c.status)
            ).all()
        )
    assert statuses == {TouchStatus.CLAIMED: claimed}

    runtime = load_runtime(settings, engine=sqlite_engine)
    later = AT + timedelta(seconds=settings.claim_lease_seconds + 60)
    with run_lock(sqlite_engine, "nurture"):  # the dead process left no lock
        tick = run_tick(runtime, SimulatedClock(later))
    assert tick.dispatch.recovered == claimed
    assert tick.dispatch.sent_total > 0
    with sqlite_engine.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).where(
                TOUCHES.c.status.in_([TouchStatus.CLAIMED, TouchStatus.SENDING])
            )
        ).scalar_one()
    assert left == 0
