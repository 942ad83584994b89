"""Team scale on PostgreSQL: planning 100,000 and 1,000,000 leads, dispatch with one and two
worker processes beside the raw HTTP floor, peak memory of the workers, and the fault run
(two dispatchers, one SIGKILLed, PostgreSQL restarted mid-run).

    ./dev bench scale                                  # 100k and 1M (about 15 minutes)
    .venv/bin/python -m bench.scale --sizes 100000     # one size (about 4 minutes)
    .venv/bin/python -m bench.scale --no-fault         # skip the fault run
    .venv/bin/python -m bench.scale --no-restart       # fault run without the restart
    .venv/bin/python -m bench.scale --plan-only        # the one-worker tick and its floor

The same choices from the environment (`python -m bench scale` passes no arguments):
BENCH_SCALE_SIZES=100000, BENCH_SCALE_PLAN_ONLY=1 (prints, writes nothing to
docs/PERFORMANCE.md), BENCH_SCALE_DATABASE=<name prefix of the scratch database>.

Needs PostgreSQL (LEADOPS_BENCH_DATABASE_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/test): a database `leadops_scale_<pid>` is
created and dropped (another prefix with BENCH_SCALE_DATABASE). The fault run restarts
the local server with `pg_ctlcluster` (skipped with a note where that is not possible);
never run it beside work that needs the server.

Per size: leads are loaded with COPY; one worker process plans every lead (one nurture
tick at 2026-12-01 10:00 UTC: each lead is segmented, enrolled and gets its day-1 email);
then `--messages` of those touches are made due and sent to the SendGrid fake (its own
process, validating every 50th request against the OpenAPI file) by one dispatcher
process, and the next `--messages` by two at once. Every worker reports its peak RSS.

The floor of planning is COPYing the rows the tick wrote (its enrollments and touches,
dumped after the tick) into empty tables like theirs (same columns and indexes, without
the foreign keys): planning's time over it is the ratio reported.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from bench.pgserver import BackendCPU, checkpoints, restart_postgres, terminate_backends, wait_for
from bench.report import write_section
from bench.scale_report import render
from leadops.core.db import make_engine, upgrade
from leadops.models import TOUCHES
from leadops.testing.workers import (
    SENDGRID_KEY,
    Worker,
    check_touches,
    copy_leads,
    open_touches,
    run_together,
    worker_env,
)

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday, inside every lead's window
LATER = NOW + timedelta(days=365)
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
VALIDATE_EVERY = 50
CONCURRENCY = 4  # threads per dispatcher: local fakes answer in well under a millisecond
RAW_REQUESTS = 5000
FAULT_TOUCHES = 6000
SHOWN = {"concurrency": CONCURRENCY, "validate_every": VALIDATE_EVERY}
TABLES = "leads, enrollments, touches, campaign_versions, score_ledger, stage_changes"


# -- the database and the fake -----------------------------------------------------------


@contextmanager
def scratch_database(base_url: str) -> Iterator[str]:
    """A new database on the server of `base_url`, dropped afterwards."""
    name = f"{os.environ.get('BENCH_SCALE_DATABASE', 'leadops_scale')}_{os.getpid()}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class FakeProcess:
    """`python -m leadops.testing.fakes sendgrid` in its own process."""

    def __init__(self, *options: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "leadops.testing.fakes", "sendgrid", *options],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().decode().strip()

    def get(self, path: str) -> Any:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        conn.request("GET", path)
        data = json.loads(conn.getresponse().read())
        conn.close()
        return data

    def accepted(self) -> list[tuple[str, str]]:
        return [(e["touch_id"], e["message_id"]) for e in self.get("/_fake/log")]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def raw_floor(url: str, count: int) -> float:
    """Messages/s of a bare keep-alive http.client loop posting one prepared mail."""
    mail = json.dumps(
        {
            "personalizations": [
                {"to": [{"email": "raw@example.com"}], "custom_args": {"touch_id": "raw"}}
            ],
            "from": {"email": "hello@northwind.example", "name": "Northwind"},
            "subject": "Raw floor",
            "content": [
                {"type": "text/plain", "value": "hello " * 200},
                {"type": "text/html", "value": "<p>hello</p>" * 200},
            ],
        }
    ).encode()
    headers = {"Authorization": f"Bearer {SENDGRID_KEY}", "Content-Type": "application/json"}
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    started = time.perf_counter()
    for _ in range(count):
        conn.request("POST", "/v3/mail/send", body=mail, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status >= 300:
            raise RuntimeError(f"raw floor request refused: {response.status}")
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


def make_due(engine: Engine, count: int) -> int:
    """Make the next `count` pending touches due now (the rest wait a year)."""
    t = TOUCHES.c
    with engine.begin() as conn:
        ids = (
            sa.select(t.id)
            .where(t.status == "pending", t.not_before == LATER)
            .order_by(t.id)
            .limit(count)
            .scalar_subquery()
        )
        return conn.execute(sa.update(TOUCHES).where(t.id.in_(ids)).values(not_before=NOW)).rowcount


# -- one size -----------------------------------------------------------------------------


def reseed_and_plan(
    engine: Engine, leads: int, env: dict[str, str], partitions: int
) -> tuple[float, list[dict[str, Any]], float]:
    """Empty the tables, COPY `leads` leads, plan them with `partitions` worker processes
    at once; (seconds the COPY took, the planners' reports, PostgreSQL's CPU seconds for
    the planning)."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    started = time.perf_counter()
    copy_leads(engine, leads, NOW)
    seeded = time.perf_counter() - started
    workers = [
        Worker("plan", NOW, env, "--partition", f"{k}/{partitions}") for k in range(partitions)
    ]
    server = BackendCPU(engine)
    reports = run_together(workers)
    server_cpu = server.stop()
    planned = sum(r["planned"] for r in reports)
    if sum(r["leads"] for r in reports) != leads or planned != leads:
        raise RuntimeError(f"planning {leads} leads gave {reports}")
    return seeded, reports, server_cpu


