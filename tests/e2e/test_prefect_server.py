"""The deployment path as operators run it: a real `prefect server`, prefect.yaml
deployed onto a process work pool, a worker, and a nurture run seen through the API.

Select or skip it with `-m prefect_server` / `-m "not prefect_server"`. It is skipped,
with the reason, where the server cannot start.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadops.db import make_engine, session_scope, upgrade
from leadops.intake.csv_source import read_csv
from leadops.intake.importer import import_records
from leadops.prefect_stack import LocalStack, PrefectCommandError, prefect_executable
from tests.conftest import ROOT

pytestmark = [pytest.mark.prefect, pytest.mark.prefect_server]


def _project(tmp_path: Path) -> Path:
    """A leadops home like an operator's: prefect.yaml, flows, config, templates, data."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "prefect.yaml", project / "prefect.yaml")
    for folder in ("flows", "config", "templates"):
        shutil.copytree(
            ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    engine = make_engine(f"sqlite:///{project / 'data' / 'leadops.db'}")
    upgrade(engine)
    lines = (ROOT / "config" / "sample_leads.csv").read_text().splitlines()[:31]
    (tmp_path / "leads.csv").write_text("\n".join(lines) + "\n")
    with session_scope(engine) as session:
        import_records(
            session,
            read_csv(tmp_path / "leads.csv"),
            source="csv",
            now=datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
            default_region="US",
            default_timezone="UTC",
        )
    engine.dispose()
    return project


def test_deploy_and_run_nurture_on_a_prefect_server(tmp_path: Path) -> None:
    if shutil.which(prefect_executable()) is None and not Path(prefect_executable()).exists():
        pytest.skip("the prefect command is not installed")
    project = _project(tmp_path)
    stack = LocalStack(
        home=tmp_path / "prefect-home",
        project=project,
        extra_env={
            "LEADOPS_CONFIG_FILE": str(project / "config" / "leadops.toml"),
            "LEADOPS_DATA_DIR": str(project / "data"),
            "LEADOPS_SECRET_KEY": "test-secret-key-0123456789",
        },
    )
    with stack:
        try:
            stack.start_server(timeout=60)
        except PrefectCommandError as exc:
            pytest.skip(f"prefect server could not start here: {exc}")
        out = stack.deploy()
        assert "nurture/hourly" in out and "report/daily" in out
        deployment = stack.api("GET", "/deployments/name/nurture/hourly")
        assert deployment["work_pool_name"] == "leadops"
        assert deployment["global_concurrency_limit"]["limit"] == 1
        assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
        assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 * * * *"]
        assert {"leadops", "nurture"} <= set(deployment["tags"])

        stack.start_worker()
        run_id = stack.run_deployment("nurture/hourly", {"now": "2026-12-02T15:00:00Z"})
        run = stack.wait_for_run(run_id, timeout=75)
        assert run["state"]["type"] == "COMPLETED", (
            stack.log_tail("worker") + "\n" + str(run["state"])
        )
        assert run["name"] == "nurture-2026-12-02T15:00Z"

        artifacts = stack.api(
            "POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}
        )
        by_key = {a["key"]: a for a in artifacts if a["key"]}
        assert {"nurture-tick", "nurture-run", "nurture-summary", "nurture-dispatch"} <= set(by_key)
        assert by_key["nurture-dispatch"]["type"] == "progress"
        assert by_key["nurture-dispatch"]["data"] == 100.0
        run_table = by_key["nurture-run"]["data"]
        assert '"sent"' in run_table and '"planned"' in run_table

        # Logs are shipped in batches; the last ones may land just after the final state.
        names: set[str] = set()
        deadline = time.monotonic() + 30
        while "leadops.nurture" not in names and time.monotonic() < deadline:
            time.sleep(1)
            logs = stack.api(
                "POST", "/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}}
            )
            names = {entry["name"] for entry in logs}
        assert {"leadops.nurture"} <= names, names
    assert all(p.poll() is not None for p in stack.processes.values())
    assert list((project / "data" / "outbox").rglob("t*.*")), "the run sent nothing"
