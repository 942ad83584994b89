"""`leadops serve` whose Prefect server does not answer: hand-raises are still answered at
once and kept, the failed submission is logged once (one line, no traceback), and the
every-minute pass's own functions escalate and notify them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from leadops.core.db import make_engine, upgrade
from leadops.engagement.site import site_signature
from leadops.models import ESCALATION_NOTIFICATIONS, ESCALATIONS, INBOX, LEADS
from leadops.ops.prefect_stack import free_port
from leadops.runtime import build_runtime
from leadops.sales.handoff import apply_inbox_and_escalate
from tests.conftest import ROOT, make_settings

SECRET = "unreachable-site-secret"
FAILED = "fast path: hand-off submission to Prefect failed"
LEADS_COUNT = 3


def test_hand_raises_wait_for_the_safety_net_when_prefect_does_not_answer(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, site_events_secret=SECRET)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADOPS_", "PREFECT_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api",  # nothing listens there
        PREFECT_HOME=str(tmp_path / "prefect"),
        LEADOPS_CONFIG_FILE=str(ROOT / "config" / "leadops.toml"),
        LEADOPS_DATA_DIR=str(settings.data_dir),
        LEADOPS_CONFIG_DIR=str(ROOT / "config"),
        LEADOPS_TEMPLATES_DIR=str(ROOT / "templates"),
        LEADOPS_SECRET_KEY="unreachable-secret-key-0123456789",
        LEADOPS_SITE_EVENTS_SECRET=SECRET,
    )
    leadops = [sys.executable, "-c", "from leadops.cli import main; main()"]
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    now = datetime.now(UTC)
    emails = [f"buyer{n}@company{n}.example" for n in range(LEADS_COUNT)]
    with engine.begin() as connection:
        connection.execute(
            sa.insert(LEADS),
            [
                {"email": email, "country": "GB", "timezone": "Europe/London"}
                | {"lifecycle_stage": "lead", "created_at": now, "updated_at": now}
                for email in emails
            ],
        )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*leadops, "serve", "--port", str(port)], env=env, cwd=tmp_path, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        for n, email in enumerate(emails):
            body = json.dumps(
                {"id": f"demo-{n}", "type": "demo_requested", "email": email}
                | {"occurred_at": datetime.now(UTC).isoformat()}
            ).encode()
            started = time.monotonic()
            response = httpx.post(
                base + "/events/site",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Leadops-Signature": site_signature(SECRET, body),
                },
                timeout=30,
            )
            # within a provider's patience, not after Prefect's retries and timeouts
            assert response.status_code == 202 and time.monotonic() - started < 5
            if n == 0:  # the first submission has failed before the others arrive
                deadline = time.monotonic() + 30
                while FAILED not in log.read_text():
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
        time.sleep(4)  # the later kicks' submissions fail too, quietly
    finally:
        server.terminate()
        server.wait(timeout=20)
    text = log.read_text()
    assert text.count(FAILED) == 1, text
    assert "Traceback" not in text, text
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(INBOX)).scalar() == 3
        assert not connection.execute(sa.select(ESCALATIONS)).all()

    runtime = build_runtime(settings, engine=engine)  # the every-minute pass
    escalation = runtime.require_escalation()
    apply_inbox_and_escalate(runtime.nurture(), escalation, datetime.now(UTC))
    n_, e = ESCALATION_NOTIFICATIONS.c, ESCALATIONS.c
    with engine.connect() as connection:
        notified = connection.execute(
            sa.select(e.lead_id)
            .select_from(ESCALATION_NOTIFICATIONS.join(ESCALATIONS, n_.escalation_id == e.id))
            .where(n_.status == "sent")
            .distinct()
        ).all()
    engine.dispose()
    assert len(notified) == LEADS_COUNT
