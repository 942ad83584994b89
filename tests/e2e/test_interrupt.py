"""Ctrl-C in `leadops simulate` and `leadops run --workers 2`: a real SIGINT to the
command's process group, as a terminal sends it, or to the command alone (and SIGTERM,
as a Prefect worker cancelling a run sends it). The command exits within 5 s with a clear
message and no traceback, leaves no process behind (the dispatcher processes included),
its flow run ends Crashed (as the command's own Prefect home records it), and running it
again finishes the work with nothing sent twice."""

from __future__ import annotations

import email
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from leadops.core.db import make_engine, upgrade
from leadops.core.settings import Settings
from leadops.testing.fakes import FakeSendGrid, FakeTwilio
from leadops.testing.scenario import (
    SENDGRID_KEY,
    TEMPLATE_SID,
    TWILIO_SID,
    TWILIO_TOKEN,
    provider_config,
    provider_env,
    seed_leads,
)
from tests.conftest import ROOT
from tests.e2e.conftest import seed_prefect_home

pytestmark = pytest.mark.prefect

LEADOPS = str(Path(sys.executable).with_name("leadops"))
SAMPLE_ROWS = 80
SIMULATE = ["simulate", "--days", "30", "--start", "2026-12-01T08:00Z"]


def flow_runs(prefect_home: Path) -> list[list[str]]:
    """The flow runs (name, state) a command recorded in its own Prefect home, read from
    that home's Prefect database (starting a Prefect server to read them would cost more
    than the rest of the test)."""
    with closing(sqlite3.connect(prefect_home / "prefect.db")) as db:
        rows = db.execute("SELECT name, state_type FROM flow_run").fetchall()
    return sorted([name, state] for name, state in rows)


# A stopped command exits within seconds. Alone on an idle machine `run --workers 2` takes
# 2.5-3 s to stop (stopping its dispatcher processes and marking the flow run Crashed),
# 3-5 s with the other core busy, and up to 8 s while the suite's other test process runs a
# Prefect server or a simulation: the bound leaves room for that, not for a hang.
STOP_WITHIN = 10


