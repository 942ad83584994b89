"""The scheduler itself fires every deployment of prefect.yaml on a real stack.

Each deployment read from prefect.yaml (a deployment added later is covered too) is
deployed again as a copy with a 30-second interval schedule. No run is started by hand:
the server's scheduler must create runs of every copy, and the process worker must
complete one of each. Any error in the server's log (a scheduler pass that fails, as
with Prefect 3.8.8 on SQLAlchemy 2.1) fails the test with the log lines.
"""

from __future__ import annotations

import re
import time
from typing import Any

import yaml

from leadops.ops.prefect_stack import LocalStack
from tests.e2e.conftest import REAL_STACK

pytestmark = REAL_STACK

# Long enough that a copy's first run has completed (and the copy is paused, which
# removes its later runs) before its second falls due: each copy runs about once, which
# is the proof, instead of two or three runs each on a busy machine.
INTERVAL_SECONDS = 30
DERIVED_FILE = "prefect.scheduler-test.yaml"
WAIT_SECONDS = 120
RECORD_START = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| ")


def scheduler_errors(stack: LocalStack) -> list[str]:
    """Error records of the server's log (each with its traceback) that concern scheduling.

    Other errors (e.g. a heartbeat write refused while the server's SQLite database is
    busy, which Prefect retries) are not the scheduler's and do not fail the test.
    """
    records: list[str] = []
    for line in stack.log_tail("server", lines=1_000_000).splitlines():
        if RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return [
        record
        for record in records
        if ("| ERROR" in record or "Traceback" in record)
        and ("schedul" in record.lower() or "bulk DML" in record)
    ]


def derive_interval_copies(source: dict[str, Any]) -> dict[str, Any]:
    """prefect.yaml with every deployment renamed `<name>-every-30s` on a short interval."""
    copies = []
    for deployment in source["deployments"]:
        copy = dict(deployment)
        copy["name"] = f"{deployment['name']}-every-{INTERVAL_SECONDS}s"
        copy["schedules"] = [{"interval": INTERVAL_SECONDS, "timezone": "UTC"}]
        copies.append(copy)
    return {key: value for key, value in source.items() if key != "deployments"} | {
        "deployments": copies
    }


def test_the_scheduler_creates_runs_of_every_deployment_and_the_worker_completes_them(
    prefect_stack: LocalStack,
) -> None:
    stack = prefect_stack
    source = yaml.safe_load((stack.project / "prefect.yaml").read_text())
    derived = derive_interval_copies(source)
    names = [d["name"] for d in derived["deployments"]]
    assert len(names) >= 5, names  # intake, nurture, rescore, escalate, report
    (stack.project / DERIVED_FILE).write_text(yaml.safe_dump(derived, sort_keys=False))
    stack.deploy(DERIVED_FILE)
    deployments = stack.api(
        "POST", "/deployments/filter", json={"deployments": {"name": {"any_": names}}}
    )
    by_id = {d["id"]: d["name"] for d in deployments}
    assert sorted(by_id.values()) == sorted(names)
    try:
        completed: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + WAIT_SECONDS
        while len(completed) < len(names):
            errors = scheduler_errors(stack)
            assert not errors, "the Prefect server's scheduler failed:\n" + errors[-1][-4000:]
            runs = stack.api(
                "POST",
                "/flow_runs/filter",
                json={"flow_runs": {"deployment_id": {"any_": list(by_id)}}},
            )
            for run in runs:
                # every run here comes from the scheduler: none is started by hand
                assert run["auto_scheduled"], run
                state = run["state"]["type"]
                name = by_id[run["deployment_id"]]
                assert state not in ("FAILED", "CRASHED"), (
                    f"{name}: run {run['name']} ended {state}: {run['state'].get('message')}\n"
                    + stack.log_tail("worker")
                )
                if state == "COMPLETED" and name not in completed:
                    completed[name] = run
                    # one run each is the proof; pausing the copy spares the busy machine
                    stack.api(
                        "PATCH", f"/deployments/{run['deployment_id']}", json={"paused": True}
                    )
            if time.monotonic() > deadline:
                created = sorted({by_id[r["deployment_id"]] for r in runs})
                raise AssertionError(
                    f"after {WAIT_SECONDS} s the scheduler had created runs of {created} and "
                    f"the worker completed {sorted(completed)} of {sorted(names)}\n"
                    + stack.log_tail("worker")
                    + "\n"
                    + stack.log_tail("server")
                )
            time.sleep(2)
    finally:
        for deployment_id in by_id:  # its scheduled runs go with it
            stack.api("DELETE", f"/deployments/{deployment_id}")
    assert not scheduler_errors(stack)
