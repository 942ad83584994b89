"""The fast path: a hand-raise that reaches `leadops serve` is escalated and its rep
notified within seconds, not at the next every-minute pass.

After the web app has committed an event that may raise a hand (a site demo request or
booking, a hand-raise form, an inbound reply) it kicks a `Kicker`, which starts one pass
on a background thread, off the request's path: the provider gets its answer first. The
pass is `fast_pass`, the every-minute flow's own functions (apply the inbox, escalate what
became sales-ready, send the notifications). Where it runs (LEADOPS_FAST_PATH, see
`fast_path_mode`): a Prefect background task served by `leadops handoff-worker`
(flows/handoff.py) when PREFECT_API_URL is set, else the thread itself.

The every-minute escalate pass stays the safety net: a kick that fails (the Prefect server
unreachable, the task worker stopped) loses nothing, the event waits in the inbox for it.
The two may run at once: inbox batches are taken under a lock (SKIP LOCKED on PostgreSQL,
SQLite's write lock), escalations are UNIQUE per lead, trigger and key, notifications are
claimed before they are sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal

from leadops.core.clock import SystemClock
from leadops.core.settings import Settings
from leadops.deadletters import describe
from leadops.runtime import Runtime, build_runtime
from leadops.sales.handoff import HandoffReport, apply_inbox_and_escalate
from leadops.sales.notify import deliver_notifications

log = logging.getLogger("leadops.handoff")

Mode = Literal["prefect", "thread", "off"]
# Kicks within this many seconds of a submission are one more submission: a burst of
# events starts a pass or two, not one pass each.
SPACING_SECONDS = 1.0


def fast_path_mode(settings: Settings, environ: Mapping[str, str]) -> Mode:
    """Where the fast path runs: LEADOPS_FAST_PATH, `auto` resolved by PREFECT_API_URL."""
    if settings.fast_path != "auto":
        return settings.fast_path
    return "prefect" if environ.get("PREFECT_API_URL") else "thread"


def fast_pass(runtime: Runtime, now: datetime) -> HandoffReport:
    """One fast pass: apply the pending webhook events, escalate the leads they made
    sales-ready and send the rep notifications that are due (the every-minute pass's
    first and last steps; its SQL scan and SLA check stay there). Nothing pending: two
    queries."""
    escalation = runtime.require_escalation()
    runtime.nurture()  # applying the inbox re-segments: campaigns and segments must load
    report = apply_inbox_and_escalate(runtime, escalation, now)
    if report.notify is None:  # nothing escalated here: send what another pass left due
        report.notify = deliver_notifications(escalation, now)
    return report


def run_fast_pass(settings: Settings) -> HandoffReport:
    """`fast_pass` now, on a runtime of its own (the config as it is now on disk)."""
    runtime = build_runtime(settings)
    try:
        report = fast_pass(runtime, SystemClock().now())
    finally:
        runtime.dispose()
    log.info(
        "fast path: %d events applied, %d escalated, %d notifications sent",
        report.events,
        report.escalated,
        report.notify.sent if report.notify else 0,
    )
    return report


class Kicker:
    """Calls `submit` on a background thread after `kick()`, coalescing: kicks that arrive
    while it runs, or within `spacing` seconds after, make one more call.

    `kick()` never blocks and never raises. A failing `submit` is logged once, as one
    line, until a call succeeds again (then that is logged): the events stay in the inbox
    and the every-minute pass takes them.
    """

    def __init__(
        self, submit: Callable[[], object], *, name: str, spacing: float = SPACING_SECONDS
    ) -> None:
        self._submit = submit
        self.name = name
        self._spacing = spacing
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.calls = 0
        self.failures = 0

    def kick(self) -> None:
        """Ask for one more call (soon, on the background thread)."""
        self._wanted.set()
        with self._lock:
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(
                    target=self._run, name=f"leadops-{self.name}", daemon=True
                )
                self._thread.start()

    def close(self, timeout: float = 10) -> None:
        """Stop the background thread (a call under way finishes first)."""
        self._stopped.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopped.is_set():
                return
            self._wanted.clear()
            started = time.monotonic()
            self._call()
            self._stopped.wait(max(0.0, self._spacing - (time.monotonic() - started)))

    def _call(self) -> None:
        try:
            self._submit()
        except Exception as exc:
            self.failures += 1
            if not self._failing:
                self._failing = True
                log.warning(
                    "fast path: %s failed: %s; the events are kept and the every-minute "
                    "escalate pass takes them (further failures are not logged until it "
                    "works again)",
                    self.name,
                    describe(exc),
                )
            return
        self.calls += 1
        if self._failing:
            self._failing = False
            log.warning("fast path: %s works again", self.name)
