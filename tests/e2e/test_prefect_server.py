"""The deployment path as operators run it: a real `prefect server`, prefect.yaml
deployed onto a process work pool, a worker, and a nurture run seen through the API.

Select or skip it with `-m prefect_server` / `-m "not prefect_server"`. It is skipped,
with the reason, where the server cannot start. The stack is shared by the session
(tests/e2e/conftest.py).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from leadops.ops.prefect_stack import LocalStack
from tests.e2e.conftest import REAL_STACK

pytestmark = REAL_STACK


def test_deploy_and_run_nurture_on_a_prefect_server(prefect_stack: LocalStack) -> None:
    stack = prefect_stack
    project = stack.project
    deployment = stack.api("GET", "/deployments/name/nurture/hourly")
    assert deployment["work_pool_name"] == "leadops"
    assert deployment["global_concurrency_limit"]["limit"] == 1
    assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 * * * *"]
    assert {"leadops", "nurture"} <= set(deployment["tags"])

    # A tick ten days after the stack's leads were imported (with the real clock): whatever
    # other tests' runs sent before, its steps are due now.
    tick = (datetime.now(UTC) + timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
    run_id = stack.run_deployment("nurture/hourly", {"now": tick.isoformat()})
    run = stack.wait_for_run(run_id, timeout=75)
    assert run["state"]["type"] == "COMPLETED", stack.log_tail("worker") + "\n" + str(run["state"])
    assert run["name"] == f"nurture-{tick:%Y-%m-%dT%H:%M}Z"

    artifacts = stack.api(
        "POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}
    )
    by_key = {a["key"]: a for a in artifacts if a["key"]}
    assert {"nurture-tick", "nurture-run", "nurture-summary", "nurture-dispatch"} <= set(by_key)
    assert by_key["nurture-dispatch"]["type"] == "progress"
    assert by_key["nurture-dispatch"]["data"] == 100.0
    run_table = by_key["nurture-run"]["data"]
    assert '"sent"' in run_table and '"planned"' in run_table
    # the next 14 days as a table, and the campaign calendar's state in the tick summary
    assert by_key["nurture-forecast"]["type"] == "table"
    assert '"campaign"' in by_key["nurture-forecast"]["data"]
    assert "paused campaigns: none" in by_key["nurture-tick"]["data"]

    # Logs are shipped in batches; the last ones may land just after the final state.
    names: set[str] = set()
    deadline = time.monotonic() + 30
    while "leadops.nurture" not in names and time.monotonic() < deadline:
        time.sleep(1)
        logs = stack.api("POST", "/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}})
        names = {entry["name"] for entry in logs}
    assert {"leadops.nurture"} <= names, names
    assert list((project / "data" / "outbox").rglob("t*.*")), "the run sent nothing"
