"""Ready-made delivery scenarios over the fake providers, for tests and benchmarks.

- `provider_config` copies the config folder and gives every WhatsApp step an approved
  template (ContentSid + ContentVariables), as Twilio requires.
- `seed_leads` inserts N consenting leads (email and WhatsApp) in one statement.
- `provider_env` is the LEADOPS_* environment that points leadops at the fakes.
- `fault_run` is the exactly-once proof: it sends through fakes that inject faults, kills
  the dispatcher process with SIGKILL mid-way, restarts it until nothing is left to send,
  then checks every touch against the fakes' own logs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from leadops.core.db import make_engine, upgrade
from leadops.models import LEADS, TOUCHES, Channel, TouchStatus
from leadops.testing.fakes import FakeProvider, FakeSendGrid, FakeTwilio, Faults

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATE_SID = "HX" + "5e" * 16
TWILIO_SID = "AC" + "7c" * 16
TWILIO_TOKEN = "fault-run-token"  # noqa: S105 (the fake's credential)
SENDGRID_KEY = "SG.fault-run-key"


def provider_config(destination: Path, source: Path = ROOT / "config") -> Path:
    """A copy of `source` in which every WhatsApp step has an approved template."""
    shutil.copytree(source, destination, dirs_exist_ok=True)
    for path in sorted((destination / "campaigns").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for step in data["steps"]:
            if "whatsapp" in step["channels"]:
                step["whatsapp"] = {
                    "content_sid": TEMPLATE_SID,
                    "content_variables": {"1": "{{ lead.first_name or 'there' }}"},
                }
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return destination


def seed_leads(engine: Engine, count: int, now: datetime, *, start: int = 0) -> None:
    """`count` new leads with email and WhatsApp consent, on UTC, stage `lead`."""
    rows = [
        {
            "email": f"lead{n:06d}@example.com",
            "phone": f"+1415{n:07d}",
            "first_name": f"Lead{n}",
            "last_name": "Example",
            "company": "Example Co",
            "timezone": "UTC",
            "country": "US",
            "lifecycle_stage": "lead",
            "email_consent": True,
            "email_consent_at": now,
            "whatsapp_consent": True,
            "whatsapp_consent_at": now,
            "score": 0,
            "created_at": now - timedelta(days=1),
            "updated_at": now,
        }
        for n in range(start, start + count)
    ]
    with engine.begin() as conn:
        for offset in range(0, len(rows), 5000):
            conn.execute(insert(LEADS), rows[offset : offset + 5000])


def provider_env(
    workdir: Path, sendgrid: FakeProvider, twilio: FakeProvider, **settings: object
) -> dict[str, str]:
    """LEADOPS_* variables pointing at the fakes, a private database and a config copy."""
    values: dict[str, object] = {
        "DATA_DIR": workdir / "data",
        "CONFIG_DIR": workdir / "config",
        "TEMPLATES_DIR": ROOT / "templates",
        "DATABASE_URL": f"sqlite:///{(workdir / 'data' / 'leadops.db').as_posix()}",
        "SECRET_KEY": "fault-run-secret-key-0123456789",
        "EMAIL_CHANNEL": "sendgrid",
        "SENDGRID_API_KEY": SENDGRID_KEY,
        "SENDGRID_BASE_URL": sendgrid.url,
        "WHATSAPP_CHANNEL": "twilio",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_WHATSAPP_FROM": "+14155550100",
        "TWILIO_BASE_URL": twilio.url,
        "PUBLIC_URL": "https://hooks.example.com",
    }
    values.update({key.upper(): value for key, value in settings.items()})
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADOPS_")}
    for name in ("TWILIO_REGION", "TWILIO_EDGE"):
        env.pop(name, None)
    env.update({f"LEADOPS_{key}": str(value) for key, value in values.items()})
    env["LEADOPS_CONFIG_FILE"] = str(ROOT / "config" / "leadops.toml")
    return env


@dataclass
class FaultRunReport:
    touches: int
    statuses: Counter[str]
    runs: int
    killed_after_accepted: int
    accepted: int
    answers: Counter[str]
    duplicates: dict[str, int]
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.duplicates


def _dispatch_command(now: datetime) -> list[str]:
    return [sys.executable, "-m", "leadops.cli", "run", "--no-prefect", "--now", now.isoformat()]


def fault_run(
    workdir: Path,
    *,
    leads: int,
    faults: Faults,
    kill_fraction: float = 0.3,
    validate_every: int = 1,
    timeout_seconds: float = 1.0,
    max_runs: int = 12,
) -> FaultRunReport:
    """Send 2 x `leads` touches through faulty fakes, SIGKILL the dispatcher once mid-way,
    rerun it until nothing is left, and check every touch against the fakes' logs."""
    started = time.perf_counter()
    now = datetime.fromisoformat("2026-12-01T10:00:00+00:00")  # a Tuesday, inside the window
    provider_config(workdir / "config")
    engine = make_engine(f"sqlite:///{(workdir / 'data' / 'leadops.db').as_posix()}")
    upgrade(engine)
    seed_leads(engine, leads, now)
    sendgrid = FakeSendGrid(
        api_key=SENDGRID_KEY, faults=faults, validate_every=validate_every, hang_seconds=5
    )
    twilio = FakeTwilio(
        account_sid=TWILIO_SID,
        auth_token=TWILIO_TOKEN,
        faults=Faults(**{**faults.__dict__, "seed": faults.seed + 1}),
        validate_every=validate_every,
        hang_seconds=5,
    )
    twilio.templates = {TEMPLATE_SID}
    sendgrid.start()
    twilio.start()
    try:
        env = provider_env(
            workdir,
            sendgrid,
            twilio,
            sendgrid_timeout_seconds=timeout_seconds,
            twilio_timeout_seconds=timeout_seconds,
            sendgrid_rate_per_second=2000,
            twilio_rate_per_second=2000,
            provider_retry_max_wait_seconds=2,
        )
        touches = 2 * leads
        target = int(touches * kill_fraction)
        process = subprocess.Popen(  # noqa: S603 (our own command line)
            _dispatch_command(now),
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 600
        while len(sendgrid.log) + len(twilio.log) < target:
            if process.poll() is not None:
                err = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"dispatcher ended before it could be killed: {err[-2000:]}")
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("dispatcher made no progress")
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_after = len(sendgrid.log) + len(twilio.log)

        runs = 1
        at = now
        while runs < max_runs:
            at += timedelta(minutes=10) if runs == 1 else timedelta(hours=1)
            runs += 1
            done = subprocess.run(  # noqa: S603 (our own command line)
                _dispatch_command(at),
                env=env,
                cwd=workdir,
                capture_output=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"dispatcher run failed: {done.stderr.decode()[-2000:]}")
            if not _open_touches(engine):
                break
        report = FaultRunReport(
            touches=touches,
            statuses=Counter(),
            runs=runs,
            killed_after_accepted=killed_after,
            accepted=len(sendgrid.log) + len(twilio.log),
            answers=sendgrid.answers + twilio.answers,
            duplicates={**sendgrid.duplicates(), **twilio.duplicates()},
        )
        _check(engine, sendgrid, twilio, report)
    finally:
        sendgrid.stop()
        twilio.stop()
        engine.dispose()
    report.seconds = time.perf_counter() - started
    return report


