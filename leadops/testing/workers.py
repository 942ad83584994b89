"""Planner and dispatcher worker processes sharing one database, for the scale benchmark
and the many-workers fault test.

`python -m leadops.testing.workers dispatch --now ISO` is one dispatcher: it reads its
settings from LEADOPS_* like `leadops run --no-prefect`, calls leadops.nurture.tick.run_dispatch
and prints one JSON line (sent, held, failed, ambiguous, when it started and ended, its
peak RSS, CPU seconds). `plan` does the same for leadops.nurture.plan.plan_all with a partition,
noting how long it took to reach every 100,000 leads. With `--wait` a worker loads
everything, prints `ready` and starts only when it reads a line, so several workers can
be started together and timed without their start-up.

`copy_leads` bulk-loads email-only leads (COPY on PostgreSQL), and `check_touches`
compares every touch with a fake provider's log: nothing sent twice, nothing lost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.models import LEADS, TOUCHES, TouchStatus

ROOT = Path(__file__).resolve().parent.parent.parent
SENDGRID_KEY = "SG.fake-key"  # the standalone fake's default key
MARK_EVERY = 100_000  # a planner notes its time each time this many more leads are planned
OPEN_STATUSES = (TouchStatus.PENDING, TouchStatus.CLAIMED, TouchStatus.SENDING)
STAGES = ("subscriber", "lead", "lead", "mql", "sql")
INDUSTRIES = ("software", "logistics", "retail", "manufacturing", "finance", None)
ZONES = ("UTC", "Europe/London", "Europe/Berlin")  # 10:00 UTC is inside every window
LEAD_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "industry",
    "company_size",
    "timezone",
    "country",
    "lifecycle_stage",
    "email_consent",
    "email_consent_at",
    "whatsapp_consent",
    "score",
    "created_at",
    "updated_at",
)


def _lead_row(n: int, now: datetime) -> tuple[Any, ...]:
    return (
        f"lead{n:07d}@example.com",
        f"Lead{n}",
        "Example",
        f"Company {n % 5000}",
        INDUSTRIES[n % len(INDUSTRIES)],
        10 * (1 + n % 500),
        ZONES[n % len(ZONES)],
        ("GB", "DE", "US", "FR")[n % 4],
        STAGES[n % len(STAGES)],
        True,
        now - timedelta(days=2),
        False,
        0,
        now - timedelta(days=1 + n % 30),
        now,
    )


def copy_leads(engine: Engine, count: int, now: datetime, *, start: int = 0) -> None:
    """`count` leads with email consent (no phone), mixed stages, industries and zones;
    COPY on PostgreSQL, bulk INSERT elsewhere."""
    rows = (_lead_row(n, now) for n in range(start, start + count))
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(dict(zip(LEAD_COLUMNS, row, strict=True)))
                if len(batch) == 5000:
                    conn.execute(sa.insert(LEADS), batch)
                    batch = []
            if batch:
                conn.execute(sa.insert(LEADS), batch)
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY leads ({', '.join(LEAD_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE leads"))


def worker_env(
    database_url: str, sendgrid_url: str, workdir: Path, **settings: object
) -> dict[str, str]:
    """The environment of a worker: LEADOPS_* pointing at the database and the SendGrid fake
    (WhatsApp stays on the file outbox; the seeded leads have no phone)."""
    values: dict[str, object] = {
        "DATA_DIR": workdir / "data",
        "CONFIG_DIR": ROOT / "config",
        "TEMPLATES_DIR": ROOT / "templates",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "worker-secret-key-0123456789",
        "EMAIL_CHANNEL": "sendgrid",
        "SENDGRID_API_KEY": SENDGRID_KEY,
        "SENDGRID_BASE_URL": sendgrid_url,
        "PUBLIC_URL": "https://hooks.example.com",
    }
    values.update({key.upper(): value for key, value in settings.items()})
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADOPS_")}
    env.update({f"LEADOPS_{key}": str(value) for key, value in values.items()})
    env["LEADOPS_CONFIG_FILE"] = str(ROOT / "config" / "leadops.toml")
    return env


class Worker:
    """One worker process (`dispatch` or `plan`), started waiting for the go signal."""

    def __init__(self, command: str, now: datetime, env: dict[str, str], *extra: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 (our own command line)
            [
                sys.executable,
                "-m",
                "leadops.testing.workers",
                command,
                "--now",
                now.isoformat(),
                "--wait",
                *extra,
            ],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ready(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.process.kill()
            _, err = self.process.communicate(timeout=30)
            raise RuntimeError(f"worker did not start: {line}{err[-3000:]}")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def result(self, timeout: float = 3600) -> dict[str, Any]:
        """The worker's JSON report; raises with its stderr if it failed."""
        out, err = self.process.communicate(timeout=timeout)
        if self.process.returncode != 0:
            raise RuntimeError(f"worker exited {self.process.returncode}: {err[-3000:]}")
        data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return data