def copy_floor(engine: Engine, workdir: Path) -> float:
    """Seconds to COPY the enrollments and touches now in the database into empty tables
    like theirs (columns, defaults, indexes; no foreign keys), in one transaction: the
    floor of writing what a planning tick wrote. The rows are dumped to files first."""
    tables = ("enrollments", "touches")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table in tables:
            cursor.execute(f"DROP TABLE IF EXISTS floor_{table}")
            cursor.execute(f"CREATE TABLE floor_{table} (LIKE {table} INCLUDING ALL)")
            dump = workdir / f"{table}.copy"
            with dump.open("wb") as out, cursor.copy(f"COPY {table} TO STDOUT") as copy:
                for block in copy:
                    out.write(block)
        raw.commit()
        started = time.perf_counter()
        for table in tables:
            dump = workdir / f"{table}.copy"
            with dump.open("rb") as source, cursor.copy(f"COPY floor_{table} FROM STDIN") as copy:
                while block := source.read(1 << 20):
                    copy.write(block)
        raw.commit()
        elapsed = time.perf_counter() - started
        for table in tables:
            cursor.execute(f"DROP TABLE floor_{table}")
            (workdir / f"{table}.copy").unlink()
        raw.commit()
    finally:
        raw.close()
    return elapsed


def measure_plan(engine: Engine, env: dict[str, str], workdir: Path, leads: int) -> dict[str, Any]:
    """One tick of `leads` leads planned by one worker process, and its COPY floor."""
    checkpoints_before = checkpoints(engine)
    seeded, [plan], server_cpu = reseed_and_plan(engine, leads, env, partitions=1)
    plan_s = plan["ended"] - plan["started"]
    plan_checkpoints = checkpoints(engine) - checkpoints_before
    floor_s = copy_floor(engine, workdir)
    return {
        "leads": leads,
        "seed_s": seeded,
        "plan_s": plan_s,
        "plan_rate": leads / plan_s,
        "plan_cpu_s": plan["cpu_s"],
        "plan_cpu_us": 1e6 * plan["cpu_s"] / leads,
        "plan_server_cpu_s": server_cpu,
        "plan_floor_s": floor_s,
        "plan_over_floor": plan_s / floor_s,
        "plan_rss_mb": plan["peak_rss_mb"],
        "plan_checkpoints": plan_checkpoints,
        "plan_marks": plan["marks"],
    }


