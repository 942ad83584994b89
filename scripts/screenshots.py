"""Screenshots for the README: the Prefect UI's flow runs and the HTML KPI report.

Builds a throw-away leadops home (sample leads, a simulated fortnight, provider events,
a rescore and escalations), starts a private Prefect server with its UI, deploys
prefect.yaml, runs the nurture and report deployments through a process worker, then
renders pages in headless Chromium into docs/img/.
Every process it starts is stopped at the end.

    apt-get install chromium        # once (Debian)
    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leadops.core.db import make_engine, session_scope, upgrade  # noqa: E402
from leadops.core.settings import Settings  # noqa: E402
from leadops.engagement import inbox  # noqa: E402
from leadops.engagement.rescore import run_rescore  # noqa: E402
from leadops.engagement.site import site_records  # noqa: E402
from leadops.intake.csv_source import read_csv  # noqa: E402
from leadops.intake.importer import import_records  # noqa: E402
from leadops.models import ESCALATIONS, LEADS, TOUCHES  # noqa: E402
from leadops.nurture.tick import simulate  # noqa: E402
from leadops.ops.prefect_stack import LocalStack  # noqa: E402
from leadops.providers.sendgrid.events import sendgrid_records  # noqa: E402
from leadops.providers.twilio.events import twilio_status_record  # noqa: E402
from leadops.reporting.report import build_report, write_html  # noqa: E402
from leadops.runtime import load_runtime  # noqa: E402
from leadops.sales.acks import acknowledge  # noqa: E402
from leadops.sales.handoff import escalate_sales_ready  # noqa: E402
from leadops.sales.scan import run_escalations  # noqa: E402

OUT = ROOT / "docs" / "img"
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)  # day-10 messages are due
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("Chromium not found: apt-get install chromium")


def screenshot(url: str, path: Path, *, size: str = "1400,900", budget: int = 30000) -> None:
    with tempfile.TemporaryDirectory(prefix="leadops-chromium-") as profile:
        subprocess.run(
            [
                chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size}",
                f"--virtual-time-budget={budget}",
                f"--screenshot={path}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {path.relative_to(ROOT)}")


def make_project(base: Path) -> tuple[Path, Settings]:
    project = base / "project"
    project.mkdir()
    shutil.copy(ROOT / "prefect.yaml", project / "prefect.yaml")
    for folder in ("flows", "config", "templates"):
        shutil.copytree(
            ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    settings = Settings(
        data_dir=project / "data",
        config_dir=project / "config",
        templates_dir=project / "templates",
        secret_key="screenshot-secret-key-0123456789",  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        import_records(
            session,
            read_csv(ROOT / "config" / "sample_leads.csv"),
            source="csv",
            now=START,
            default_region="US",
            default_timezone="UTC",
        )
    simulate(load_runtime(settings, engine=engine), START, NOW.replace(hour=0))
    add_engagement(settings, engine)
    return project, settings


def add_engagement(settings: Settings, engine: Any) -> None:
    """Provider events for the sent messages (as the webhooks would store them), a few
    demo requests, one rescore and one escalation pass, so the report has figures."""
    rng = random.Random(11)
    t = TOUCHES.c
    with engine.connect() as connection:
        sent = connection.execute(
            sa.select(t.id, t.lead_id, t.channel, t.sent_at, LEADS.c.email, LEADS.c.phone)
            .join(LEADS, LEADS.c.id == t.lead_id)
            .where(t.status == "sent")
        ).all()
    events: list[dict[str, Any]] = []
    records = []
    for touch_id, lead_id, channel, sent_at, email, _phone in sent:
        at = int(sent_at.timestamp())
        if channel == "email":
            kinds = ["bounce"] if rng.random() < 0.02 else ["delivered"]
            if kinds == ["delivered"] and rng.random() < 0.35:
                kinds.append("open")
                if rng.random() < 0.35:
                    kinds.append("click")
            for n, kind in enumerate(kinds):
                events.append(
                    {
                        "email": email,
                        "timestamp": at + 600 * (n + 1),
                        "event": kind,
                        "sg_event_id": f"shot-{touch_id}-{kind}",
                        "lead_id": str(lead_id),
                        "touch_id": str(touch_id),
                        **({"type": "bounce"} if kind == "bounce" else {}),
                    }
                )
        else:
            for status in ("delivered", "read") if rng.random() < 0.6 else ("delivered",):
                records.append(
                    twilio_status_record(
                        {"MessageSid": f"SM{touch_id:032d}", "MessageStatus": status}, touch_id
                    )
                )
    demo = [
        {
            "id": f"shot-demo-{email}",
            "type": "demo_requested",
            "email": email,
            "occurred_at": (NOW - timedelta(hours=3)).isoformat(),
        }
        for _, _, channel, _, email, _ in sent[:: max(1, len(sent) // 12)]
        if channel == "email"
    ]
    records += sendgrid_records(json.dumps(events).encode())
    records += site_records(json.dumps(demo).encode())
    inbox.store(engine, records, NOW - timedelta(hours=2))
    runtime = load_runtime(settings, engine=engine)
    report = run_rescore(runtime, NOW - timedelta(hours=1))
    escalation = runtime.require_escalation()
    escalate_sales_ready(escalation, report.sales_ready, NOW - timedelta(hours=1))
    run_escalations(escalation, NOW - timedelta(hours=1))
    with engine.connect() as connection:
        open_ids = connection.execute(sa.select(ESCALATIONS.c.id).order_by(ESCALATIONS.c.id)).all()
    for (escalation_id,) in open_ids[: len(open_ids) // 2]:
        acknowledge(engine, escalation_id, now=NOW - timedelta(minutes=50), by="james")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="leadops-shots-") as tmp:
        base = Path(tmp)
        project, settings = make_project(base)
        stack = LocalStack(
            home=base / "prefect-home",
            project=project,
            ui=True,
            extra_env={
                "LEADOPS_CONFIG_FILE": str(project / "config" / "leadops.toml"),
                "LEADOPS_DATA_DIR": str(project / "data"),
                "LEADOPS_SECRET_KEY": "screenshot-secret-key-0123456789",
            },
        )
        with stack:
            stack.start_server(timeout=120)
            stack.deploy()
            stack.start_worker()
            nurture = stack.run_deployment("nurture/hourly", {"now": NOW.isoformat()})
            stack.wait_for_run(nurture, timeout=120)
            daily = stack.run_deployment("report/daily", {"now": NOW.isoformat()})
            stack.wait_for_run(daily, timeout=120)
            artifacts = stack.api(
                "POST",
                "/artifacts/filter",
                json={"artifacts": {"flow_run_id": {"any_": [nurture]}}},
            )
            table = next(a["id"] for a in artifacts if a["key"] == "nurture-run")
            # The runs list needs a longer virtual-time budget to finish its fade-in.
            screenshot(f"{stack.ui_url}/runs", OUT / "prefect-flow-runs.png", budget=60000)
            screenshot(f"{stack.ui_url}/runs/flow-run/{nurture}", OUT / "prefect-nurture-run.png")
            screenshot(
                f"{stack.ui_url}/artifacts/artifact/{table}", OUT / "prefect-nurture-artifact.png"
            )
            screenshot(f"{stack.ui_url}/runs/flow-run/{daily}", OUT / "prefect-report-run.png")

        report = build_report(make_engine(settings.resolved_database_url), settings, NOW)
        html = write_html(report, base / "report.html")
        screenshot(html.as_uri(), OUT / "report.png", size="1400,2400")


if __name__ == "__main__":
    main()
