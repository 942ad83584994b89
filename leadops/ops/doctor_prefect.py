"""The doctor's Prefect checks: the API answers, what scheduled runs need (the work pool,
a live worker on it, every deployment of prefect.yaml deployed with an active schedule,
recent scheduled runs not all late, failed or crashed) and the fast path's task worker.
They read the Prefect REST API and change nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from leadops.ops.check import Check, Status


def check_prefect() -> Check:
    """The Prefect API named by PREFECT_API_URL answers (only when one is configured)."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return Check(
            "prefect api",
            Status.OK,
            "PREFECT_API_URL unset: CLI flows run on a temporary local server; schedules "
            "fire only on a Prefect server (docs/guides/operators.md, Deploy to Prefect)",
        )
    import requests

    try:
        response = requests.get(url.rstrip("/") + "/health", timeout=5)
        response.raise_for_status()
    except requests.RequestException as exc:
        return Check(
            "prefect api",
            Status.FAIL,
            f"{url} does not answer: {type(exc).__name__}",
            "start it: `prefect server start` (docs/guides/operators.md, Deploy to Prefect)",
        )
    return Check("prefect api", Status.OK, f"{url} answers")


WORK_POOL = "leadops"
RECENT_RUNS = 5  # scheduled runs looked at per deployment
BAD_RUN_STATES = {"Late", "Failed", "Crashed"}
HEARTBEAT_MISSES = 3  # a worker silent for this many heartbeat intervals is not live
DEPLOY_FIX = "deploy them: `prefect --no-prompt deploy --all` (or `leadops deploy`) in LEADOPS_HOME"


def project_deployments(prefect_yaml: Path) -> list[tuple[str, str]]:
    """(name, entrypoint) of every deployment in a prefect.yaml."""
    import yaml

    data = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8")) or {}
    return [(str(d["name"]), str(d["entrypoint"])) for d in data.get("deployments") or []]


def _ago(now: datetime, when: str | None) -> str:
    if not when:
        return "never"
    seconds = (now - datetime.fromisoformat(when)).total_seconds()
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


Call = Callable[..., Any]  # (method, path, body=None) -> the response's JSON