def measure_size(
    engine: Engine, url: str, fake: FakeProcess, workdir: Path, leads: int, messages: int
) -> dict[str, Any]:
    env = worker_env(url, fake.url, workdir)
    # one tick planned by two worker processes, a partition each; then again by one
    _, planners, _ = reseed_and_plan(engine, leads, env, partitions=2)
    plan2_s = max(p["ended"] for p in planners) - min(p["started"] for p in planners)
    result = measure_plan(engine, env, workdir, leads)
    result["plan_rss_mb"] = max(result["plan_rss_mb"], *(p["peak_rss_mb"] for p in planners))
    with engine.begin() as conn:
        conn.execute(sa.update(TOUCHES).values(not_before=LATER))
        conn.execute(sa.text("ANALYZE touches"))

    dispatch_env = worker_env(
        url,
        fake.url,
        workdir,
        sendgrid_rate_per_second=100_000,
        sendgrid_concurrency=CONCURRENCY,
    )
    rates: dict[int, float] = {}
    cpu: dict[int, float] = {}
    rss: list[float] = []
    for workers in (1, 2):
        make_due(engine, messages)
        reports = run_together([Worker("dispatch", NOW, dispatch_env) for _ in range(workers)])
        sent = sum(r["sent"] for r in reports)
        if sent != messages:
            raise RuntimeError(f"{workers} dispatcher(s) sent {sent} of {messages}: {reports}")
        span = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
        rates[workers] = sent / span
        cpu[workers] = 1000 * sum(r["cpu_s"] for r in reports) / sent
        rss += [r["peak_rss_mb"] for r in reports]
    return result | {
        "plan2_s": plan2_s,
        "dispatch_1": rates[1],
        "dispatch_2": rates[2],
        "dispatch_cpu_1": cpu[1],
        "dispatch_cpu_2": cpu[2],
        "dispatch_rss_mb": max(rss),
    }


# -- the fault run ---------------------------------------------------------------------------


