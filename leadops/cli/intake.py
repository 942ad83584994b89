"""`leadops intake`: pull every configured source, and the exit code of an intake run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from leadops.cli.common import (
    CliError,
    FormatOption,
    NowOption,
    _build,
    _instant,
    _settings,
    console,
    err,
)
from leadops.cli.output import Format, emit

intake_app = typer.Typer(
    help="Pull leads from every configured source (config/intake.yaml).", no_args_is_help=True
)


def _exit_for(run: Any, engine: Any) -> None:
    """Name every quarantined file and failed source; exit with the run's status (1 a
    source failed, 3 a file quarantined as a file, 4 most rows quarantined, 5 no created
    lead has consent: see leadops.intake.verdict)."""
    from leadops.intake.verdict import exit_code
    from leadops.views.quarantine import open_file_count

    for held in run.quarantined_files:
        err.print(f"[yellow]{held.file_line}[/]", highlight=False, soft_wrap=True)
    waiting = open_file_count(engine)
    if waiting:
        err.print(f"{waiting} file(s) in file quarantine: `leadops quarantine files`")
    for failed in run.errors:
        err.print(
            f"[red]error:[/] {failed.source}: {failed.error}", highlight=False, soft_wrap=True
        )
    code = exit_code(run)
    if code:
        raise typer.Exit(code)


@intake_app.command("run")
def intake_run(
    files: Annotated[
        list[Path] | None, typer.Argument(help="CSV files to import besides the drop folder.")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source", "-s", help="Only these sources: csv, hubspot, forms (repeatable)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Import FILES even if imported before.")
    ] = False,
    now: NowOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Pull every configured source (config/intake.yaml): the CSV drop folder and FILES,
    HubSpot when enabled, and retry web-form confirmation emails left unsent. Prints
    read, created, merged, quarantined and flagged per source; exits 1 if a source failed
    (the others still ran), 3 if a file was quarantined as a file (the others were read),
    4 if most rows of a file were quarantined, 5 if no lead it created has consent.

    Example: leadops intake run --now 2026-12-01T08:00Z
    """
    from leadops.intake.run import REPORT_COLUMNS, SOURCES, TABLE_COLUMNS, run_intake

    runtime = _build(_settings())
    engine = runtime.engine
    for path in files or []:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    try:
        run = run_intake(
            engine,
            runtime.settings,
            now=_instant(now),
            files=files or [],
            sources=source or SOURCES,
            force=force,
            config=runtime.intake,
            email=runtime.email,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    columns = TABLE_COLUMNS if fmt == Format.TABLE else REPORT_COLUMNS
    emit(run.rows(), columns, fmt, title=f"Intake {run.now:%Y-%m-%d %H:%M} UTC")
    if fmt == Format.TABLE:
        from leadops.intake.verdict import warnings

        for line in [*run.reason_lines(), *warnings(run)]:
            console.print(line, soft_wrap=True, highlight=False)
        console.print(run.summary())
    _exit_for(run, runtime.engine)