def run_together(workers: Sequence[Worker]) -> list[dict[str, Any]]:
    """Start the waiting workers at once; their reports, in order."""
    for worker in workers:
        worker.ready()
    for worker in workers:
        worker.go()
    return [worker.result() for worker in workers]


@dataclass
class TouchCheck:
    touches: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    duplicates: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.duplicates


def check_touches(
    engine: Engine, accepted: Iterable[tuple[str, str]], *, expected: int
) -> TouchCheck:
    """Every touch against the provider's log of (touch id, message id): a sent touch has
    exactly its one message there; an ambiguous one at most one (with its reason); a failed
    one none; none is left pending, claimed or sending; no touch id arrived twice."""
    copies: dict[str, list[str]] = {}
    for touch_id, message_id in accepted:
        copies.setdefault(touch_id, []).append(message_id)
    check = TouchCheck(duplicates={k: len(v) for k, v in copies.items() if len(v) > 1})
    t = TOUCHES.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.id, t.status, t.provider_message_id, t.error)).all()
    check.touches = len(rows)
    if len(rows) != expected:
        check.problems.append(f"expected {expected} touches, found {len(rows)}")
    known = set()
    for touch_id, status, message_id, error in rows:
        check.statuses[status] += 1
        known.add(str(touch_id))
        found = copies.get(str(touch_id), [])
        if status == TouchStatus.SENT:
            if found != [message_id]:
                check.problems.append(
                    f"touch {touch_id} sent as {message_id}, provider has {found}"
                )
        elif status == TouchStatus.AMBIGUOUS:
            if len(found) > 1 or not error:
                check.problems.append(f"touch {touch_id} ambiguous with {found}, {error!r}")
        elif status == TouchStatus.FAILED:
            if found or not error:
                check.problems.append(f"touch {touch_id} failed, provider has {found}")
        else:
            check.problems.append(f"touch {touch_id} left {status}")
    strangers = set(copies) - known
    if strangers:
        check.problems.append(f"provider has unknown touch ids {sorted(strangers)[:5]}")
    return check


def open_touches(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(TOUCHES)
                .where(TOUCHES.c.status.in_(OPEN_STATUSES))
            ).scalar_one()
        )


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time (user and system) this process has used, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one leadops worker process")
    parser.add_argument("command", choices=["dispatch", "plan"])
    parser.add_argument("--now", required=True)
    parser.add_argument("--wait", action="store_true", help="print ready, start on a line")
    parser.add_argument("--partition", default="0/1", help="k/n: plan leads with id %% n == k")
    args = parser.parse_args(argv)

    from leadops.core.clock import SimulatedClock, ensure_utc
    from leadops.core.settings import Settings
    from leadops.nurture.plan import plan_all
    from leadops.nurture.tick import run_dispatch
    from leadops.runtime import load_runtime

    now = ensure_utc(datetime.fromisoformat(args.now))
    runtime = load_runtime(Settings())
    rss_loaded = peak_rss_mb()
    if args.wait:
        print("ready", flush=True)
        sys.stdin.readline()
    started = time.time()
    cpu_started = cpu_seconds()
    result: dict[str, Any]
    if args.command == "dispatch":
        report = run_dispatch(runtime, SimulatedClock(now))
        result = {
            "sent": report.sent_total,
            "held": sum(report.held.values()),
            "skipped": sum(report.skipped.values()),
            "failed": report.failed,
            "ambiguous": report.ambiguous,
            "recovered": report.recovered,
        }
    else:
        k, n = (int(part) for part in args.partition.split("/"))
        marks: list[tuple[int, float]] = []

        def mark(leads: int) -> None:
            # seconds since the start each time another MARK_EVERY leads are planned
            if leads // MARK_EVERY > len(marks):
                marks.append((leads, time.time() - started))

        plan = plan_all(runtime, now, (k, n), progress=mark)
        result = {
            "leads": plan.leads,
            "planned": plan.planned,
            "conflicts": plan.conflicts,
            "marks": marks,
        }
    result.update(
        started=started,
        ended=time.time(),
        cpu_s=cpu_seconds() - cpu_started,
        rss_loaded_mb=rss_loaded,
        peak_rss_mb=peak_rss_mb(),
    )
    runtime.engine.dispose()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
