"""The campaign forecast on a large database: 100,000 leads, 14 and 30 days ahead.

1. Alike leads (leadops.testing.scenario.seed_leads: email and WhatsApp consent, UTC,
   stage `lead`), nobody enrolled yet: the forecast plans every enrollment itself.
2. The same leads after one planning pass (enrolled, day-1 touches pending): the forecast
   reads the enrollments and touches in flight.
3. Varied leads, nobody enrolled: stages, time zones, scores and last activity spread;
   a quarter go quiet inside the 14 days (the 60-day inactivity rule), each at its own
   moment and so a profile of its own (the forecast projects each profile once), and a
   quarter are quiet already.
Each figure is the wall time of `leadops.nurture.forecast.forecast`, beside its floor
measured in the same run on the same data: reading the rows the forecast reads (leads,
enrollments, touches; one query each, no other work). SQLite file, and PostgreSQL in a
private schema (dropped afterwards) where LEADOPS_BENCH_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test) can be reached.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.report import machine_line, write_section
from leadops.core.db import make_engine, upgrade
from leadops.core.settings import Settings
from leadops.models import ENROLLMENTS, LEADS, TOUCHES
from leadops.nurture.forecast import forecast
from leadops.nurture.forecast_load import Lead
from leadops.nurture.plan import plan_all
from leadops.nurture.runtime import Runtime
from leadops.runtime import load_runtime
from leadops.testing.scenario import ROOT, seed_leads

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LEADS_COUNT = int(os.environ.get("BENCH_FORECAST_LEADS", "100000"))
PG_URL = os.environ.get(
    "LEADOPS_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
STAGES = ("lead", "lead", "subscriber", "mql", "sql", "recycled", "customer")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")

Row = tuple[str, str, int, float, float, int]  # database, state, days, seconds, floor, total


def _floor(engine: Engine) -> float:
    """Reading what the forecast reads, and nothing else (with the cyclic garbage
    collector paused, as the forecast pauses it)."""
    e, t = ENROLLMENTS.c, TOUCHES.c
    gc.disable()
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(sa.select(*(LEADS.c[name] for name in Lead._fields))).all()
        conn.execute(
            sa.select(e.lead_id, e.id, e.campaign, e.campaign_version_id, e.status, e.started_at)
        ).all()
        conn.execute(
            sa.select(
                t.lead_id, t.enrollment_id, t.campaign, t.step, t.channel, t.status, t.not_before
            ).add_columns(t.sent_at)
        ).all()
    seconds = time.perf_counter() - started
    gc.enable()
    return seconds


def _vary(engine: Engine) -> None:
    """Spread stages, time zones, scores and last activity (18 to 74 days ago)."""
    with engine.begin() as conn:
        ids = conn.execute(sa.select(LEADS.c.id)).scalars().all()
        rows = [
            {
                "lead_id": lead_id,
                "stage": STAGES[lead_id % len(STAGES)],
                "zone": ZONES[lead_id % len(ZONES)],
                "score": lead_id % 10007,
                "created": NOW - timedelta(days=18, minutes=(lead_id * 7919) % (56 * 24 * 60)),
            }
            for lead_id in ids
        ]
        conn.execute(
            sa.update(LEADS)
            .where(LEADS.c.id == sa.bindparam("lead_id"))
            .values(
                lifecycle_stage=sa.bindparam("stage"),
                timezone=sa.bindparam("zone"),
                score=sa.bindparam("score"),
                created_at=sa.bindparam("created"),
            ),
            rows,
        )


def _measure(
    database: str, engines: Callable[[], Iterator[Engine]], settings: Settings
) -> list[Row]:
    rows: list[Row] = []

    def timed(runtime: Runtime, engine: Engine, state: str, days_list: tuple[int, ...]) -> None:
        floor = _floor(engine)
        for days in days_list:
            started = time.perf_counter()
            total = forecast(runtime, NOW, days).total
            seconds = time.perf_counter() - started
            rows.append((database, state, days, seconds, floor, total))
            print(f"{database}, {state}, {days} days: {seconds:.1f} s (floor {floor:.2f} s)")

    for engine in engines():
        upgrade(engine)
        seed_leads(engine, LEADS_COUNT, NOW)
        runtime = load_runtime(settings, engine=engine)
        timed(runtime, engine, "alike leads, nobody enrolled yet", (14, 30))
        plan_all(runtime, NOW)
        timed(runtime, engine, "alike leads, after one planning pass", (14, 30))
    for engine in engines():
        upgrade(engine)
        seed_leads(engine, LEADS_COUNT, NOW)
        _vary(engine)
        timed(load_runtime(settings, engine=engine), engine, "varied leads, nobody enrolled", (14,))
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        settings = Settings(
            data_dir=Path(workdir) / "data",
            config_dir=ROOT / "config",
            templates_dir=ROOT / "templates",
            secret_key="bench-secret-key-0123456789",  # type: ignore[arg-type]
            _env_file=None,  # type: ignore[call-arg]
        )
        counter = iter(range(100))

        def sqlite() -> Iterator[Engine]:
            engine = make_engine(f"sqlite:///{workdir}/forecast-{next(counter)}.db")
            yield engine
            engine.dispose()

        rows = _measure("SQLite", sqlite, settings)
        skipped = _reachable()
        if skipped is None:
            rows += _measure("PostgreSQL", _postgres, settings)
    write_section("forecast", _render(rows, skipped))


def _reachable() -> str | None:
    admin = make_engine(PG_URL)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        return f"PostgreSQL skipped: not reachable at {PG_URL} ({type(exc).__name__})."
    finally:
        admin.dispose()
    return None


def _postgres() -> Iterator[Engine]:
    with _schema() as engine:
        yield engine


@contextmanager
def _schema() -> Iterator[Engine]:
    admin = make_engine(PG_URL)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(admin.url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _render(rows: list[Row], skipped: str | None) -> str:
    load = os.getloadavg()
    lines = [
        f"## Campaign forecast ({LEADS_COUNT:,} leads)",
        "",
        f"{machine_line()} Load average {load[0]:.1f} at the end (the machine is shared).",
        "",
        "`./dev bench forecast`: `leadops campaigns forecast` (leadops.nurture.forecast) "
        "on one database of seeded leads, wall time. The floor is reading the rows the "
        "forecast reads (leads, enrollments, touches: one query each, nothing else done "
        "with them), measured in the same run on the same data; the ratio is the "
        "forecast's time over it, and holds better than the seconds from one run to "
        "another on a shared machine.",
        "",
        "Alike leads (seed_leads: stage `lead`, UTC, both consents) make one profile per "
        "batch, so the time is the reading; after one planning pass there are an "
        "enrollment and two pending touches per lead to read. Varied leads (stages, time "
        "zones, scores, last activity 18 to 74 days ago) have a quarter going quiet inside "
        "the horizon, each a profile of its own, projected one by one.",
        "",
        "| database | leads | days | seconds | floor (s) | forecast / floor | leads per second "
        "| messages forecast |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for database, state, days, seconds, floor, total in rows:
        lines.append(
            f"| {database} | {state} | {days} | {seconds:.1f} | {floor:.2f} | "
            f"x{seconds / floor:.1f} | {LEADS_COUNT / seconds:,.0f} | {total:,} |"
        )
    if skipped:
        lines += ["", skipped]
    return "\n".join(lines)
