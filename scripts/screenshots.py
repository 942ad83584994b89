"""Screenshots for the README: the Prefect UI's flow runs and the HTML KPI report.

Builds a throw-away leadops home (sample leads, a simulated fortnight), starts a private
Prefect server with its UI, deploys prefect.yaml, runs the nurture and report deployments
through a process worker, then renders pages in headless Chromium into docs/img/.
Every process it starts is stopped at the end.

    apt-get install chromium        # once (Debian)
    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leadops.db import make_engine, session_scope, upgrade  # noqa: E402
from leadops.intake.csv_source import read_csv  # noqa: E402
from leadops.intake.importer import import_records  # noqa: E402
from leadops.nurture import load_runtime, simulate  # noqa: E402
from leadops.prefect_stack import LocalStack  # noqa: E402
from leadops.report import build_report, write_html  # noqa: E402
from leadops.settings import Settings  # noqa: E402

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
    return project, settings


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
