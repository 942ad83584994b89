"""Delivery throughput end to end against local fake providers, beside the raw HTTP floor,
and the 10,000-touch exactly-once fault run.

1. Two fakes (SendGrid, Twilio) each in its own process, validating a sample of requests
   against the OpenAPI files (every request would make the fake the bottleneck: openapi-core
   costs 2-6 ms per request).
2. Raw floor: a bare keep-alive http.client loop posting a prepared request to the same
   fakes, alternating providers, one request at a time; and the provider channels alone
   (channel pools, no database, no rendering), to show what sending itself costs.
3. End to end: seeded leads, one tick (plan, policy, render, send through the provider
   channels, record) on SQLite, with 1 and with 2 dispatcher processes; messages per second =
   messages sent / tick time (worker start-up included). CPU per message is measured
   beside each figure, for the dispatcher side and for the fakes.
4. Fault run: 10,000 touches with 429s, 500s, hangs and dropped connections injected and
   the dispatcher SIGKILLed mid-way (leadops.testing.scenario.fault_run).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.report import machine_line, write_section
from leadops.core.clock import SimulatedClock
from leadops.core.db import make_engine, upgrade
from leadops.core.settings import Settings
from leadops.delivery.workers import run_workers
from leadops.nurture.plan import plan_all
from leadops.nurture.tick import run_dispatch
from leadops.runtime import load_runtime, worker_runtime
from leadops.testing.fakes import Faults
from leadops.testing.scenario import (
    ROOT,
    fault_run,
    provider_config,
    seed_leads,
)

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LEADS = int(os.environ.get("BENCH_DELIVERY_LEADS", "5000"))  # x 2 channels
FAULT_LEADS = int(os.environ.get("BENCH_DELIVERY_FAULT_LEADS", "5000"))
VALIDATE_EVERY = 50
# Local fakes answer in well under a millisecond, so a few threads per provider saturate
# the process; more only add GIL contention. (Real APIs need about rate x latency.)
CONCURRENCY = 4
RAW_REQUESTS = 4000
WORKERS = (1, 2)  # dispatcher processes measured end to end


class _Fake:
    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process

    def stats(self) -> dict[str, object]:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        conn.request("GET", "/_fake/stats")
        data: dict[str, object] = json.loads(conn.getresponse().read())
        conn.close()
        return data


@contextmanager
def fake_process(provider: str) -> Iterator[_Fake]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leadops.testing.fakes",
            provider,
            "--validate-every",
            str(VALIDATE_EVERY),
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    url = process.stdout.readline().decode().strip()
    try:
        yield _Fake(url, process)
    finally:
        process.terminate()
        process.wait()


def _fake_cpu(fakes: tuple[_Fake, ...]) -> float:
    """CPU seconds the fake processes have used so far (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for fake in fakes:
        try:
            fields = Path(f"/proc/{fake.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class CpuMeter:
    """CPU seconds per message of this process with its finished children (the dispatcher
    workers), and of the fakes, over a measured span."""

    def __init__(self, *fakes: _Fake) -> None:
        self.fakes = fakes
        self.client = 0.0
        self.fake = 0.0

    @staticmethod
    def _own() -> float:
        self_ = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return self_.ru_utime + self_.ru_stime + children.ru_utime + children.ru_stime

    def __enter__(self) -> CpuMeter:
        self._start = (self._own(), _fake_cpu(self.fakes))
        return self

    def __exit__(self, *exc: object) -> None:
        self.client = self._own() - self._start[0]
        self.fake = _fake_cpu(self.fakes) - self._start[1]

    def per_message(self, messages: float) -> str:
        return f"{1000 * self.client / messages:.2f} + {1000 * self.fake / messages:.2f}"


def raw_floor(sendgrid: _Fake, twilio: _Fake, count: int) -> float:
    """Messages/s of a bare keep-alive client loop, alternating the two fakes."""
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
    basic = base64.b64encode(
        f"{'AC' + '0' * 32}:{'fake-auth-token'}".encode()
    ).decode()  # the standalone fakes' default credentials
    targets = []
    for fake, path, body, headers in (
        (
            sendgrid,
            "/v3/mail/send",
            mail,
            {"Authorization": "Bearer SG.fake-key", "Content-Type": "application/json"},
        ),
        (
            twilio,
            f"/2010-04-01/Accounts/{'AC' + '0' * 32}/Messages.json",
            form,
            {
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        ),
    ):
        parts = urlsplit(fake.url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        targets.append((conn, path, body, headers))
    started = time.perf_counter()
    for n in range(count):
        conn, path, body, headers = targets[n % 2]
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status >= 300:
            raise RuntimeError(f"raw floor request refused: {response.status}")
    elapsed = time.perf_counter() - started
    for conn, *_ in targets:
        conn.close()
    return count / elapsed


def sdk_floor(settings: Settings, count: int) -> float:
    """Messages/s through the provider channels alone (channel pools, no database, no
    rendering): what sending costs before leadops does anything else."""
    from concurrent.futures import wait

    from leadops.delivery.pool import ChannelPool
    from leadops.providers.base import OutgoingMessage
    from leadops.providers.select import build_channels

    channels = build_channels(settings)
    pools = [ChannelPool(channel) for channel in channels.values()]
    messages = [
        OutgoingMessage(
            touch_id=n,
            lead_id=n,
            channel=channel,
            to="sdk@example.com" if channel == "email" else "+14155550123",
            campaign="educate",
            step="day-1",
            created_at=NOW,
            subject="SDK floor",
            text="hello " * 200,
            html="<p>hello</p>" * 200,
            content_sid="HX" + "5e" * 16,
            content_variables={"1": "SDK"},
        )
        for n in range(count)
        for channel in ("email", "whatsapp")
    ][:count]
    started = time.perf_counter()
    futures = [pools[n % 2].submit(message) for n, message in enumerate(messages)]
    wait(futures)
    elapsed = time.perf_counter() - started
    for pool in pools:
        pool.close()
    failed = [f.result().error for f in futures if f.result().error is not None]
    if failed:
        raise RuntimeError(f"SDK floor sends failed: {failed[:3]}")
    return count / elapsed


def bench_settings(workdir: Path, sendgrid: _Fake, twilio: _Fake) -> Settings:
    return Settings(
        data_dir=workdir / "data",
        config_dir=provider_config(workdir / "config"),
        templates_dir=ROOT / "templates",
        secret_key="bench-secret-key-0123456789",  # type: ignore[arg-type]
        email_channel="sendgrid",
        sendgrid_api_key="SG.fake-key",  # type: ignore[arg-type]
        sendgrid_base_url=sendgrid.url,
        sendgrid_rate_per_second=10_000,
        whatsapp_channel="twilio",
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="fake-auth-token",  # type: ignore[arg-type]
        twilio_whatsapp_from="+14155550100",
        twilio_base_url=twilio.url,
        twilio_rate_per_second=10_000,
        sendgrid_concurrency=CONCURRENCY,
        twilio_concurrency=CONCURRENCY,
        _env_file=None,  # type: ignore[call-arg]
    )


@dataclass
class EndToEnd:
    messages: int
    plan_s: float
    dispatch_s: float
    total_s: float
    cpu: CpuMeter


def end_to_end(workdir: Path, sendgrid: _Fake, twilio: _Fake, workers: int) -> EndToEnd:
    """One tick on a fresh database; with several workers the dispatcher processes are
    started inside the timed span (their start-up is part of the figure)."""
    settings = bench_settings(workdir, sendgrid, twilio)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    seed_leads(engine, LEADS, NOW)
    runtime = load_runtime(settings, engine=engine)
    with CpuMeter(sendgrid, twilio) as cpu:
        started = time.perf_counter()
        plan = plan_all(runtime, NOW)
        planned = time.perf_counter()
        if workers == 1:
            report = run_dispatch(runtime, SimulatedClock(NOW))
        else:
            report = run_workers(settings, NOW, workers, build=worker_runtime)
        done = time.perf_counter()
    engine.dispose()
    if report.sent_total != 2 * LEADS or plan.planned != 2 * LEADS:
        raise RuntimeError(f"expected {2 * LEADS} sent, got {report}")
    return EndToEnd(
        messages=report.sent_total,
        plan_s=planned - started,
        dispatch_s=done - planned,
        total_s=done - started,
        cpu=cpu,
    )


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        with fake_process("sendgrid") as sendgrid, fake_process("twilio") as twilio:
            with CpuMeter(sendgrid, twilio) as floor_cpu:
                floor = raw_floor(sendgrid, twilio, RAW_REQUESTS)
            with CpuMeter(sendgrid, twilio) as sdk_cpu:
                sdk = sdk_floor(bench_settings(Path(tmp) / "sdk", sendgrid, twilio), RAW_REQUESTS)
            e2e = {
                workers: end_to_end(Path(tmp) / f"e2e-{workers}", sendgrid, twilio, workers)
                for workers in WORKERS
            }
            stats = [sendgrid.stats(), twilio.stats()]
        load_after = os.getloadavg()[0]
        violations = [v for s in stats for v in s["violations"]]  # type: ignore[attr-defined]
        if violations:
            raise RuntimeError(f"requests outside the OpenAPI contract: {violations}")
        faults = Faults(
            rate_limited=0.01,
            server_error=0.03,
            hang=0.002,
            drop=0.005,
            drop_after=0.005,
            retry_after=1,
        )
        fault = fault_run(
            Path(tmp) / "fault", leads=FAULT_LEADS, faults=faults, validate_every=VALIDATE_EVERY
        )
    rates = {workers: result.messages / result.total_s for workers, result in e2e.items()}
    best = max(rates.values())
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(fault.statuses.items()))
    answers = ", ".join(f"{n} {a}" for a, n in sorted(fault.answers.items()))
    rows: list[tuple[str, str, str]] = []
    for workers, result in e2e.items():
        messages = result.messages
        label = "1 dispatcher process" if workers == 1 else f"{workers} dispatcher processes"
        rows.append(
            (
                f"end to end, {label}: {int(messages):,} messages "
                "(plan, policy, render, send, record)",
                f"{rates[workers]:,.0f} msg/s ({result.total_s:.1f} s)",
                result.cpu.per_message(messages),
            )
        )
        rows.append(
            (
                f"of which dispatch only, {label}",
                f"{messages / result.dispatch_s:,.0f} msg/s ({result.dispatch_s:.1f} s)",
                "",
            )
        )
    rows += [
        (
            f"raw HTTP floor: bare keep-alive loop, same fakes, {RAW_REQUESTS:,} requests",
            f"{floor:,.0f} msg/s",
            floor_cpu.per_message(RAW_REQUESTS),
        ),
        (
            f"provider channels alone (channel pools, no database or rendering), {RAW_REQUESTS:,}",
            f"{sdk:,.0f} msg/s",
            sdk_cpu.per_message(RAW_REQUESTS),
        ),
    ]
    for workers in WORKERS:
        rows.append((f"end to end ({workers}) / raw floor", f"{rates[workers] / floor:.2f}", ""))
    rows.append(("best end to end / channels alone", f"{best / sdk:.2f}", ""))
    table = "\n".join(f"| {what} | {value} | {cpu} |" for what, value, cpu in rows)
    problems = " (" + "; ".join(fault.problems[:3]) + ")" if fault.problems else ""
    markdown = f"""
## Delivery (SendGrid + Twilio through local fakes)

{machine_line()} Load average {load_before:.1f} before and {load_after:.1f} after the
throughput runs (the machine is shared: figures on an idle machine are higher).

Fakes run in their own processes (asyncio HTTP/1.1 servers) and validate every
{VALIDATE_EVERY}th request against the OpenAPI files (the contract tests validate every
request). Rate limits set to 10,000/s so the figure is capacity; {CONCURRENCY} threads per
provider in all (split between dispatcher processes). SQLite database. Both providers'
requests go out on kept-alive connections, byte for byte what the official SDKs send
(leadops.providers.keepalive; SendGrid's headers worked out by its SDK client once, Twilio's
request prepared by its SDK each time). CPU is milliseconds of CPU
time per message: the dispatcher side (this process and its worker processes) + the fakes;
on 2 cores, 2,000 ms of CPU per second is the ceiling for both together.

| measure | value | CPU ms/msg (ours + fakes) |
|---|---|---|
{table}

Fault run: {fault.touches:,} touches, faults injected ({answers}), dispatcher SIGKILLed after
{fault.killed_after_accepted:,} accepted messages, {fault.runs} dispatcher runs in all,
{fault.seconds:.0f} s. Outcome: {statuses}; duplicates at the providers: {len(fault.duplicates)};
check failures: {len(fault.problems)}{problems}.
"""
    write_section("delivery", markdown)
    print(markdown)
    if not fault.ok:
        raise SystemExit("fault run found problems")
