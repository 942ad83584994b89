"""`leadops doctor` against the real shared Prefect stack: it passes when schedules can
fire, and names the problem and its fix when a schedule is paused or the worker stops."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from leadops.ops.prefect_stack import LocalStack
from tests.e2e.conftest import REAL_STACK

pytestmark = REAL_STACK

LEADOPS = str(Path(sys.executable).with_name("leadops"))


def doctor(stack: LocalStack) -> tuple[int, dict[str, dict[str, Any]]]:
    done = subprocess.run(
        [LEADOPS, "doctor", "--format", "json"],
        env=stack.env,
        cwd=stack.project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, {row["check"]: row for row in json.loads(done.stdout)}


def doctor_until(stack: LocalStack, code: int, timeout: float = 45) -> dict[str, dict[str, Any]]:
    """Run doctor until it exits `code` (a worker's heartbeat takes seconds to show)."""
    deadline = time.monotonic() + timeout
    while True:
        rc, checks = doctor(stack)
        if rc == code:
            return checks
        if time.monotonic() > deadline:
            failing = {k: v for k, v in checks.items() if v["status"] == "fail"}
            raise AssertionError(f"doctor exited {rc}, not {code}: {failing}")
        time.sleep(2)


def test_doctor_checks_what_scheduled_runs_need(prefect_stack: LocalStack) -> None:
    stack = prefect_stack
    checks = doctor_until(stack, 0)
    assert checks["prefect api"]["status"] == "ok"
    assert checks["work pool"]["status"] == "ok"
    assert checks["worker"]["status"] == "ok"
    for name in ("nurture/hourly", "report/daily", "intake/every-15-minutes"):
        assert checks[f"deployment {name}"]["status"] == "ok"
    assert "cron 0 * * * *" in checks["deployment nurture/hourly"]["detail"]

    deployment = stack.api("GET", "/deployments/name/nurture/hourly")
    schedule_id = deployment["schedules"][0]["id"]
    path = f"/deployments/{deployment['id']}/schedules/{schedule_id}"
    stack.api("PATCH", path, json={"active": False})
    try:
        rc, checks = doctor(stack)
        assert rc == 1
        paused = checks["deployment nurture/hourly"]
        assert paused["status"] == "fail" and "paused" in paused["detail"]
        assert f"prefect deployment schedule resume 'nurture/hourly' {schedule_id}" in paused["fix"]
        assert checks["deployment report/daily"]["status"] == "ok"
    finally:
        stack.api("PATCH", path, json={"active": True})
    doctor_until(stack, 0)

    stack.stop_process("worker")
    try:
        checks = doctor_until(stack, 1)
        worker = checks["worker"]
        assert worker["status"] == "fail"
        assert "no live worker on work pool `leadops`" in worker["detail"]
        assert "last heartbeat" in worker["detail"]
        assert "prefect worker start --pool leadops" in worker["fix"]
    finally:
        stack.start_worker()
    doctor_until(stack, 0)
