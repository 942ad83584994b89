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
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from bench.report import machine_line, write_section
from leadops.core.db import make_engine, upgrade
from leadops.models import TOUCHES
from leadops.nurture.plan import PLAN_BATCH
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


class BackendCPU:
    """CPU (user + system, s) of this database's PostgreSQL backends from now on, from
    /proc/<pid>/stat sampled every 0.1 s (the server runs on this machine): a backend's
    last 0.1 s before it exits may be missed. Backends open already count from now."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: dict[int, float] = {}
        self.start: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        query = sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as conn:
            while True:
                for pid in conn.execute(query).scalars():
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    cpu = (int(fields[11]) + int(fields[12])) / tick
                    self.start.setdefault(pid, cpu)
                    self.seen[pid] = cpu
                conn.rollback()
                if self.done.wait(0.1):
                    return

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return sum(cpu - self.start[pid] for pid, cpu in self.seen.items())


def checkpoints(engine: Engine) -> int:
    """Checkpoints the server has made so far (timed and requested): writing a million
    leads' rows fills the WAL and makes some, which slow every write after them."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
        ).scalar_one()
    return int(row)


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


def restart_postgres() -> str | None:
    """Restart the local cluster; None when done, else why it could not be."""
    tool = shutil.which("pg_ctlcluster")
    clusters = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if tool is None or not clusters:
        return "pg_ctlcluster or /etc/postgresql not found"
    done = subprocess.run(
        [tool, "--skip-systemctl-redirect", clusters[-1], "main", "restart"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"pg_ctlcluster failed: {done.stderr.strip()[:300]}"
    return None


def wait_for(engine: Engine, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
            return
        except sa.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def terminate_backends(engine: Engine) -> str | None:
    """Cut every other connection to this database (a restart without the restart)."""
    with engine.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    return "connections cut with pg_terminate_backend instead (--no-restart)"


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


# -- report ------------------------------------------------------------------------------------


def _growth(small: dict[str, Any], large: dict[str, Any], key: str) -> str:
    return f"x{large[key] / small[key]:.2f}"


def render(
    sizes: list[dict[str, Any]], floor: float, messages: int, fault: dict[str, Any] | None
) -> str:
    rows = [  # label, cell, the key growth is worked out on (None: no growth)
        ("COPY seed", lambda s: f"{s['seed_s']:.1f} s", None),
        (
            "plan all leads (one nurture tick, one worker)",
            lambda s: f"{s['plan_s']:.1f} s",
            "plan_s",
        ),
        ("planning rate, one worker", lambda s: f"{s['plan_rate']:,.0f} leads/s", "plan_rate"),
        ("planner CPU (user + system)", lambda s: f"{s['plan_cpu_s']:.1f} s", "plan_cpu_s"),
        ("planner CPU per lead", lambda s: f"{s['plan_cpu_us']:.0f} µs", "plan_cpu_us"),
        (
            "PostgreSQL CPU for the tick (its backends)",
            lambda s: f"{s['plan_server_cpu_s']:.1f} s",
            "plan_server_cpu_s",
        ),
        ("COPY of the rows the tick wrote (floor)", lambda s: f"{s['plan_floor_s']:.1f} s", None),
        ("plan / COPY floor", lambda s: f"x{s['plan_over_floor']:.1f}", "plan_over_floor"),
        (
            "plan all leads, two workers (partitions 0/2, 1/2)",
            lambda s: f"{s['plan2_s']:.1f} s",
            "plan2_s",
        ),
        (
            "PostgreSQL checkpoints during the one-worker tick",
            lambda s: f"{s['plan_checkpoints']}",
            None,
        ),
        ("planner peak RSS", lambda s: f"{s['plan_rss_mb']:.0f} MB", "plan_rss_mb"),
        (
            f"dispatch, 1 worker ({messages:,} msgs)",
            lambda s: f"{s['dispatch_1']:,.0f} msg/s",
            "dispatch_1",
        ),
        (
            f"dispatch, 2 workers ({messages:,} msgs)",
            lambda s: f"{s['dispatch_2']:,.0f} msg/s",
            "dispatch_2",
        ),
        (
            "dispatcher CPU per message, 1 worker",
            lambda s: f"{s['dispatch_cpu_1']:.2f} ms",
            "dispatch_cpu_1",
        ),
        (
            "dispatcher CPU per message, 2 workers",
            lambda s: f"{s['dispatch_cpu_2']:.2f} ms",
            "dispatch_cpu_2",
        ),
        ("dispatcher peak RSS", lambda s: f"{s['dispatch_rss_mb']:.0f} MB", "dispatch_rss_mb"),
    ]
    header = "| measure | " + " | ".join(f"{s['leads']:,} leads" for s in sizes)
    growth = len(sizes) == 2
    header += " | growth |" if growth else " |"
    lines = [header, "|---" * (len(sizes) + 1 + growth) + "|"]
    for label, show, key in rows:
        cells = [show(s) for s in sizes]
        if growth:
            cells.append(_growth(sizes[0], sizes[1], key) if key else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(f"| raw HTTP floor (one keep-alive client, same fake) | {floor:,.0f} msg/s |")
    text = "\n".join(lines)
    largest = sizes[-1]
    marks = largest.get("plan_marks") or []
    if len(marks) >= 2:
        laps = [b[1] - a[1] for a, b in zip([(0, 0.0), *marks], marks, strict=False)]
        text += (
            f"\n\nWithin the one-worker tick of {largest['leads']:,} leads, each 100,000 leads "
            f"took (s): {', '.join(f'{lap:.1f}' for lap in laps)}; the last over the first: "
            f"x{laps[-1] / laps[0]:.2f} (flat means linear, whatever the machine's speed "
            "between the two sizes)."
        )
    fault_text = "Fault run not measured (--no-fault, or it did not finish)."
    if fault is not None:
        check = fault["check"]
        statuses = ", ".join(f"{n:,} {s}" for s, n in sorted(check.statuses.items()))
        restart = (
            f"PostgreSQL restarted (pg_ctlcluster) after {fault['restart_at']:,} accepted"
            if fault["restart_problem"] is None
            else f"PostgreSQL NOT restarted ({fault['restart_problem']}) after "
            f"{fault['restart_at']:,} accepted"
        )
        fault_text = (
            f"Fault run: {fault['touches']:,} touches, two dispatcher processes; one SIGKILLed "
            f"after {fault['killed_at']:,} messages accepted by the fake; {restart}; the "
            f"other dispatcher ended with {fault['second_ended']}; {fault['rounds']} more "
            f"round(s) of two dispatchers after the leases expired; {fault['seconds']:.0f} s. "
            f"Outcome: {statuses}; duplicates at the provider: {len(check.duplicates)}; "
            f"problems (lost, left open, mismatched): {len(check.problems)}"
            + (f" ({'; '.join(check.problems[:3])})" if check.problems else "")
            + "."
        )
    return f"""
## Scale (PostgreSQL, many workers)

{machine_line()} Load average {os.getloadavg()[0]:.1f} at the end (the machine is shared).
PostgreSQL on the same 2 cores as the workers and the fake provider.

Leads are COPYed into a scratch database; one planner process runs one nurture tick
(`plan_all`: segment, enroll, create the day-1 touch of every lead, in batches of
{PLAN_BATCH:,}); its floor is COPYing the enrollments and touches it wrote into empty tables
like theirs (same columns and indexes, no foreign keys), and its CPU is the planner
process's own (PostgreSQL's is not in it);
the same tick is also run (on fresh copies of the leads) by two planner processes at
once, each a partition (lead id modulo 2), as two workers on one pool would.
Then {messages:,} of those touches are sent by one dispatcher process, and {messages:,}
more by two at once (`run_dispatch`, claims with FOR UPDATE SKIP LOCKED, SendGrid channel,
{CONCURRENCY} threads each, default chunks of 32) to the SendGrid fake in its own process
(asyncio, validating every {VALIDATE_EVERY}th request against the OpenAPI file). Rates are
messages / (last worker end - first worker start); CPU per message is the workers' own
user + system time over the messages sent (the fake and PostgreSQL use the same 2 cores
besides); peak RSS from getrusage in each worker. Growth is the 1M figure divided by the
100k one (for times, x10 is linear).

{text}

{fault_text}
"""


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
        write_section("scale", render(results, floor, args.messages, None))
        if not args.no_fault:
            print("-- fault run", flush=True)
            fault = fault_run(
                engine, url, Path(tmp), args.fault_touches, restart=not args.no_restart
            )
        engine.dispose()
    markdown = render(results, floor, args.messages, fault)
    write_section("scale", markdown)
    print(markdown)
    if fault is not None and not fault["check"].ok:
        raise SystemExit("fault run found duplicated or lost touches")


if __name__ == "__main__":
    main(sys.argv[1:])
