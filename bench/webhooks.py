"""Webhook ingestion and rescoring: 100,000 signed SendGrid events through the real app.

Starts uvicorn on a local port with a fresh SQLite database and 5,000 leads, posts
signed Event Webhook batches (100 events each) and single Twilio status callbacks from
a concurrent client, checks that every event was stored once (a replayed share is
stored zero times), then runs the rescore over the whole inbox twice, each on its own copy
of the database: with config/scoring.yaml and with the rules of 2026-11-23
(bench/scoring_2026-11-23.yaml), so the cost of the rules added since shows beside it.
Run with `./dev bench webhooks`; figures go to docs/PERFORMANCE.md.

BENCH_WEBHOOKS_RESCORE_ONLY=1 stores the same events straight into the inbox (no HTTP),
times only the rescores and writes nothing to docs/PERFORMANCE.md; for profiling it.
BENCH_WEBHOOKS_EVENTS sets the number of SendGrid events (100,000 by default).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from bench.app import free_port, running_app
from bench.report import machine_line, write_section

ROOT = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("BENCH_WEBHOOKS_EVENTS", "100000"))
BATCH = 100
LEADS = 5_000
TWILIO_CALLBACKS = 5_000
REPLAYED_BATCHES = 50
CONCURRENCY = 16
HEALTH_REQUESTS = 1_000
TWILIO_TOKEN = "bench-twilio-auth-token-0123456789"
THEN_RULES = ROOT / "bench" / "scoring_2026-11-23.yaml"
THEN_RATE = 3_487  # events/s of the rescore on 2026-11-23 (commit 312a102), these rules


def _event(rng: random.Random, n: int, now: int) -> dict[str, Any]:
    lead_id = rng.randint(1, LEADS)
    roll = rng.random()
    kind = (
        "delivered"
        if roll < 0.30
        else "open"
        if roll < 0.65
        else "click"
        if roll < 0.80
        else "processed"
        if roll < 0.97
        else "deferred"
        if roll < 0.99
        else "bounce"
    )
    event: dict[str, Any] = {
        "email": f"lead{lead_id}@bench.example",
        "timestamp": now - rng.randint(0, 3600),
        "event": kind,
        "sg_event_id": f"bench-{n:08d}",
        "sg_message_id": f"m{n // 3}.filterdrecv-5645d9c87f-abcde-1-5F5FC76C-9.0",
        "category": ["nurture"],
        "lead_id": str(lead_id),
    }
    if kind == "open":
        event["sg_machine_open"] = rng.random() < 0.4
        event["useragent"] = "Mozilla/5.0"
    elif kind == "click":
        event["url"] = f"https://northwind.example/guide/{rng.randint(1, 20)}"
    elif kind == "bounce":
        event["type"] = "bounce" if rng.random() < 0.5 else "blocked"
        event["reason"] = "550 5.1.1 user unknown"
    return event


def _prepare(key: ec.EllipticCurvePrivateKey, public_url: str) -> tuple[list[Any], list[Any]]:
    rng = random.Random(6)
    now = int(time.time())
    stamp = str(now)
    sendgrid = []
    for start in range(0, EVENTS, BATCH):
        events = [_event(rng, n, now) for n in range(start, start + BATCH)]
        body = json.dumps(events, separators=(",", ":")).encode() + b"\r\n"
        signature = base64.b64encode(
            key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        ).decode()
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }
        sendgrid.append(("/webhooks/sendgrid", body, headers))
    validator = RequestValidator(TWILIO_TOKEN)
    twilio = []
    for n in range(TWILIO_CALLBACKS):
        path = f"/webhooks/twilio/status?touch_id={n + 1}"
        params = {
            "MessageSid": f"SM{n:032x}",
            "MessageStatus": rng.choice(["sent", "delivered", "read"]),
            "ChannelPrefix": "whatsapp",
            "To": "whatsapp:+447700900123",
        }
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": validator.compute_signature(public_url + path, params),
        }
        twilio.append((path, urlencode(params).encode(), headers))
    return sendgrid, twilio


async def _post_all(
    base: str, requests: list[Any], method: str = "POST"
) -> tuple[float, list[int]]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                path, body, headers = queue.get_nowait()
                response = await client.request(method, path, content=body, headers=headers)
                statuses.append(response.status_code)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, statuses


def _seed(database_url: str) -> None:
    from leadops.core.db import make_engine, upgrade
    from leadops.models import LEADS as LEAD_TABLE

    engine = make_engine(database_url)
    upgrade(engine)
    at = datetime.now(UTC)
    rows = [
        {
            "email": f"lead{n}@bench.example",
            "timezone": "UTC",
            "lifecycle_stage": "lead",
            "email_consent": True,
            "company_size": 50 + n % 400,
            "seniority": ("vp", "manager", "engineer")[n % 3],
            "created_at": at,
            "updated_at": at,
            "last_engaged_at": at,
        }
        for n in range(1, LEADS + 1)
    ]
    with engine.begin() as connection:
        connection.execute(LEAD_TABLE.insert(), rows)
    engine.dispose()


@dataclass
class _Rescore:
    """One timed rescore of the whole inbox."""

    rules: str
    seconds: float
    cpu_seconds: float
    report: Any
    load: float  # load average when it started


def _store_direct(database_url: str, sendgrid: list[Any], twilio: list[Any]) -> None:
    """The events the app would store, parsed by the same functions, stored without HTTP."""
    from leadops.core.db import make_engine
    from leadops.engagement.inbox import store
    from leadops.providers.sendgrid.events import sendgrid_records
    from leadops.providers.twilio.events import twilio_status_record

    engine = make_engine(database_url)
    now = datetime.now(UTC)
    for _, body, _ in sendgrid:
        store(engine, sendgrid_records(body), now)
    for path, body, _ in twilio:
        params = dict(parse_qsl(body.decode()))
        store(engine, [twilio_status_record(params, int(path.rsplit("=", 1)[1]))], now)
    engine.dispose()


def _copy_database(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _rescore(settings: Any, database: Path, rules: str, config: Any) -> _Rescore:
    from leadops.core.clock import SystemClock
    from leadops.core.db import make_engine
    from leadops.engagement.rescore import run_rescore
    from leadops.runtime import load_runtime

    engine = make_engine(f"sqlite:///{database}")
    runtime = load_runtime(settings, engine=engine)
    print(f"rescoring ({rules}) ...", flush=True)
    load = os.getloadavg()[0]
    started, cpu = time.perf_counter(), time.process_time()
    report = run_rescore(runtime, SystemClock().now(), config=config)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    return _Rescore(rules, seconds, cpu_seconds, report, load)


def _rescores(settings: Any, folder: Path) -> list[_Rescore]:
    """The whole inbox rescored with today's rules and with those of 2026-11-23, each on
    its own copy of the database as the ingest left it."""
    from leadops.core.configfile import load_model
    from leadops.engagement.scoring import ScoringConfig, load_scoring

    source = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
    done = []
    for rules, config in (
        ("2026-11-23", load_model(THEN_RULES, ScoringConfig)),
        ("today", load_scoring(settings.config_dir)),
    ):
        copy = folder / f"rescore-{rules}.db"
        _copy_database(source, copy)
        done.append(_rescore(settings, copy, rules, config))
    return done


def _rescore_markdown(runs: list[_Rescore], events: int) -> str:
    lines = [
        "| Rules | Seconds | Events/s | / 3,487 | CPU s | Events per CPU-s | CPU µs per event |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        name = (
            "2026-11-23 (bench/scoring_2026-11-23.yaml)"
            if run.rules != "today"
            else "today's (config/scoring.yaml)"
        )
        rate = events / run.seconds
        shown = f"**{rate:,.0f}**" if run.rules != "today" else f"{rate:,.0f}"
        lines.append(
            f"| {name} | {run.seconds:.1f} | {shown} | {rate / THEN_RATE:.1f} "
            f"| {run.cpu_seconds:.1f} | {events / run.cpu_seconds:,.0f} "
            f"| {run.cpu_seconds / events * 1e6:,.0f} |"
        )
    report = runs[-1].report
    then, today = runs
    cost = (today.cpu_seconds - then.cpu_seconds) / events * 1e6
    return (
        "\n".join(lines)
        + f"""