def group_members(pgid: int) -> list[str]:
    """Processes still alive in a process group (zombies count as gone)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(stat.parent.name)
    return alive


def command_line(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"{pid} (ended)"


def sent_messages(outbox: Path) -> Counter[tuple[str, str, str, str]]:
    """(lead, campaign, step, channel) of every message file in the outbox."""
    seen: Counter[tuple[str, str, str, str]] = Counter()
    for path in outbox.rglob("t*.eml"):
        mail = email.message_from_bytes(path.read_bytes())
        campaign, step = str(mail["X-Leadops-Campaign"]).split("/")
        seen[(str(mail["X-Leadops-Lead-Id"]), campaign, step, "email")] += 1
    for path in outbox.rglob("t*.json"):  # <outbox>/<whatsapp or sms>/<campaign>/<step>/
        doc = json.loads(path.read_text())
        channel = path.relative_to(outbox).parts[0]
        seen[(str(doc["lead_id"]), doc["campaign"], doc["step"], channel)] += 1
    return seen


@pytest.mark.xfail(
    raises=subprocess.TimeoutExpired,
    strict=False,
    reason="known race, open (seen in 2 of 5 full-suite runs, 1 of 11 runs alone on a loaded "
    "machine): Ctrl-C lands while "
    "the dispatcher holds a SQLite write and its clean-up then waits the 30 s lock timeout "
    "('database is locked' from write_outcomes) before the command exits; any other failure "
    "of this test (exit code, a message sent twice, a run not Crashed) still fails it",
)
def test_ctrl_c_in_simulate_stops_at_once_and_a_rerun_sends_nothing_twice(
    tmp_path: Path, prefect_db_template: Path
) -> None:
    data = tmp_path / "data"
    seed_prefect_home(data / "prefect", prefect_db_template)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LEADOPS_"))}
    env |= {
        "LEADOPS_DATA_DIR": str(data),
        "LEADOPS_CONFIG_FILE": str(ROOT / "config" / "leadops.toml"),
        "LEADOPS_SECRET_KEY": "test-secret-key-0123456789",
    }
    lines = (ROOT / "config" / "sample_leads.csv").read_text().splitlines()[: SAMPLE_ROWS + 1]
    (tmp_path / "leads.csv").write_text("\n".join(lines) + "\n")

    def leadops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LEADOPS, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )

    assert leadops("init").returncode == 0
    imported = leadops("leads", "import", str(tmp_path / "leads.csv"), "--now", "2026-12-01T08:00Z")
    assert imported.returncode == 0, imported.stderr

    outbox = data / "outbox"
    process = subprocess.Popen(
        [LEADOPS, *SIMULATE],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 180
        while not any(outbox.rglob("t*.*")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "simulate sent nothing within 180 s"
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)
        interrupted = time.monotonic()
        _out, err = process.communicate(timeout=30)
        took = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert took < STOP_WITHIN, f"simulate took {took:.1f} s to stop after Ctrl-C"
    assert "interrupted: the simulation stopped" in err
    assert "run the same command to finish the work" in " ".join(err.split())
    assert group_members(process.pid) == [], "processes left behind after Ctrl-C"
    partial = sent_messages(outbox)
    assert partial and max(partial.values()) == 1

    # The command's own Prefect home (in the data folder) recorded the run as Crashed.
    assert flow_runs(data / "prefect") == [["simulate-2026-12-01T08:00Z", "CRASHED"]]

    # The same simulation again, without a flow run this time (the dispatch code is the
    # same with or without one): it sends what is left, nothing twice.
    again = leadops(*SIMULATE, "--no-prefect")
    assert again.returncode == 0, again.stderr
    sent = sent_messages(outbox)
    assert set(partial) <= set(sent)
    duplicates = {key: n for key, n in sent.items() if n > 1}
    assert duplicates == {}
    engine = make_engine(f"sqlite:///{data / 'leadops.db'}")
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(sa.text("SELECT status, count(*) FROM touches GROUP BY status")).all()
        )
    engine.dispose()
    # everything finished: nothing left claimed, sending or unknown, every send on file
    assert statuses.get("sent") == sum(sent.values()) and len(sent) > len(partial)
    assert set(statuses) <= {"sent", "skipped"}, statuses


# `leadops run --workers 2` through fake providers slowed to 10 messages a second per
# channel (shared by the two dispatcher processes), so the run is still sending when the
# signal comes: 40 leads, 80 touches in batches of 10.
WORKER_LEADS = 40
WORKERS = 2
CHUNK = Settings.model_fields["dispatch_chunk_size"].default  # touches marked `sending` at once
TICK = datetime.fromisoformat("2026-12-01T10:00:00+00:00")  # a Tuesday, inside the window
RUN = ["run", "--workers", str(WORKERS), "--now", TICK.isoformat()]
# Past the claim lease of the interrupted run's unsent claims (and their 30 s retry wait);
# the dispatch code is the same with or without a flow run.
RERUN = [
    "run",
    "--workers",
    "2",
    "--no-prefect",
    "--now",
    (TICK + timedelta(minutes=10)).isoformat(),
]
FAST = {"LEADOPS_SENDGRID_RATE_PER_SECOND": "1000", "LEADOPS_TWILIO_RATE_PER_SECOND": "1000"}


def rerun(env: dict[str, str]) -> None:
    again = subprocess.run(
        [LEADOPS, *RERUN], env=env | FAST, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSendGrid, FakeTwilio]]:
    sendgrid = FakeSendGrid(api_key=SENDGRID_KEY, validate_every=0)
    twilio = FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, validate_every=0)
    twilio.templates = {TEMPLATE_SID}
    sendgrid.start()
    twilio.start()
    yield sendgrid, twilio
    sendgrid.stop()
    twilio.stop()


def worker_project(tmp_path: Path, sendgrid: FakeSendGrid, twilio: FakeTwilio) -> dict[str, str]:
    """A migrated database with consenting leads, and the environment pointing at it."""
    provider_config(tmp_path / "config")
    engine = make_engine(f"sqlite:///{(tmp_path / 'data' / 'leadops.db').as_posix()}")
    upgrade(engine)
    seed_leads(engine, WORKER_LEADS, TICK)
    engine.dispose()
    env = provider_env(
        tmp_path,
        sendgrid,
        twilio,
        sendgrid_rate_per_second=10,
        twilio_rate_per_second=10,
        dispatch_batch_size=10,
    )
    return {k: v for k, v in env.items() if not k.startswith("PREFECT_")}


def interrupt(
    args: list[str],
    env: dict[str, str],
    fakes: tuple[FakeSendGrid, FakeTwilio],
    signum: int,
    *,
    group: bool,
) -> tuple[int, float, str]:
    """Start `leadops ARGS` in a process group of its own, send `signum` (to the group, or
    to the command alone) once a few messages went out; its exit code, seconds to stop
    and stderr."""
    process = subprocess.Popen(
        [LEADOPS, *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while sum(len(fake.log) for fake in fakes) < 6:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run sent nothing within 180 s"
            time.sleep(0.05)
        (os.killpg if group else os.kill)(process.pid, signum)
        sent_at = time.monotonic()
        _out, err = process.communicate(timeout=30)
        took = time.monotonic() - sent_at
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    # multiprocessing's resource tracker (started with the spawned dispatchers) ends by
    # itself once the command has exited: allow it a moment
    deadline = time.monotonic() + 2
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = group_members(process.pid)
    assert left == [], f"processes left behind: {[command_line(pid) for pid in left]}"
    return process.returncode, took, err


def assert_finished_once(tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]) -> None:
    """Every touch was sent exactly once: as the database says, and as the providers saw."""
    for fake in fakes:
        assert fake.duplicates() == {}
    accepted = {entry.touch_id for fake in fakes for entry in fake.log}
    engine = make_engine(f"sqlite:///{(tmp_path / 'data' / 'leadops.db').as_posix()}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, status FROM touches")).all()
    engine.dispose()
    assert len(rows) == 2 * WORKER_LEADS
    sent = {str(touch_id) for touch_id, status in rows if status == "sent"}
    # Nothing left claimed or pending. In doubt (ambiguous, never re-sent) may stay only what
    # a dispatcher process had marked `sending` when it was stopped: its chunk, when it could
    # not record within STOP_GRACE_SECONDS and was killed (seen on the suite's loaded cores:
    # 10 of 80; on an idle machine at most the sends on the wire).
    assert {status for _, status in rows} <= {"sent", "ambiguous"}
    in_doubt = len(rows) - len(sent)
    assert sent <= accepted and in_doubt <= WORKERS * CHUNK


def test_ctrl_c_in_run_with_workers_stops_them_and_marks_the_flow_run_crashed(
    tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio], prefect_db_template: Path
) -> None:
    env = worker_project(tmp_path, *fakes)
    seed_prefect_home(tmp_path / "data" / "prefect", prefect_db_template)

    code, took, err = interrupt(RUN, env, fakes, signal.SIGINT, group=True)

    assert code == 130, err
    assert took < STOP_WITHIN, f"run --workers 2 took {took:.1f} s to stop after Ctrl-C"
    assert "Traceback" not in err, err
    assert "interrupted: the tick stopped; its flow run is marked Crashed" in " ".join(err.split())
    partial = sum(len(fake.log) for fake in fakes)
    assert partial < 2 * WORKER_LEADS

    rerun(env)
    assert_finished_once(tmp_path, fakes)
    assert flow_runs(tmp_path / "data" / "prefect") == [["nurture-2026-12-01T10:00Z", "CRASHED"]]


@pytest.mark.parametrize(
    ("signum", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_signal_to_the_run_alone_stops_its_dispatcher_processes(
    tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio], signum: int, code: int, word: str
) -> None:
    """Only the command gets the signal (`kill -INT PID`, a Prefect worker's SIGTERM): it
    still stops its dispatcher processes at once instead of waiting for them."""
    env = worker_project(tmp_path, *fakes)

    returncode, took, err = interrupt([*RUN, "--no-prefect"], env, fakes, signum, group=False)

    assert returncode == code, err
    assert took < STOP_WITHIN, f"run --workers 2 took {took:.1f} s to stop after {signum!r}"
    assert "Traceback" not in err, err
    assert f"{word}: the tick stopped. Messages already sent are recorded" in " ".join(err.split())
    assert sum(len(fake.log) for fake in fakes) < 2 * WORKER_LEADS

    rerun(env)
    assert_finished_once(tmp_path, fakes)
