"""Webhook ingestion and rescoring: 100,000 signed SendGrid events through the real app.

Starts uvicorn on a local port with a fresh SQLite database and 5,000 leads, posts
signed Event Webhook batches (100 events each) and single Twilio status callbacks from
a concurrent client, checks that every event was stored once (a replayed share is
stored zero times), then runs the rescore over the whole inbox.
Run with `./dev bench webhooks`; figures go to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from bench.app import free_port, running_app
from bench.report import machine_line, write_section

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 100_000
BATCH = 100
LEADS = 5_000
TWILIO_CALLBACKS = 5_000
REPLAYED_BATCHES = 50
CONCURRENCY = 16
HEALTH_REQUESTS = 1_000
TWILIO_TOKEN = "bench-twilio-auth-token-0123456789"


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


def main() -> None:
    from leadops.core.clock import SystemClock
    from leadops.core.db import make_engine
    from leadops.core.settings import Settings
    from leadops.engagement.rescore import run_rescore
    from leadops.models import INBOX
    from leadops.runtime import load_runtime

    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
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
        expected = EVENTS + TWILIO_CALLBACKS
        if stored != expected:
            raise RuntimeError(f"inbox holds {stored} events, expected {expected}")
        runtime = load_runtime(settings, engine=engine)
        print("rescoring ...", flush=True)
        started = time.perf_counter()
        report = run_rescore(runtime, SystemClock().now())
        rescore_seconds = time.perf_counter() - started
        engine.dispose()

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

Rescore of the whole inbox ({LEADS:,} leads): {rescore_seconds:.1f} s
({expected / rescore_seconds:,.0f} events/s): {report.events_total:,} events applied,
{sum(report.ignored.values()):,} not applied (Twilio callbacks for touches that do not
exist in this data set), {report.ledger_rows:,} engagement and {report.fit_rows:,} fit
ledger rows, {sum(report.stage_changes.values()):,} stage changes,
{sum(report.suppressed.values()):,} suppressions, {len(report.sales_ready):,} sales-ready.
"""
    write_section("webhooks", markdown)
    print(markdown)
