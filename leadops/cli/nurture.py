"""`leadops run` and `leadops simulate`: the nurture tick, once or over simulated days,
stopped cleanly by Ctrl-C or SIGTERM."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from leadops.cli.common import (
    CliError,
    NowOption,
    _instant,
    _runtime,
    _settings,
    console,
    err,
)
from leadops.cli.output import Format, emit
from leadops.core.clock import clock_for

commands = typer.Typer()


EXIT_GRACE_SECONDS = 3  # after Ctrl-C, for Prefect to send its last logs and stop its server


@contextmanager
def _interruptible(what: str, *, flow_run: bool = True) -> Iterator[None]:
    """Run a flow (or, without `flow_run`, the stages directly) so that Ctrl-C or SIGTERM
    ends it at once with a clear message, exit code 130 (143 for SIGTERM).

    Prefect's temporary server is started first, out of reach of Ctrl-C, so the
    interrupted flow run is recorded as Crashed (never left Running) and its logs are
    sent before the process exits. Dispatcher processes are stopped on the way out
    (leadops.delivery.workers.run_workers).
    """
    from leadops.core.interrupts import Terminated, sigterm_raises
    from leadops.ops.prefect_stack import exit_after_interrupt, start_ephemeral_server

    try:
        with sigterm_raises():
            if flow_run:
                start_ephemeral_server()
            yield
    except (KeyboardInterrupt, Terminated) as exc:
        code, how = (143, "terminated") if isinstance(exc, Terminated) else (130, "interrupted")
        if flow_run:
            exit_after_interrupt(code, grace=EXIT_GRACE_SECONDS)
        marked = "; its flow run is marked Crashed" if flow_run else ""
        err.print(
            f"[red]{how}:[/] {what} stopped{marked}. Messages already sent are recorded and "
            "are never sent again: run the same command to finish the work.",
            highlight=False,
        )
        raise typer.Exit(code) from None


def _print_summary(engine: Any, title: str) -> None:
    from leadops.reporting.summary import (
        SUMMARY_COLUMNS,
        summary_legend,
        summary_rows,
        touch_summary,
    )

    summaries = touch_summary(engine)
    emit(summary_rows(summaries), SUMMARY_COLUMNS, Format.TABLE, title=title)
    codes = summary_legend(summaries)
    if codes:
        emit(codes, ["code", "meaning"], Format.TABLE, title="Reason codes")


@commands.command()
def run(
    now: NowOption = None,
    no_prefect: Annotated[
        bool, typer.Option("--no-prefect", help="Run the stages directly, without a flow run.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=32,
            help="Dispatcher processes sharing the database (default LEADOPS_DISPATCH_WORKERS).",
        ),
    ] = None,
) -> None:
    """Run one nurture tick: segment, plan, apply the contact policy, send, record.

    Example: leadops run --now 2026-12-01T15:00Z --workers 2
    """
    settings = _settings()
    runtime = _runtime(settings)
    at = _instant(now) if now else None
    if no_prefect:
        from leadops.core.locks import LockHeld, run_lock
        from leadops.nurture.plan import plan_all
        from leadops.nurture.tick import dispatch_due
        from leadops.runtime import worker_runtime

        # The nurture flow's two steps, without Prefect: plan every lead, then send.
        processes = workers or settings.dispatch_workers
        clock = clock_for(at)
        try:
            with _interruptible("the tick", flow_run=False), run_lock(runtime.engine, "nurture"):
                plan_all(runtime, clock.now())
                dispatch = dispatch_due(runtime, clock, workers=processes, build=worker_runtime)
        except LockHeld as exc:
            raise CliError(f"{exc}; try again when it has finished") from exc
        result = dispatch.counts()
    else:
        from flows.nurture import nurture_flow

        with _interruptible("the tick"):
            result = nurture_flow(now=at, workers=workers)
    console.print("tick done: " + ", ".join(f"{key} {value}" for key, value in result.items()))
    _print_summary(runtime.engine, "All touches so far")


@commands.command()
def simulate(
    days: Annotated[int, typer.Option(min=1, max=366, help="How many days to simulate.")] = 30,
    start: Annotated[
        str | None, typer.Option(help="Simulated start time (ISO 8601); default now.")
    ] = None,
    no_prefect: Annotated[
        bool, typer.Option("--no-prefect", help="Run the stages directly, without a flow run.")
    ] = False,
    engagement: Annotated[
        Path | None,
        typer.Option(
            "--engagement",
            help="An engagement model file (open, click, reply rates per step and variant; "
            "seeded): leads answer what they are sent, and scores and results follow.",
        ),
    ] = None,
) -> None:
    """Simulate the nurture loop over DAYS days, jumping from one due moment to the next.

    Example: leadops simulate --days 30 --engagement config/engagement.yaml
    """
    from leadops.core import progress
    from leadops.core.configfile import ConfigError
    from leadops.engagement.simulated import engage, load_engagement_model
    from leadops.nurture.tick import simulate as run_simulation

    settings = _settings()
    runtime = _runtime(settings)
    begin = _instant(start)
    try:
        model = load_engagement_model(engagement) if engagement else None
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    bar = Progress(
        TextColumn("[bold]simulating[/]"),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with bar:
        job = bar.add_task(f"day 0 of {days}", total=1.0)

        def show(fraction: float, text: str) -> None:
            bar.update(job, completed=fraction, description=text)

        with progress.listening(show):
            if no_prefect:
                with _interruptible("the simulation", flow_run=False):
                    for day in range(days):
                        day_start = begin + timedelta(days=day)
                        day_end = day_start + timedelta(days=1)
                        run_simulation(runtime, day_start, day_end)
                        if model is not None:
                            engage(runtime, model, day_start, day_end)
                        progress.notify((day + 1) / days, f"day {day + 1} of {days}")
            else:
                from flows.nurture import simulate_flow

                with _interruptible("the simulation"):
                    simulate_flow(
                        start=begin, days=days, engagement=str(engagement) if engagement else None
                    )
    end = begin + timedelta(days=days)
    _print_summary(runtime.engine, f"Simulated {begin:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
