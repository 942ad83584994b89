"""On the real stack: a signed demo request posted to `leadops serve` is escalated and its
rep notified by the fast path's task worker, with the every-minute escalate schedule (and
the rescore schedule, which escalates too) paused, and the run is in Prefect."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import requests
import sqlalchemy as sa

from leadops.core.db import make_engine
from leadops.engagement.site import site_signature
from leadops.models import ESCALATION_NOTIFICATIONS, ESCALATIONS, LEADS
from leadops.ops.check import Status
from leadops.ops.doctor_prefect import check_fast_path
from leadops.ops.prefect_stack import LocalStack
from tests.e2e.conftest import REAL_STACK, SITE_SECRET

pytestmark = REAL_STACK

PAUSED = ("escalate/every-minute", "rescore/every-5-minutes")
WAIT_SECONDS = 30
COMPLETED = {"type": {"any_": ["COMPLETED"]}}


def _runs(stack: LocalStack, ids: list[str], **flow_runs: Any) -> list[dict[str, Any]]:
    query = {"flow_runs": {"deployment_id": {"any_": ids}, **flow_runs}}
    runs: list[dict[str, Any]] = stack.api("POST", "/flow_runs/filter", json=query)
    return runs


def test_a_demo_request_reaches_the_rep_through_the_task_worker_without_the_schedule(
    prefect_stack: LocalStack, fast_path_app: str
) -> None:
    stack = prefect_stack
    ids = [stack.api("GET", f"/deployments/name/{name}")["id"] for name in PAUSED]
    for deployment_id in ids:
        stack.api("POST", f"/deployments/{deployment_id}/pause_deployment")
    engine = make_engine(f"sqlite:///{stack.project / 'data' / 'leadops.db'}")
    try:
        deadline = time.monotonic() + 90  # a run started before the pause finishes first
        while _runs(stack, ids, state={"type": {"any_": ["PENDING", "RUNNING"]}}):
            assert time.monotonic() < deadline, "escalate/rescore runs did not finish"
            time.sleep(1)
        with engine.connect() as connection:
            escalated = sa.select(ESCALATIONS.c.lead_id)
            lead_id, email = connection.execute(
                sa.select(LEADS.c.id, LEADS.c.email)
                .where(LEADS.c.email.is_not(None), LEADS.c.id.not_in(escalated))
                .order_by(LEADS.c.id)
                .limit(1)
            ).one()
        posted = datetime.now(UTC)
        body = json.dumps(
            {
                "id": f"stack-demo-{lead_id}",
                "type": "demo_requested",
                "email": email,
                "occurred_at": posted.isoformat(),
            }
        ).encode()
        response = requests.post(
            fast_path_app + "/events/site",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Leadops-Signature": site_signature(SITE_SECRET, body),
            },
            timeout=10,
        )
        answered = time.monotonic()
        assert response.status_code == 202, response.text
        n, e = ESCALATION_NOTIFICATIONS.c, ESCALATIONS.c
        notifications = ESCALATION_NOTIFICATIONS.join(ESCALATIONS, n.escalation_id == e.id)
        sent: list[Any] = []
        while not sent:
            assert time.monotonic() - answered < WAIT_SECONDS, (
                stack.log_tail("handoff-worker") + "\n" + stack.log_tail("app")
            )
            time.sleep(0.5)
            with engine.connect() as connection:
                sent = connection.execute(
                    sa.select(e.trigger, n.role, n.sent_at)
                    .select_from(notifications)
                    .where(e.lead_id == lead_id, n.status == "sent")
                ).all()
        assert {trigger for trigger, _, _ in sent} == {"demo_requested"}
        # No escalate or rescore flow run started since the event came in.
        assert _runs(stack, ids, start_time={"after_": posted.isoformat()}) == []
        done: list[dict[str, Any]] = []
        while not done:  # its final state is recorded just after the pass returns
            assert time.monotonic() - answered < WAIT_SECONDS, stack.log_tail("handoff-worker")
            time.sleep(0.5)
            done = [
                run
                for run in stack.api(
                    "POST",
                    "/task_runs/filter",
                    json={"task_runs": {"name": {"like_": "hand-off-"}, "state": COMPLETED}},
                )
                if datetime.fromisoformat(run["start_time"]) >= posted
            ]
        assert done[0]["flow_run_id"] is None  # a background task, not a flow run
        doctor = check_fast_path("prefect", stack.api_url, datetime.now(UTC))
        assert (doctor.status, doctor.detail[:25]) == (Status.OK, "hand-off task worker live")
    finally:
        engine.dispose()
        for deployment_id in ids:
            stack.api("POST", f"/deployments/{deployment_id}/resume_deployment")