def fault_run(
    engine: Engine, url: str, workdir: Path, touches: int, *, restart: bool = True
) -> dict[str, Any]:
    """Two dispatchers; one SIGKILLed mid-batch, then PostgreSQL restarted while the other
    works; dispatchers rerun (after the leases expire) until nothing is open; every touch
    checked against the fake's log."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    copy_leads(engine, touches, NOW)
    fake = FakeProcess("--validate-every", str(VALIDATE_EVERY))
    started = time.perf_counter()
    try:
        env = worker_env(url, fake.url, workdir)
        run_together([Worker("plan", NOW, env)])
        env = worker_env(
            url,
            fake.url,
            workdir,
            sendgrid_rate_per_second=400,  # per worker: slow enough to be hit mid-run
            sendgrid_concurrency=2,
            dispatch_batch_size=100,
            claim_lease_seconds=10,
        )
        first, second = (Worker("dispatch", NOW, env) for _ in range(2))
        for worker in (first, second):
            worker.ready()
        for worker in (first, second):
            worker.go()
        while fake.get("/_fake/stats")["accepted"] < touches // 4:
            time.sleep(0.02)
        first.process.kill()
        first.process.wait()
        killed_at = fake.get("/_fake/stats")["accepted"]
        while fake.get("/_fake/stats")["accepted"] < touches // 2:
            if second.process.poll() is not None:
                break
            time.sleep(0.02)
        restart_at = fake.get("/_fake/stats")["accepted"]
        restart_problem = restart_postgres() if restart else terminate_backends(engine)
        second.process.wait(timeout=600)
        second_ended = f"exit {second.process.returncode}"
        wait_for(engine)
        rounds = 0
        at = NOW
        while open_touches(engine) and rounds < 6:
            rounds += 1
            at += timedelta(minutes=10)
            run_together([Worker("dispatch", at, env) for _ in range(2)])
        check = check_touches(engine, fake.accepted(), expected=touches)
    finally:
        fake.stop()
    return {
        "touches": touches,
        "killed_at": killed_at,
        "restart_at": restart_at,
        "restart_problem": restart_problem,
        "second_ended": second_ended,
        "rounds": rounds,
        "seconds": time.perf_counter() - started,
        "check": check,
    }


def plan_only(base: str, sizes: list[int]) -> None:
    """The one-worker tick of each size and its COPY floor, printed."""
    with tempfile.TemporaryDirectory() as tmp, scratch_database(base) as url:
        engine = make_engine(url)
        upgrade(engine)
        env = worker_env(url, "http://127.0.0.1:9", Path(tmp))  # planning sends nothing
        for size in sizes:
            result = measure_plan(engine, env, Path(tmp), size)
            marks = result.pop("plan_marks")
            laps = [b[1] - a[1] for a, b in zip([(0, 0.0), *marks], marks, strict=False)]
            print({k: round(v, 2) for k, v in result.items()}, flush=True)
            print("laps per 100,000 leads (s):", ", ".join(f"{lap:.1f}" for lap in laps))
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="leadops at 100k and 1M leads on PostgreSQL")
    parser.add_argument(
        "--sizes",
        default=os.environ.get("BENCH_SCALE_SIZES", "100000,1000000"),
        help="comma-separated lead counts",
    )
    parser.add_argument(
        "--plan-only",
        action="store_true",
        default=os.environ.get("BENCH_SCALE_PLAN_ONLY") == "1",
        help="only the one-worker tick and its floor, printed (docs/PERFORMANCE.md untouched)",
    )
    parser.add_argument("--messages", type=int, default=20_000, help="touches sent per run")
    parser.add_argument("--fault-touches", type=int, default=FAULT_TOUCHES)
    parser.add_argument("--no-fault", action="store_true", help="skip the fault run")
    parser.add_argument(
        "--no-restart", action="store_true", help="fault run: cut connections, don't restart"
    )
    args = parser.parse_args(argv if argv is not None else [])
    sizes = [int(size) for size in args.sizes.split(",")]
    if any(size < 2 * args.messages for size in sizes):
        raise SystemExit(f"each size must be at least 2 x --messages ({2 * args.messages})")
    base = os.environ.get("LEADOPS_BENCH_DATABASE_URL", DEFAULT_URL)
    if args.plan_only:
        plan_only(base, sizes)
        return
    results = []
    fault = None
    with tempfile.TemporaryDirectory() as tmp, scratch_database(base) as url:
        engine = make_engine(url)
        upgrade(engine)
        fake = FakeProcess("--validate-every", str(VALIDATE_EVERY))
        try:
            floor = raw_floor(fake.url, RAW_REQUESTS)
            for size in sizes:
                print(f"-- {size:,} leads", flush=True)
                results.append(measure_size(engine, url, fake, Path(tmp), size, args.messages))
                print(results[-1], flush=True)
            violations = fake.get("/_fake/stats")["violations"]
            if violations:
                raise RuntimeError(f"requests outside the OpenAPI contract: {violations}")
        finally:
            fake.stop()
        # the sizes' figures are kept even if the fault run goes wrong
        write_section("scale", render(results, floor, args.messages, None, **SHOWN))
        if not args.no_fault:
            print("-- fault run", flush=True)
            fault = fault_run(
                engine, url, Path(tmp), args.fault_touches, restart=not args.no_restart
            )
        engine.dispose()
    markdown = render(results, floor, args.messages, fault, **SHOWN)
    write_section("scale", markdown)
    print(markdown)
    if fault is not None and not fault["check"].ok:
        raise SystemExit("fault run found duplicated or lost touches")


if __name__ == "__main__":
    main(sys.argv[1:])
