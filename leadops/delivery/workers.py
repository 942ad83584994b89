"""Several dispatcher processes sharing one database and the provider limits.

`run_workers` (`leadops run --workers N`) starts N processes (spawn), each a Dispatcher
with its own engine, channels and claim tokens (see leadops.delivery.dispatch for how
claims keep two workers off one row), gives each its share of the provider rates and
concurrency, and merges their reports. Each process builds its parts with the builder
the caller hands down (`leadops.runtime.worker_runtime`: this layer cannot import the
runtime), so they are loaded and checked as everywhere else.

Interrupted (Ctrl-C, SIGTERM, or its parent gone), `run_workers` stops each process with
SIGTERM: sends not started are cancelled (back to `pending`), those on the wire finish
and every outcome is recorded; a process still running after STOP_GRACE_SECONDS is
killed, and the rows it left `claimed` or `sending` are resolved by the lease rules,
never re-sent while in doubt.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime
from multiprocessing import connection as mp_connection
from multiprocessing.connection import Connection as PipeEnd
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from leadops.core.clock import clock_for
from leadops.core.interrupts import signals_held
from leadops.core.settings import Settings
from leadops.delivery.campaigns import StoredCampaigns
from leadops.delivery.dispatch import Dispatcher, ProgressCallback
from leadops.delivery.outcomes import DispatchReport, log_summary
from leadops.delivery.render import Renderer
from leadops.providers.base import ChannelSender

log = logging.getLogger("leadops.dispatch")
# The line each dispatcher process logs when done, under the name an in-process tick uses.
summary_log = logging.getLogger("leadops.nurture")


def worker_settings(settings: Settings, workers: int) -> Settings:
    """One worker's share of the provider limits: rates and concurrency are totals."""
    if workers == 1:
        return settings
    return settings.model_copy(
        update={
            "dispatch_workers": 1,
            "sendgrid_rate_per_second": settings.sendgrid_rate_per_second / workers,
            "twilio_rate_per_second": settings.twilio_rate_per_second / workers,
            "sendgrid_concurrency": max(1, math.ceil(settings.sendgrid_concurrency / workers)),
            "twilio_concurrency": max(1, math.ceil(settings.twilio_concurrency / workers)),
        }
    )


class WorkerParts(Protocol):
    """What one dispatcher process sends with (`leadops.runtime.Runtime` is this)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def renderer(self) -> Renderer: ...

    @property
    def channels(self) -> Mapping[str, ChannelSender]: ...

    @property
    def stored(self) -> StoredCampaigns: ...

    def dispose(self) -> None: ...


# Builds a dispatcher process's parts from its share of the settings, loaded and checked
# (a bad config fails as a nurture tick's does). It is pickled into each process, so it
# must be a module-level function: leadops.runtime.worker_runtime.
WorkerBuilder = Callable[[Settings], WorkerParts]


def dispatch_worker(
    settings: Settings, at: datetime | None, build: WorkerBuilder
) -> DispatchReport:
    """One dispatcher process: its parts built by `build`, its own Dispatcher and claim
    tokens; what it sends is everything due at `at` (None: now)."""
    parts = build(settings)
    try:
        clock = clock_for(at)
        dispatcher = Dispatcher(
            parts.engine,
            channels=parts.channels,
            renderer=parts.renderer,
            settings=parts.settings,
            clock=clock,
            stored=parts.stored,
        )
        report = dispatcher.run()
        log_summary(summary_log, clock.now(), report)
        return report
    finally:
        parts.dispose()


def check_builder(build: WorkerBuilder) -> None:
    """Fail in the caller, with the reason, when `build` cannot reach a spawned process."""
    try:
        pickle.dumps(build)
    except Exception as exc:
        raise TypeError(
            f"the dispatcher worker builder {build!r} cannot be passed to a worker process "
            f"({exc}); pass a module-level function such as leadops.runtime.worker_runtime"
        ) from exc


STOP_GRACE_SECONDS = 2.0  # after SIGTERM, for a dispatcher process to record and exit


class WorkerStopped(BaseException):
    """Raised in a dispatcher process by SIGTERM: it stops sending and records what it knows."""


class WorkerFailed(RuntimeError):
    """A dispatcher process ended without a report (it was stopped, killed or crashed)."""


class _RemoteTraceback(Exception):
    """The traceback of an error raised in a dispatcher process, as text."""

    def __str__(self) -> str:
        return str(self.args[0])


def _stop_worker(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: let the clean-up finish
    raise WorkerStopped


def _watch_parent() -> None:
    """Stop this dispatcher process when the process that started it has ended."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(
    conn: PipeEnd, settings: Settings, at: datetime | None, build: WorkerBuilder
) -> None:
    """The body of a dispatcher process started by run_workers; its outcome goes to `conn`.

    Ctrl-C is the parent's to handle (SIGINT is ignored here); SIGTERM, from the parent or
    sent when the parent has ended, stops the dispatcher: sends not started are cancelled,
    those on the wire finish and every outcome known is recorded (Dispatcher.run), and the
    process exits quietly. Rows it left `claimed` or `sending` are resolved by the lease
    rules of the next run.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    # started with both blocked (run_workers): a signal that came meanwhile arrives now
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    threading.Thread(target=_watch_parent, name="watch-parent", daemon=True).start()
    outcome: tuple[str, Any]
    try:
        try:
            outcome = ("report", dispatch_worker(settings, at, build))
        except Exception as exc:
            outcome = ("error", (exc, traceback.format_exc()))
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # done: nothing left to stop
    except WorkerStopped:  # (its handler has set SIGTERM to be ignored from now on)
        outcome = ("stopped", None)
    with conn:
        try:
            conn.send(outcome)
        except Exception:  # an outcome that does not pickle is sent as text
            detail = WorkerFailed(f"{outcome[0]}: {outcome[1]!r}"[:4000])
            conn.send(("error", (detail, traceback.format_exc())))


def _failure(kind: str, payload: Any, process: BaseProcess) -> BaseException:
    """The error a dispatcher process's outcome other than a report stands for."""
    if kind == "error":
        error, text = payload
        error.__cause__ = _RemoteTraceback(text)
        return error
    if kind == "stopped":
        return WorkerFailed(
            f"dispatcher process {process.pid} was stopped (SIGTERM) before it finished; "
            "the next run sends what it left"
        )
    return WorkerFailed(
        f"dispatcher process {process.pid} ended without a report (exit code {payload}); "
        "the next run resolves what it left"
    )