def _open_touches(engine: Engine) -> int:
    t = TOUCHES.c
    with engine.connect() as conn:
        return len(
            conn.execute(
                select(t.id).where(
                    t.status.in_([TouchStatus.PENDING, TouchStatus.CLAIMED, TouchStatus.SENDING])
                )
            ).all()
        )


def _check(
    engine: Engine, sendgrid: FakeSendGrid, twilio: FakeTwilio, report: FaultRunReport
) -> None:
    """Every touch is sent exactly once (matching the fake's log) or failed/ambiguous with
    a reason; nothing the fake accepted is recorded as failed or still pending."""
    logs = {Channel.EMAIL: sendgrid.log, Channel.WHATSAPP: twilio.log}
    accepted: dict[tuple[str, str], list[str]] = {}
    for channel, log in logs.items():
        for entry in log:
            accepted.setdefault((channel, entry.touch_id), []).append(entry.message_id)
    problems = report.problems
    for fake in (sendgrid, twilio):
        problems.extend(fake.violations[:5])
    t = TOUCHES.c
    with engine.connect() as conn:
        rows = conn.execute(select(t.id, t.channel, t.status, t.provider_message_id, t.error)).all()
    if len(rows) != report.touches:
        problems.append(f"expected {report.touches} touches, found {len(rows)}")
    for touch_id, channel, status, message_id, error in rows:
        report.statuses[status] += 1
        copies = accepted.get((channel, str(touch_id)), [])
        if status == TouchStatus.SENT:
            if copies != [message_id]:
                problems.append(f"touch {touch_id} sent as {message_id}, provider has {copies}")
        elif status == TouchStatus.AMBIGUOUS:
            if len(copies) > 1 or not error:
                problems.append(f"touch {touch_id} ambiguous with {copies}, reason {error!r}")
        elif status == TouchStatus.FAILED:
            if copies or not error:
                problems.append(f"touch {touch_id} failed but provider has {copies} ({error!r})")
        else:
            problems.append(f"touch {touch_id} left {status}")
