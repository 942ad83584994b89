"""The local PostgreSQL server as the scale bench watches and disturbs it: its backends'
CPU, its checkpoints, a restart, waiting for it, cutting connections."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine


class BackendCPU:
    """CPU (user + system, s) of this database's PostgreSQL backends from now on, from
    /proc/<pid>/stat sampled every 0.1 s (the server runs on this machine): a backend's
    last 0.1 s before it exits may be missed. Backends open already count from now."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: dict[int, float] = {}
        self.start: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        query = sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as conn:
            while True:
                for pid in conn.execute(query).scalars():
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    cpu = (int(fields[11]) + int(fields[12])) / tick
                    self.start.setdefault(pid, cpu)
                    self.seen[pid] = cpu
                conn.rollback()
                if self.done.wait(0.1):
                    return

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return sum(cpu - self.start[pid] for pid, cpu in self.seen.items())


def checkpoints(engine: Engine) -> int:
    """Checkpoints the server has made so far (timed and requested): writing a million
    leads' rows fills the WAL and makes some, which slow every write after them."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
        ).scalar_one()
    return int(row)


def restart_postgres() -> str | None:
    """Restart the local cluster; None when done, else why it could not be."""
    tool = shutil.which("pg_ctlcluster")
    clusters = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if tool is None or not clusters:
        return "pg_ctlcluster or /etc/postgresql not found"
    done = subprocess.run(
        [tool, "--skip-systemctl-redirect", clusters[-1], "main", "restart"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"pg_ctlcluster failed: {done.stderr.strip()[:300]}"
    return None


def wait_for(engine: Engine, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
            return
        except sa.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def terminate_backends(engine: Engine) -> str | None:
    """Cut every other connection to this database (a restart without the restart)."""
    with engine.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    return "connections cut with pg_terminate_backend instead (--no-restart)"
