"""Webhook to rep notification, in real time, with the default every-minute schedule.

Starts the real webhooks app (uvicorn) on a fresh SQLite database, posts signed
`demo_requested` site events for leads at random moments over a few minutes, and at every
minute boundary (the escalate deployment's cron `* * * * *`) starts the every-minute pass
as a new process (`leadops escalations run`), as a process worker starts a flow run. The
latency of a lead is from its webhook's answer to its rep notification being sent
(escalation_notifications.sent_at).

Not included: Prefect's own overhead between the scheduled time and the flow run's first
line (worker polling and run start); it is measured separately by the Prefect server test
and noted in the figures.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml

from bench.app import free_port, running_app
from bench.report import machine_line, write_section
from leadops.core.db import make_engine, upgrade
from leadops.engagement.site import site_signature
from leadops.models import ESCALATION_NOTIFICATIONS, ESCALATIONS, LEADS

ROOT = Path(__file__).resolve().parent.parent
MINUTES = int(os.environ.get("LEADOPS_BENCH_LATENCY_MINUTES", "4"))
LEADS_COUNT = 40
SECRET = "bench-site-secret"


def _routing(folder: Path) -> Path:
    """The shipped routing, with every rep in working hours around the clock."""
    routing = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    for rep in routing["reps"]:
        rep["capacity"] = 100_000
        rep["hours"] = {
            "start": "00:00",
            "end": "23:59",
            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        }
    path = folder / "routing.yaml"
    path.write_text(yaml.safe_dump(routing))
    return path


def _seed(url: str) -> list[str]:
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    emails = [f"buyer{n}@company{n}.example" for n in range(LEADS_COUNT)]
    with engine.begin() as connection:
        connection.execute(
            sa.insert(LEADS),
            [
                {
                    "email": email,
                    "first_name": f"Buyer{n}",
                    "country": "GB",
                    "timezone": "Europe/London",
                    "lifecycle_stage": "lead",
                    "email_consent": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for n, email in enumerate(emails)
            ],
        )
    engine.dispose()
    return emails


def _post_events(base: str, emails: list[str], window: float, posted: dict[str, float]) -> None:
    """Post one signed demo request per lead at a random moment within `window` seconds."""
    start = time.time()
    moments = sorted((random.uniform(0, window), email) for email in emails)
    with httpx.Client(timeout=10) as client:
        for offset, email in moments:
            time.sleep(max(0.0, start + offset - time.time()))
            body = json.dumps(
                {
                    "id": f"demo-{email}",
                    "type": "demo_requested",
                    "email": email,
                    "occurred_at": datetime.now(UTC).isoformat(),
                }
            ).encode()
            response = client.post(
                base + "/events/site",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Leadops-Signature": site_signature(SECRET, body),
                },
            )
            response.raise_for_status()
            posted[email] = time.time()


def _run_pass(env: dict[str, str], durations: list[float]) -> None:
    started = time.monotonic()
    subprocess.run(
        [str(Path(sys.executable).parent / "leadops"), "escalations", "run"],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    durations.append(time.monotonic() - started)


def main() -> None:
    random.seed(7)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="leadops-bench-latency-") as name:
        folder = Path(name)
        env = dict(os.environ)
        env.update(
            {
                "LEADOPS_DATA_DIR": str(folder),
                "LEADOPS_CONFIG_DIR": str(ROOT / "config"),
                "LEADOPS_TEMPLATES_DIR": str(ROOT / "templates"),
                "LEADOPS_CONFIG_FILE": str(ROOT / "config" / "leadops.toml"),
                "LEADOPS_DATABASE_URL": "",
                "LEADOPS_ROUTING_FILE": str(_routing(folder)),
                "LEADOPS_PUBLIC_URL": base,
                "LEADOPS_SECRET_KEY": "bench-secret-key-0123456789",
                "LEADOPS_SITE_EVENTS_SECRET": SECRET,
            }
        )
        url = f"sqlite:///{(folder / 'leadops.db').as_posix()}"
        emails = _seed(url)
        posted: dict[str, float] = {}
        durations: list[float] = []
        with running_app(env, port):
            # Events arrive during the first MINUTES - 1 minutes; the passes run at every
            # minute boundary until one minute after the last event.
            window = 60.0 * (MINUTES - 1)
            sender = threading.Thread(target=_post_events, args=(base, emails, window, posted))
            sender.start()
            print(f"posting {len(emails)} demo requests over {window:.0f} s ...", flush=True)
            end = time.time() + window
            while True:
                next_minute = (int(time.time()) // 60 + 1) * 60
                time.sleep(max(0.0, next_minute - time.time()))
                _run_pass(env, durations)
                if time.time() > end + 60:
                    break
            sender.join()
        engine = make_engine(url)
        n, e = ESCALATION_NOTIFICATIONS.c, ESCALATIONS.c
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(LEADS.c.email, sa.func.min(n.sent_at))
                .select_from(ESCALATION_NOTIFICATIONS.join(ESCALATIONS, n.escalation_id == e.id))
                .join(LEADS, LEADS.c.id == e.lead_id)
                .where(n.role == "rep", n.status == "sent")
                .group_by(LEADS.c.email)
            ).all()
        engine.dispose()
    latencies = sorted(sent.timestamp() - posted[email] for email, sent in rows if email in posted)
    if len(latencies) != len(emails):
        raise RuntimeError(f"only {len(latencies)} of {len(emails)} leads reached a rep")
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    write_section(
        "latency",
        f"""## Webhook to rep notification

`./dev bench latency`: the real webhooks app (uvicorn) on SQLite; {len(emails)} signed
`demo_requested` site events posted at random moments over {window / 60:.0f} minutes; the
every-minute pass (`leadops escalations run`, a new process each time, as a process
worker starts a flow run) started at every minute boundary, as the escalate deployment's
cron `* * * * *` does. Latency: from the webhook's answer to the rep's notification sent.

| figure | value |
|---|---|
| leads escalated and notified | {len(latencies)} of {len(emails)} |
| latency p50 | {statistics.median(latencies):.1f} s |
| latency p95 | {p95:.1f} s (target: under 120 s) |
| latency max | {latencies[-1]:.1f} s |
| pass duration (process start to exit), median | {statistics.median(durations):.1f} s |

Waiting for the next minute is most of it (30 s on average, up to 60 s). Not included:
Prefect's own start-up of a scheduled flow run on a process worker (the worker's polling
interval and the run's process start), which adds to every figure above.

{machine_line()}
""",
    )
    print(f"latency p50 {statistics.median(latencies):.1f} s, p95 {p95:.1f} s", flush=True)
