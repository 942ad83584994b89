"""One real Prefect stack per test session for the real-stack tests (marker prefect_server).

`prefect_stack` starts `prefect server start` with a fast scheduler, deploys the project's
prefect.yaml onto the process work pool `leadops` as an operator does, and starts a
process worker; `fast_path_app` adds `leadops serve` and the fast path's task worker
(`leadops handoff-worker`) to it. Tests that use it carry `REAL_STACK` (the marker and
one xdist group), so under `pytest -n 2 --dist loadgroup` one worker process runs them
all on one server.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from leadops.core.db import make_engine, session_scope, upgrade
from leadops.core.settings import get_settings
from leadops.intake.csv_source import read_csv
from leadops.intake.importer import import_records
from leadops.ops.prefect_stack import (
    CLI_PREFECT_DEFAULTS,
    LocalStack,
    PrefectCommandError,
    prefect_executable,
)
from tests.conftest import DEFAULT_PG, ROOT

REAL_STACK = [
    pytest.mark.prefect,
    pytest.mark.prefect_server,
    pytest.mark.xdist_group("prefect_server"),
]
SAMPLE_ROWS = 30  # leads from config/sample_leads.csv (bad rows included)
SITE_SECRET = "stack-site-events-secret"

# The scheduler looks for work every 2 s (default 60 s) and keeps at most 3 runs ahead
# per deployment (default: up to 100, an hour ahead at least, which for a 10-second
# interval means hundreds of writes to the server's SQLite database); a worker polls
# every 2 s and beats every 5 s. Runs appear and start, and a stopped worker shows,
# within seconds.
FAST_STACK_ENV = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "3",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME": "PT1M",
    "PREFECT_WORKER_QUERY_SECONDS": "2",
    "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
}


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder as `leadops init` expects it (config and templates copied), the
    working directory for the test; settings are read afresh inside it."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    monkeypatch.setenv("LEADOPS_CONFIG_FILE", str(tmp_path / "config" / "leadops.toml"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def make_project(folder: Path, now: datetime) -> Path:
    """A leadops home like an operator's: prefect.yaml, flows, config, templates, data."""
    project = folder / "project"
    project.mkdir()
    shutil.copy(ROOT / "prefect.yaml", project / "prefect.yaml")
    for name in ("flows", "config", "templates"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    engine = make_engine(f"sqlite:///{project / 'data' / 'leadops.db'}")
    upgrade(engine)
    lines = (ROOT / "config" / "sample_leads.csv").read_text().splitlines()[: SAMPLE_ROWS + 1]
    (folder / "leads.csv").write_text("\n".join(lines) + "\n")
    with session_scope(engine) as session:
        import_records(
            session,
            read_csv(folder / "leads.csv"),
            source="csv",
            now=now,
            default_region="US",
            default_timezone="UTC",
        )
    engine.dispose()
    return project


@pytest.fixture(scope="session")
def prefect_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect server database at Prefect's latest revision (its migrations cost about
    10 s of CPU), made once per test run, shared by the test processes: a command's new
    Prefect home starts from a copy (`seed_prefect_home`), as a home used before would."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each test process's own
    home = shared / "prefect-db-template"
    target = home / "prefect.db"
    with (shared / "prefect-db-template.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            done = subprocess.run(
                [prefect_executable(), "server", "database", "upgrade", "-y"],
                env=env | CLI_PREFECT_DEFAULTS | {"PREFECT_HOME": str(home)},
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            assert not target.with_name("prefect.db-wal").exists()
    return target


def seed_prefect_home(home: Path, template: Path) -> None:
    """Put a copy of the migrated Prefect database into a Prefect home."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / "prefect.db")


@contextmanager
def prefect_database() -> Iterator[dict[str, str]]:
    """A new PostgreSQL database for the Prefect server where the test server is reachable
    (the setting teams use: many writers at once), else the server's own SQLite file."""
    base = os.environ.get("LEADOPS_TEST_DATABASE_URL", DEFAULT_PG)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"prefect_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError:
        admin.dispose()
        yield {}
        return
    url = sa.engine.make_url(base).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield {"PREFECT_SERVER_DATABASE_CONNECTION_URL": url.render_as_string(False)}
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def prefect_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A Prefect server, prefect.yaml deployed, and a live process worker."""
    if shutil.which(prefect_executable()) is None and not Path(prefect_executable()).exists():
        pytest.skip("the prefect command is not installed")
    folder = tmp_path_factory.mktemp("prefect-stack")
    project = make_project(folder, datetime.now(UTC))
    with prefect_database() as database, _stack(folder, project, database) as stack:
        yield stack


@contextmanager
def _stack(folder: Path, project: Path, database: dict[str, str]) -> Iterator[LocalStack]:
    stack = LocalStack(
        home=folder / "prefect-home",
        project=project,
        extra_env=FAST_STACK_ENV
        | database
        | {
            "LEADOPS_CONFIG_FILE": str(project / "config" / "leadops.toml"),
            "LEADOPS_DATA_DIR": str(project / "data"),
            "LEADOPS_SECRET_KEY": "test-secret-key-0123456789",
        },
    )
    with stack:
        try:
            stack.start_server(timeout=90)
        except PrefectCommandError as exc:
            pytest.skip(f"prefect server could not start here: {exc}")
        stack.deploy()
        stack.start_worker()
        yield stack


@pytest.fixture(scope="session")
def fast_path_app(prefect_stack: LocalStack) -> Iterator[str]:
    """`leadops serve` (site events signed with SITE_SECRET) and `leadops handoff-worker`
    on the shared stack; yields the app's base URL."""
    stack = prefect_stack
    stack.start_handoff_worker()
    try:
        yield stack.start_app({"LEADOPS_SITE_EVENTS_SECRET": SITE_SECRET})
    finally:
        for name in ("app", "handoff-worker"):
            if name in stack.processes:
                stack.stop_process(name)
