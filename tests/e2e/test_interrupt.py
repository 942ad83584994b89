"""Ctrl-C in `leadops simulate`: a real SIGINT to the command's process group, as a
terminal sends it. The command exits within 5 s with a clear message, leaves no process
behind, its flow run ends Crashed (read through the Prefect API of the command's own
Prefect home), and running it again finishes the work with nothing sent twice."""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from leadops.db import make_engine
from tests.conftest import ROOT

pytestmark = pytest.mark.prefect

LEADOPS = str(Path(sys.executable).with_name("leadops"))
SAMPLE_ROWS = 80
SIMULATE = ["simulate", "--days", "30", "--start", "2026-12-01T08:00Z"]
READ_RUNS = """
import asyncio, json
from prefect.client.orchestration import get_client

async def main():
    async with get_client() as client:
        runs = await client.read_flow_runs()
    print(json.dumps([[r.name, r.state_type.value] for r in runs]))

asyncio.run(main())
"""


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


def sent_messages(outbox: Path) -> Counter[tuple[str, str, str, str]]:
    """(lead, campaign, step, channel) of every message file in the outbox."""
    seen: Counter[tuple[str, str, str, str]] = Counter()
    for path in outbox.rglob("t*.eml"):
        mail = email.message_from_bytes(path.read_bytes())
        campaign, step = str(mail["X-Leadops-Campaign"]).split("/")
        seen[(str(mail["X-Leadops-Lead-Id"]), campaign, step, "email")] += 1
    for path in outbox.rglob("t*.json"):
        doc = json.loads(path.read_text())
        seen[(str(doc["lead_id"]), doc["campaign"], doc["step"], "whatsapp")] += 1
    return seen


def test_ctrl_c_in_simulate_stops_at_once_and_a_rerun_sends_nothing_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
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
    assert took < 5, f"simulate took {took:.1f} s to stop after Ctrl-C"
    assert "interrupted: the simulation stopped" in err
    assert "run the same command to finish the work" in " ".join(err.split())
    assert group_members(process.pid) == [], "processes left behind after Ctrl-C"
    partial = sent_messages(outbox)
    assert partial and max(partial.values()) == 1

    # The command's own Prefect home (in the data folder) recorded the run as Crashed.
    runs = subprocess.run(
        [sys.executable, "-c", READ_RUNS],
        env=env | {"PREFECT_HOME": str(data / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert json.loads(runs.stdout) == [["simulate-2026-12-01T08:00Z", "CRASHED"]]

    again = leadops(*SIMULATE)
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