Load average {then.load:.1f} when the first rescore started, {today.load:.1f} at the second.
Against the 3,487 events/s of 2026-11-23 (a wall-clock rate, on a machine then at load
1.8): x{events / then.seconds / THEN_RATE:.1f} by this run's wall clock,
x{events / then.cpu_seconds / THEN_RATE:.1f} per CPU-second (the rate an idle core gives).
The code before the rescore's bulk paths, alternated with it on one inbox on 2026-12-04
(load 5-7): 14.1-23.6 CPU s before, 9.4-15.0 after (x1.4-1.6 less CPU, both rule sets).
The rules added since 2026-11-23 (BANT fit rules on custom properties, contact_request, the
SQL gate, grades and bands in scoring.yaml, PQL events) cost {cost:+,.0f} µs of CPU per
event on this inbox ({today.cpu_seconds / then.cpu_seconds:.2f}x the CPU of the 2026-11-23
rules); the code added since (grading, the predictive hook, PQL status) runs under both.
With today's rules: {report.events_total:,} events applied,
{sum(report.ignored.values()):,} not applied (Twilio callbacks for touches that do not
exist in this data set), {report.ledger_rows:,} engagement and {report.fit_rows:,} fit
ledger rows, {sum(report.stage_changes.values()):,} stage changes,
{sum(report.suppressed.values()):,} suppressions, {len(report.sales_ready):,} sales-ready."""
    )


def main() -> None:
    from leadops.core.db import make_engine
    from leadops.core.settings import Settings
    from leadops.models import INBOX

    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rescore_only = os.environ.get("BENCH_WEBHOOKS_RESCORE_ONLY") == "1"
    with tempfile.TemporaryDirectory(prefix="leadops-bench-webhooks-") as folder:
        env = dict(os.environ)
        env.update(
            {
                "LEADOPS_DATA_DIR": folder,
                "LEADOPS_CONFIG_DIR": str(ROOT / "config"),
                "LEADOPS_TEMPLATES_DIR": str(ROOT / "templates"),
                "LEADOPS_CONFIG_FILE": str(ROOT / "config" / "leadops.toml"),
                "LEADOPS_DATABASE_URL": "",
                "LEADOPS_PUBLIC_URL": base,
                "LEADOPS_SECRET_KEY": "bench-secret-key-0123456789",
                "LEADOPS_SENDGRID_WEBHOOK_PUBLIC_KEY": public,
                "LEADOPS_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
                "LEADOPS_SITE_EVENTS_SECRET": "bench-site-secret",
            }
        )
        settings = Settings(
            data_dir=Path(folder),
            config_dir=ROOT / "config",
            templates_dir=ROOT / "templates",
            _env_file=None,  # type: ignore[call-arg]
        )
        _seed(settings.resolved_database_url)
        print(f"preparing {EVENTS} signed events ...", flush=True)
        sendgrid, twilio = _prepare(key, base)
        if rescore_only:
            _store_direct(settings.resolved_database_url, sendgrid, twilio)
        else:
            with running_app(env, port):
                load_before = os.getloadavg()[0]
                health: list[Any] = [("/healthz", None, {})] * HEALTH_REQUESTS
                health_seconds, _ = asyncio.run(_post_all(base, health, method="GET"))
                print(f"posting {len(sendgrid)} SendGrid batches ...", flush=True)
                sg_seconds, sg_statuses = asyncio.run(_post_all(base, sendgrid))
                print(f"posting {len(twilio)} Twilio callbacks ...", flush=True)
                tw_seconds, tw_statuses = asyncio.run(_post_all(base, twilio))
                replay_seconds, replay_statuses = asyncio.run(
                    _post_all(base, sendgrid[:REPLAYED_BATCHES])
                )
            bad = [s for s in sg_statuses + tw_statuses + replay_statuses if s >= 300]
            if bad:
                raise RuntimeError(f"{len(bad)} requests were refused: {sorted(set(bad))}")

        engine = make_engine(settings.resolved_database_url)
        with engine.connect() as connection:
            stored = connection.execute(sa.select(sa.func.count()).select_from(INBOX)).scalar_one()
        engine.dispose()
        expected = EVENTS + TWILIO_CALLBACKS
        if stored != expected:
            raise RuntimeError(f"inbox holds {stored} events, expected {expected}")
        runs = _rescores(settings, Path(folder))
    rescore = _rescore_markdown(runs, expected)
    if rescore_only:
        print(rescore)
        return

    def row(what: str, requests: int, events: int, seconds: float, bold: bool = False) -> str:
        rate = f"{events / seconds:,.0f}"
        rate = f"**{rate}**" if bold else rate
        return (
            f"| {what} | {requests:,} | {events:,} | {seconds:.1f} | {rate} "
            f"| {requests / seconds:,.0f} |"
        )

    table = "\n".join(
        [
            "| What | Requests | Events | Seconds | Events/s | Requests/s |",
            "|---|---:|---:|---:|---:|---:|",
            row(
                f"SendGrid Event Webhook, {BATCH} events per request",
                len(sendgrid),
                EVENTS,
                sg_seconds,
                bold=True,
            ),
            row(
                "Twilio status callbacks, 1 event per request", len(twilio), len(twilio), tw_seconds
            ),
            row(
                "Replayed SendGrid batches (stored again: 0)",
                REPLAYED_BATCHES,
                REPLAYED_BATCHES * BATCH,
                replay_seconds,
            ),
            row("Baseline: GET /healthz (no event)", HEALTH_REQUESTS, 0, health_seconds),
        ]
    )
    markdown = f"""## Webhooks: ingest and rescore