def _caller(api: str) -> Call:
    import requests

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.request(method, f"{api}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    return call


def check_schedules(api_url: str, prefect_yaml: Path, now: datetime) -> list[Check]:
    """What scheduled runs need: the work pool, a live worker on it, every deployment of
    prefect.yaml deployed with an active schedule, and recent scheduled runs that are not
    all late, failed or crashed. Reads the Prefect REST API; changes nothing."""
    call = _caller(api_url.rstrip("/"))
    pool = _check_work_pool(call, api_url)
    if pool is None:
        return [
            Check(
                "work pool",
                Status.FAIL,
                f"work pool `{WORK_POOL}` does not exist on {api_url}",
                f"`prefect work-pool create --type process {WORK_POOL}`, then {DEPLOY_FIX}",
            )
        ]
    checks = [pool, _check_workers(call, now)]
    if not prefect_yaml.is_file():
        checks.append(
            Check(
                "deployments",
                Status.WARN,
                f"no {prefect_yaml}: cannot tell which deployments should exist",
                "run `leadops doctor` in the project folder, or set LEADOPS_HOME",
            )
        )
        return checks
    return checks + _check_deployments(call, prefect_yaml, now)


def _check_work_pool(call: Call, api_url: str) -> Check | None:
    """The work pool is not paused; None when it does not exist."""
    import requests

    try:
        pool = call("GET", f"/work_pools/{WORK_POOL}")
    except requests.HTTPError as exc:
        if exc.response is None or exc.response.status_code != 404:
            raise
        return None
    if pool.get("is_paused"):
        return Check(
            "work pool",
            Status.FAIL,
            f"work pool `{WORK_POOL}` is paused: no run starts",
            f"`prefect work-pool resume {WORK_POOL}` (or resume it in the UI, Work Pools)",
        )
    return Check("work pool", Status.OK, f"`{WORK_POOL}` ({pool.get('type')})")


def _check_workers(call: Call, now: datetime) -> Check:
    """A worker on the pool has sent a heartbeat within HEARTBEAT_MISSES intervals."""
    workers = call("POST", f"/work_pools/{WORK_POOL}/workers/filter", {"limit": 50})
    live, last = [], None
    for worker in workers:
        beat = worker.get("last_heartbeat_time")
        if beat and (last is None or beat > last.get("last_heartbeat_time", "")):
            last = worker
        window = HEARTBEAT_MISSES * float(worker.get("heartbeat_interval_seconds") or 30)
        if (
            beat
            and worker.get("status") != "OFFLINE"
            and (now - datetime.fromisoformat(beat)).total_seconds() <= window
        ):
            live.append(worker["name"])
    if live:
        return Check("worker", Status.OK, f"live on `{WORK_POOL}`: {', '.join(live)}")
    seen = (
        f"; last heartbeat {_ago(now, last['last_heartbeat_time'])} from {last['name']}"
        if last
        else "; none has ever connected"
    )
    return Check(
        "worker",
        Status.FAIL,
        f"no live worker on work pool `{WORK_POOL}`: scheduled runs wait, then go Late" + seen,
        f"start one in LEADOPS_HOME with the same LEADOPS_* settings: "
        f"`prefect worker start --pool {WORK_POOL}`",
    )


def _check_deployments(call: Call, prefect_yaml: Path, now: datetime) -> list[Check]:
    """Every deployment of prefect.yaml is deployed, then each one's schedule and runs."""
    checks: list[Check] = []
    wanted = project_deployments(prefect_yaml)
    deployed = call(
        "POST",
        "/deployments/filter",
        {"deployments": {"name": {"any_": sorted({n for n, _ in wanted})}}, "limit": 200},
    )
    flows = {
        f["id"]: f["name"]
        for f in call(
            "POST", "/flows/filter", {"flows": {"id": {"any_": [d["flow_id"] for d in deployed]}}}
        )
    }
    for name, entrypoint in wanted:
        matches = [d for d in deployed if d["name"] == name and d.get("entrypoint") == entrypoint]
        if not matches:
            checks.append(
                Check(
                    f"deployment {name}",
                    Status.FAIL,
                    f"`{name}` ({entrypoint}) from prefect.yaml is not deployed",
                    DEPLOY_FIX,
                )
            )
            continue
        for deployment in matches:
            checks += _deployment_checks(call, deployment, flows, now)
    return checks


def _deployment_checks(
    call: Call, deployment: dict[str, Any], flows: dict[str, str], now: datetime
) -> list[Check]:
    full = f"{flows.get(deployment['flow_id'], '?')}/{deployment['name']}"
    schedules = deployment.get("schedules") or []
    active = [s for s in schedules if s.get("active")]
    if deployment.get("paused"):
        return [
            Check(
                f"deployment {full}",
                Status.FAIL,
                f"`{full}` is paused: its schedule creates no runs",
                f"resume it in the UI (Deployments, {full}, the toggle beside its name)",
            )
        ]
    if not schedules:
        return [
            Check(
                f"deployment {full}",
                Status.FAIL,
                f"`{full}` has no schedule on the server, so no run is created",
                DEPLOY_FIX,
            )
        ]
    if not active:
        resume = "; ".join(
            f"`prefect deployment schedule resume '{full}' {s['id']}`" for s in schedules
        )
        return [
            Check(
                f"deployment {full}",
                Status.FAIL,
                f"`{full}`: its schedule is paused, so no run is created",
                f"{resume} (or the schedule's toggle in the UI, Deployments, {full})",
            )
        ]
    described = ", ".join(_describe(s["schedule"]) for s in active)
    runs = call(
        "POST",
        "/flow_runs/filter",
        {
            "flow_runs": {
                "deployment_id": {"any_": [deployment["id"]]},
                "expected_start_time": {"before_": now.isoformat()},
            },
            "sort": "EXPECTED_START_TIME_DESC",
            "limit": RECENT_RUNS,
        },
    )
    states = [(r.get("state") or {}).get("name", "?") for r in runs]
    checks = [Check(f"deployment {full}", Status.OK, f"active schedule: {described}")]
    if runs and all(state in BAD_RUN_STATES for state in states):
        counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
        checks.append(
            Check(
                f"runs {full}",
                Status.FAIL,
                f"the last {len(runs)} scheduled runs all went wrong ({counts})",
                "late: no worker took them (see the worker check); failed or crashed: open "
                "the run's logs in the UI (Runs) and fix what they name",
            )
        )
    else:
        detail = f"last {len(runs)}: {', '.join(states)}" if runs else "no run due yet"
        checks.append(Check(f"runs {full}", Status.OK, detail))
    return checks


def _describe(schedule: dict[str, Any]) -> str:
    if schedule.get("cron"):
        return f"cron {schedule['cron']} {schedule.get('timezone') or 'UTC'}"
    if schedule.get("interval") is not None:
        return f"every {schedule['interval']:.0f} s"
    return str(schedule.get("rrule", "schedule"))


# The fast path's task (flows/handoff.py): Prefect's task key is the function's name, a
# dash and a hash of its code, so `leadops serve` and the task worker must run one version.
HANDOFF_TASK = "handoff_task-"
HANDOFF_RUNS = "hand-off-"
STUCK_SECONDS = 60  # a submitted hand-off not started by then has no worker to take it
HANDOFF_FIX = (
    "start `leadops handoff-worker` in LEADOPS_HOME with the same LEADOPS_* settings and "
    "PREFECT_API_URL as `leadops serve`; after an upgrade restart both"
)


def check_fast_path(mode: str, api_url: str | None, now: datetime) -> Check:
    """Where hand-raises go at once (LEADOPS_FAST_PATH resolved, see
    leadops.ops.handoff.fast_path_mode); with Prefect, that a task worker serves the
    hand-off task and no submitted hand-off has waited past STUCK_SECONDS."""
    if mode == "off":
        return Check(
            "fast path",
            Status.WARN,
            "LEADOPS_FAST_PATH=off: a hand-raise waits for the every-minute escalate pass",
            "unset LEADOPS_FAST_PATH (auto) to notify reps within seconds",
        )
    if mode == "thread":
        return Check(
            "fast path",
            Status.OK,
            "`leadops serve` runs the pass of each hand-raise in a thread (no PREFECT_API_URL)",
        )
    if not api_url:
        return Check(
            "fast path",
            Status.FAIL,
            "LEADOPS_FAST_PATH=prefect but PREFECT_API_URL is not set: `leadops serve` refuses "
            "to start",
            "set PREFECT_API_URL, or LEADOPS_FAST_PATH=auto",
        )
    call = _caller(api_url.rstrip("/"))
    workers = call("POST", "/task_workers/filter", {})
    live = [w["identifier"] for w in workers if any(HANDOFF_TASK in k for k in w["task_keys"])]
    waiting = call(
        "POST",
        "/task_runs/filter",
        {
            "task_runs": {
                "name": {"like_": HANDOFF_RUNS},
                "state": {"type": {"any_": ["SCHEDULED"]}},
                "expected_start_time": {
                    "before_": (now - timedelta(seconds=STUCK_SECONDS)).isoformat()
                },
            },
            "limit": 100,
        },
    )
    # Not a failure: the every-minute pass still escalates, within a minute or two.
    if not live:
        return Check(
            "fast path",
            Status.WARN,
            "no task worker serves the hand-off task: hand-raises wait for the every-minute "
            f"escalate pass ({len(waiting)} submitted hand-offs waiting)",
            HANDOFF_FIX,
        )
    if waiting:
        return Check(
            "fast path",
            Status.WARN,
            f"{len(waiting)} submitted hand-offs waited over {STUCK_SECONDS} s although a task "
            "worker is live: it serves another version of flows/handoff.py",
            HANDOFF_FIX,
        )
    return Check("fast path", Status.OK, f"hand-off task worker live: {', '.join(live)}")
