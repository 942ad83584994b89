"""Delivery throughput end to end beside the raw HTTP floor, where the CPU goes, and the
10,000-touch exactly-once fault run.

1. A minimal keep-alive stand-in per provider (bench.standin: answers 202/201 at once, no
   validation, no logging), each in its own process.
2. Raw floor: a bare keep-alive http.client loop posting a prepared Mail Send request to
   the stand-in, one request at a time (and alternating with Twilio's, for the mixed tick).
3. Ticks, each on a fresh database, timed as `leadops run` runs one (plan, policy, render,
   send through the provider channels, record), reported as ratios to the floor of the same
   run: 10,000 emails on SQLite in 1 process; 5,000 emails + 5,000 WhatsApp likewise; and
   10,000 emails dispatched by 2 processes on PostgreSQL (LEADOPS_TEST_DATABASE_URL's
   server; skipped when it cannot be reached). CPU per message beside each figure, ours
   and the stand-ins'.
4. CPU per message split into plan, policy, render, send and record (bench.delivery_parts:
   thread CPU timers on each part's code paths), and a cProfile summary of the main thread.
5. Fault run: 10,000 touches through the validating fakes with 429s, 500s, hangs and
   dropped connections injected and the dispatcher SIGKILLed mid-way
   (leadops.testing.scenario.fault_run).
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
import yaml

from bench.delivery_parts import PARTS, PartTimer, main_thread_profile, timed_parts
from bench.report import machine_line, write_section
from leadops.core.clock import SimulatedClock
from leadops.core.db import make_engine, upgrade
from leadops.core.settings import Settings
from leadops.delivery.workers import run_workers
from leadops.nurture import tick
from leadops.runtime import load_runtime, worker_runtime
from leadops.testing.fakes import Faults
from leadops.testing.scenario import ROOT, fault_run, provider_config, seed_leads

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
MESSAGES = int(os.environ.get("BENCH_DELIVERY_MESSAGES", "10000"))  # per tick
FAULT_LEADS = int(os.environ.get("BENCH_DELIVERY_FAULT_LEADS", "5000"))  # 0: no fault run
VALIDATE_EVERY = 50
# The stand-ins answer at once, so a few threads per provider saturate the process; more
# only add GIL contention. (Real APIs need about rate x latency.)
CONCURRENCY = 4
RAW_REQUESTS = 10_000
PG_URL = os.environ.get(
    "LEADOPS_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SID = "AC" + "0" * 32


class _Server:
    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process


@contextmanager
def standin_process() -> Iterator[_Server]:
    process = subprocess.Popen([sys.executable, "-m", "bench.standin"], stdout=subprocess.PIPE)
    assert process.stdout is not None
    url = process.stdout.readline().decode().strip()
    try:
        yield _Server(url, process)
    finally:
        process.terminate()
        process.wait()


def _server_cpu(servers: tuple[_Server, ...]) -> float:
    """CPU seconds the server processes have used so far (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for server in servers:
        try:
            stat = Path(f"/proc/{server.process.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class CpuMeter:
    """CPU seconds of this process with its finished children (the dispatcher workers),
    and of the stand-ins, over a measured span."""

    def __init__(self, *servers: _Server) -> None:
        self.servers = servers
        self.client = 0.0
        self.server = 0.0

    @staticmethod
    def _own() -> float:
        self_ = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return self_.ru_utime + self_.ru_stime + children.ru_utime + children.ru_stime

    def __enter__(self) -> CpuMeter:
        self._start = (self._own(), _server_cpu(self.servers))
        return self

    def __exit__(self, *exc: object) -> None:
        self.client = self._own() - self._start[0]
        self.server = _server_cpu(self.servers) - self._start[1]

    def per_message(self, messages: float) -> str:
        return f"{1000 * self.client / messages:.3f} + {1000 * self.server / messages:.3f}"


def raw_floor(sendgrid: _Server, twilio: _Server, count: int, *, mixed: bool) -> float:
    """Requests/s of a bare keep-alive client loop (alternating providers when `mixed`)."""
    mail = json.dumps(
        {
            "personalizations": [
                {"to": [{"email": "raw@example.com"}], "custom_args": {"touch_id": "0"}}
            ],
            "from": {"email": "hello@northwind.example", "name": "Northwind"},
            "subject": "Raw floor",
            "content": [
                {"type": "text/plain", "value": "hello " * 200},
                {"type": "text/html", "value": "<p>hello</p>" * 200},
            ],
        }
    ).encode()
    form = urlencode(
        {
            "To": "whatsapp:+14155550123",
            "From": "whatsapp:+14155550100",
            "ContentSid": "HX" + "5e" * 16,
            "ContentVariables": '{"1": "Raw"}',
            "StatusCallback": "https://hooks.example.com/webhooks/twilio/status?touch_id=0",
        }
    ).encode()
    targets = []
    for server, path, body, kind in (
        (sendgrid, "/v3/mail/send", mail, "application/json"),
        (
            twilio,
            f"/2010-04-01/Accounts/{SID}/Messages.json",
            form,
            "application/x-www-form-urlencoded",
        ),
    ):
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        headers = {"Authorization": "Bearer SG.fake-key", "Content-Type": kind}
        targets.append((conn, path, body, headers))
    if not mixed:
        targets = targets[:1]
    started = time.perf_counter()
    for n in range(count):
        conn, path, body, headers = targets[n % len(targets)]
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status >= 300:
            raise RuntimeError(f"raw floor request refused: {response.status}")
    elapsed = time.perf_counter() - started
    for conn, *_ in targets:
        conn.close()
    return count / elapsed


def bench_settings(
    workdir: Path, sendgrid: _Server, twilio: _Server, *, email_only: bool, database_url: str = ""
) -> Settings:
    config = provider_config(workdir / "config")
    if email_only:  # every step by email alone: one message per lead
        for path in sorted((config / "campaigns").glob("*.yaml")):
            data = yaml.safe_load(path.read_text())
            for step in data["steps"]:
                step["channels"] = ["email"]
            path.write_text(yaml.safe_dump(data, sort_keys=False))
    return Settings(
        data_dir=workdir / "data",
        config_dir=config,
        templates_dir=ROOT / "templates",
        database_url=database_url,
        secret_key="bench-secret-key-0123456789",  # type: ignore[arg-type]
        email_channel="sendgrid",
        sendgrid_api_key="SG.fake-key",  # type: ignore[arg-type]
        sendgrid_base_url=sendgrid.url,
        sendgrid_rate_per_second=100_000,
        whatsapp_channel="twilio",
        twilio_account_sid=SID,
        twilio_auth_token="fake-auth-token",  # type: ignore[arg-type]
        twilio_whatsapp_from="+14155550100",
        twilio_base_url=twilio.url,
        twilio_rate_per_second=100_000,
        sendgrid_concurrency=CONCURRENCY,
        twilio_concurrency=CONCURRENCY,
        _env_file=None,  # type: ignore[call-arg]
    )


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """The URL of a fresh PostgreSQL database (dropped after), or None without a server."""
    url = sa.engine.make_url(PG_URL)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"{os.environ.get('BENCH_DATABASE_PREFIX', 'bench_')}{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        admin.dispose()
        yield None
        return
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Tick:
    label: str
    messages: int
    plan_s: float
    dispatch_s: float
    cpu: CpuMeter

    @property
    def rate(self) -> float:
        return self.messages / (self.plan_s + self.dispatch_s)

    @property
    def dispatch_rate(self) -> float:
        return self.messages / self.dispatch_s


def run_tick(
    settings: Settings, servers: tuple[_Server, _Server], *, leads: int, workers: int = 1
) -> Tick:
    """One tick on a fresh database, timed from planning to the last outcome recorded;
    with several workers their start-up is inside the timed span."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    seed_leads(engine, leads, NOW)
    runtime = load_runtime(settings, engine=engine)
    with CpuMeter(*servers) as cpu:
        started = time.perf_counter()
        plan = tick.plan_all(runtime, NOW)
        planned = time.perf_counter()
        if workers == 1:
            report = tick.run_dispatch(runtime, SimulatedClock(NOW))
        else:
            report = run_workers(settings, NOW, workers, build=worker_runtime)
        done = time.perf_counter()
    engine.dispose()
    if report.sent_total != MESSAGES or plan.planned != MESSAGES:
        raise RuntimeError(f"expected {MESSAGES} planned and sent, got {plan}, {report}")
    label = "SQLite" if engine.dialect.name == "sqlite" else "PostgreSQL"
    return Tick(label, MESSAGES, planned - started, done - planned, cpu)


def cpu_split(settings: Settings) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """CPU ms per message of each part of a 1-process email tick (a timed run of its
    own), and a cProfile summary of the main thread of another."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    seed_leads(engine, MESSAGES, NOW)
    runtime = load_runtime(settings, engine=engine)
    timer = PartTimer()
    with timed_parts(timer):
        before = time.process_time()
        tick.run_tick(runtime, SimulatedClock(NOW))
        total = time.process_time() - before
    engine.dispose()
    parts = {part: 1000 * timer.seconds[part] / MESSAGES for part in PARTS[:-1]}
    parts["other"] = 1000 * total / MESSAGES - sum(parts.values())
    profile_settings = settings.model_copy(
        update={"data_dir": settings.data_dir.parent / "profile-data"}
    )
    engine = make_engine(profile_settings.resolved_database_url)
    upgrade(engine)
    seed_leads(engine, MESSAGES, NOW)
    runtime = load_runtime(profile_settings, engine=engine)
    top = main_thread_profile(lambda: tick.run_tick(runtime, SimulatedClock(NOW)))
    engine.dispose()
    return parts, top


def _fault_paragraph() -> tuple[str, bool]:
    if FAULT_LEADS == 0:
        return "Fault run: not run (BENCH_DELIVERY_FAULT_LEADS=0).", True
    faults = Faults(
        rate_limited=0.01,
        server_error=0.03,
        hang=0.002,
        drop=0.005,
        drop_after=0.005,
        retry_after=1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        fault = fault_run(
            Path(tmp) / "fault", leads=FAULT_LEADS, faults=faults, validate_every=VALIDATE_EVERY
        )
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(fault.statuses.items()))
    answers = ", ".join(f"{n} {a}" for a, n in sorted(fault.answers.items()))
    problems = " (" + "; ".join(fault.problems[:3]) + ")" if fault.problems else ""
    text = f"""Fault run (the validating fakes of leadops.testing.fakes, every {VALIDATE_EVERY}th
request checked against the OpenAPI files): {fault.touches:,} touches, faults injected
({answers}), dispatcher SIGKILLed after {fault.killed_after_accepted:,} accepted messages,
{fault.runs} dispatcher runs in all, {fault.seconds:.0f} s. Outcome: {statuses}; duplicates
at the providers: {len(fault.duplicates)}; check failures: {len(fault.problems)}{problems}."""
    return text, fault.ok


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, standin_process() as sg, standin_process() as tw:
        servers = (sg, tw)
        with CpuMeter(*servers) as floor_cpu:
            floor_email = raw_floor(sg, tw, RAW_REQUESTS, mixed=False)
        with CpuMeter(*servers) as mixed_cpu:
            floor_mixed = raw_floor(sg, tw, RAW_REQUESTS, mixed=True)
        root = Path(tmp)
        ticks = [
            run_tick(
                bench_settings(root / "email", sg, tw, email_only=True), servers, leads=MESSAGES
            ),
            run_tick(
                bench_settings(root / "mixed", sg, tw, email_only=False),
                servers,
                leads=MESSAGES // 2,
            ),
        ]
        with postgres_database() as pg_url:
            if pg_url is not None:
                pg = bench_settings(root / "pg", sg, tw, email_only=True, database_url=pg_url)
                ticks.append(run_tick(pg, servers, leads=MESSAGES, workers=2))
        parts, top = cpu_split(bench_settings(root / "split", sg, tw, email_only=True))
    load_after = os.getloadavg()[0]
    fault_text, fault_ok = _fault_paragraph()
    floor = max(floor_email, floor_mixed)  # every ratio against the higher floor
    what = [
        f"tick of {MESSAGES:,} emails, SQLite, 1 process",
        f"tick of {MESSAGES // 2:,} emails + {MESSAGES // 2:,} WhatsApp, SQLite, 1 process",
        f"tick of {MESSAGES:,} emails, PostgreSQL, 2 dispatcher processes",
    ]
    targets = ["0.5 (whole tick)", "0.4 (whole tick)", "0.7 (dispatch)"]
    rows = [
        f"| raw floor: bare keep-alive loop, Mail Send, {RAW_REQUESTS:,} requests | "
        f"{floor_email:,.0f} req/s | | {floor_cpu.per_message(RAW_REQUESTS)} | |",
        f"| raw floor, alternating Mail Send and Twilio Messages | {floor_mixed:,.0f} req/s | | "
        f"{mixed_cpu.per_message(RAW_REQUESTS)} | |",
    ]
    for n, result in enumerate(ticks):
        ratio = (result.dispatch_rate if n == 2 else result.rate) / floor
        rows.append(
            f"| {what[n]} | {result.rate:,.0f} msg/s ({result.plan_s + result.dispatch_s:.2f} s; "
            f"dispatch alone {result.dispatch_rate:,.0f} msg/s) | **{ratio:.2f}** "
            f"(target {targets[n]}) | {result.cpu.per_message(result.messages)} | "
            f"{result.plan_s:.2f} s |"
        )
    if len(ticks) < 3:
        rows.append(f"| {what[2]} | not measured: no PostgreSQL at {PG_URL} | | | |")
    split = " | ".join(f"{parts[part]:.3f}" for part in PARTS)
    total = sum(parts.values())
    profile = "\n".join(f"| {name} | {1000 * seconds / MESSAGES:.3f} |" for name, seconds in top)
    markdown = f"""
## Delivery (SendGrid + Twilio) beside the raw floor

{machine_line()} Load average {load_before:.1f} before and {load_after:.1f} after the
throughput runs (2 cores shared with other work: figures on an idle machine are higher).

The floor: a bare keep-alive `http.client` loop, one request at a time, posting a prepared
request to a minimal asyncio stand-in (bench.standin, one process per provider) that
answers 202/201 at once, no validation, no logging. Every ratio is to the higher of the two
floors of this run. Each tick runs on a fresh database with the shipped campaigns
(WhatsApp steps given a template; "emails" runs keep only the email channel), rate limits
out of the way (100,000/s), {CONCURRENCY} sending threads per provider in all (split
between dispatcher processes), timed from planning to the last outcome recorded, in the
benchmark's process (the `leadops run` tick: leadops.nurture.tick); with 2 processes,
their start-up is inside the figure. CPU is milliseconds of CPU per message (or request):
ours (this process and its dispatcher processes) + the stand-ins'.

| measure | rate | / floor | CPU ms/msg (ours + stand-ins) | of which planning |
|---|---|---|---|---|
{chr(10).join(rows)}

CPU per message of a 1-process email tick, by part (thread CPU timers on each part's
code paths, bench.delivery_parts; exclusive time, the sending threads included; measured in
a run of its own, as the timers cost about a microsecond a call): plan = planning the tick;
policy = claiming, reading the batch and the contact decision; render = composing the
message; send = the provider channel (request built, exchanged, answer read); record =
marking `sending` and writing the outcomes; other = the rest of the process (the dispatch
loop, thread hand-offs, the interpreter).

| {" | ".join(PARTS)} | total |
|{"---|" * (len(PARTS) + 1)}
| {split} | {total:.3f} |

Where the main thread's time goes (cProfile, own time per message, a tick of its own;
the sending threads are not in it, and cProfile inflates small calls):

| function | ms/msg |
|---|---|
{profile}

{fault_text}
"""
    write_section("delivery", markdown)
    print(markdown)
    if not fault_ok:
        raise SystemExit("fault run found problems")