{machine_line()}

`./dev bench webhooks`: uvicorn (one worker, access log off) serving the real app on a
local port with SQLite; a client with {CONCURRENCY} concurrent connections on the same
machine. Every request is signature-checked (ECDSA P-256 for SendGrid, HMAC-SHA1 for
Twilio) and stored once in the inbox. The machine was shared: load average
{load_before:.1f} when the run started. Twilio posts one event per request, so its rate is
bound by the per-request cost of HTTP on this machine (compare the /healthz baseline).

{table}

Target: at least 2,000 events/s accepted. Inbox after the run: {expected:,} events, each
stored once.

### Rescore of the whole inbox ({expected:,} events, {LEADS:,} leads)

`run_rescore` (inbox, fit, no-opens, decay, scores, grades, stages, re-segment), once per
rule set, each on its own copy of the database as the ingest left it. Events/s is
{expected:,} over the wall time; CPU is the process's own (`time.process_time`). Target:
at least 3x the 3,487 events/s of 2026-11-23, with the rules of that day.

{rescore}

What the rescore does per batch of 2,000 inbox events (one transaction, as before): one
lookup per kind of key (touch ids, SIDs, emails, phones, leads), each list bound as one
parameter (`core.bulk.among`: `= ANY` on PostgreSQL, `json_each` on SQLite); the capped
rules' history read once per lead per pass and caught up each batch with the ledger rows
written since (`engagement.effects.CapHistory`), not re-read for every batch; the events
applied in memory; then one executemany each for the ledger rows, the activity times and
the inbox results (`core.bulk.execute_many`: on SQLite the rows go to the driver as
tuples, each distinct value bind-processed once), the sunset lift only for leads that
have one. Stage moves and their stage changes are one statement each per chunk of leads.
The ledger explains every change as before, and a re-run applies nothing twice (the
inbox row's status is written in the batch's transaction).