def stop_processes(processes: list[BaseProcess], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every process still running, SIGKILL those not ended within `grace`
    seconds, and wait for all of them. Ctrl-C and SIGTERM wait until it is done."""
    with signals_held():
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + grace
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                log.warning(
                    "dispatcher process %s did not stop within %.0f s: killed", process.pid, grace
                )
                process.kill()
                process.join()


def run_workers(
    settings: Settings,
    at: datetime | None,
    workers: int,
    *,
    build: WorkerBuilder,
    progress: ProgressCallback | None = None,
) -> DispatchReport:
    """Dispatch everything due at `at` (None: now) with `workers` processes sharing the
    database and the provider limits, each building its parts with `build` (a
    module-level function, see WorkerBuilder); their reports are merged. Every worker runs to its
    end even when another fails; then the first failure is raised.

    Interrupted here (Ctrl-C, SIGTERM, any exception), it stops the workers first
    (stop_processes) and waits for them, then lets the interrupt go on: no dispatcher
    outlives the command or flow run that started it.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    check_builder(build)
    share = worker_settings(settings, workers)
    report = DispatchReport()
    failures: list[BaseException] = []
    # spawn: a fresh interpreter per worker, no engine, pool or thread inherited by fork
    context = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    waiting: dict[PipeEnd, BaseProcess] = {}
    try:
        with signals_held():  # no worker half-started, none started unseen
            for number in range(1, workers + 1):
                reader, writer = context.Pipe(duplex=False)
                process: BaseProcess = context.Process(
                    target=_worker_main,
                    args=(writer, share, at, build),
                    name=f"leadops-dispatch-{number}",
                    daemon=True,
                )
                process.start()
                writer.close()
                processes.append(process)
                waiting[reader] = process
        while waiting:
            for ready in mp_connection.wait(list(waiting)):
                assert isinstance(ready, PipeEnd)
                process = waiting.pop(ready)
                try:
                    kind, payload = ready.recv()
                except EOFError:
                    process.join(STOP_GRACE_SECONDS)
                    kind, payload = "lost", process.exitcode
                finally:
                    ready.close()
                if kind == "report":
                    report.merge(payload)
                    report.worker_sent.append(payload.sent_total)
                    if progress is not None:
                        done = payload.sent_total + sum(payload.held.values())
                        progress(done + sum(payload.skipped.values()))
                    continue
                error = _failure(kind, payload, process)
                log.error("a dispatcher worker failed: %s", error)  # raised once all ended
                failures.append(error)
        for process in processes:  # each has reported and is exiting
            process.join()
    finally:
        stop_processes(processes)
        for reader in waiting:
            reader.close()
    if failures:
        raise failures[0]
    return report