Where the time goes now (cProfile of the rescore alone, `BENCH_WEBHOOKS_RESCORE_ONLY=1`),
and what is left to gain:
- about a quarter in Python per event (`engagement.effects` and `engagement.resolve`:
  translate, resolve, the capped award, the result text); compiling the rules into
  plain tuples and floats once per pass would take part of it;
- about a fifth in SQLite writing the rows: each inbox result is an UPDATE that moves
  three index entries (status, lead, touch), each ledger row an INSERT with two;
  `UPDATE ... FROM json_each` would save the driver's per-row step, not SQLite's;
- about a tenth in suppressing hard bounces (`delivery.suppression.suppress` and
  `leave_nurture`, several statements per lead): a bulk form in leadops/delivery would
  make that one statement per batch;
- the per-batch lookups, decoding each payload's JSON, and re-planning the leads that
  moved (`nurture.plan_leads`) most of the rest.
Traded: on PostgreSQL, where several passes may apply disjoint batches at once, a pass
catches up on the ledger by row id. A row that another pass commits after this one read
the highest id, with a lower id (ids are drawn before commit), is not seen by this pass's
later batches. Bound: only rows of the batches other passes had open at that moment (at
most 2,000 events each), and only for caps: a lead that two passes score within one batch
of each other can get at most the points of those rows beyond a cap, recorded and
explained in the ledger like any other row; each new pass reads the history afresh. Two
batches running at once already had that race before. On SQLite passes take the write
lock in turn (BEGIN IMMEDIATE) and nothing is traded.

The wall time counts waiting for a core: on this shared machine (see the load average)
it can be twice the CPU time; on an idle machine the wall rate approaches the rate per
CPU-second.
"""
    write_section("webhooks", markdown)
    print(markdown)
