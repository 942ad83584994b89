"""`leadops quarantine`: records and files intake refused; show, release or drop them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from leadops.cli.common import (
    CliError,
    FormatOption,
    NowOption,
    _build,
    _engine,
    _instant,
    _settings,
    console,
)
from leadops.cli.output import Format, emit

if TYPE_CHECKING:
    from leadops.intake.mapping import SourceRules

quarantine_app = typer.Typer(
    help="Records and files intake refused, with reasons.", no_args_is_help=True
)


@quarantine_app.command("list")
def quarantine_list(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    status: Annotated[str, typer.Option(help="open, released or dropped.")] = "open",
    fmt: FormatOption = Format.TABLE,
) -> None:
    """List quarantined records with their reasons.

    Example: leadops quarantine list --format csv
    """
    from leadops.views.quarantine import record_rows

    rows = record_rows(_engine(_settings()), status=status, source=source)
    emit(
        rows, ["id", "source", "source_ref", "reasons", "email", "detail"], fmt, title="Quarantine"
    )


@quarantine_app.command("show")
def quarantine_show(
    record_id: Annotated[int, typer.Argument(help="Quarantined record id.")],
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Show one quarantined record: source, reasons, detail and every raw field.

    Example: leadops quarantine show 3
    """
    from leadops.views.quarantine import record

    found = record(_engine(_settings()), record_id)
    if found is None:
        raise CliError(f"no quarantined record with id {record_id}")
    if fmt != Format.TABLE:
        emit([found], list(found), fmt)
        return
    info = {k: v for k, v in found.items() if k != "raw"} | {"reasons": ", ".join(found["reasons"])}
    emit(
        [{"field": k, "value": v} for k, v in info.items()],
        ["field", "value"],
        fmt,
        title=f"Quarantined record {record_id}",
    )
    emit(
        [{"field": k, "value": v} for k, v in found["raw"].items()],
        ["field", "value"],
        fmt,
        title="Raw data",
    )


def _corrections(values: list[str]) -> dict[str, str]:
    corrections = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set country=DE")
        corrections[name.strip().lower()] = value
    return corrections


@quarantine_app.command("release")
def quarantine_release(
    record_ids: Annotated[list[int], typer.Argument(help="Quarantined record ids.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Correct a field before re-validating: FIELD=VALUE."),
    ] = None,
    mapping: Annotated[
        str | None,
        typer.Option(
            "--mapping",
            help="Read CSV records with this ready mapping (hubspot, salesforce or a .yaml "
            "file): the one their file was imported with. HubSpot and form records are "
            "always read with their own source's values.",
        ),
    ] = None,
    now: NowOption = None,
) -> None:
    """Validate records again (with corrections) and let those that pass into the leads;
    they merge into an existing lead when they match one. Failing ones stay open. Each is
    read as its import read it: its source's column mapping, value mapping and date
    formats from config/intake.yaml (or the ready mapping given with --mapping).

    Example: leadops quarantine release 3 --set email=maria.lopez@lopez.example
    """
    from leadops.core.configfile import ConfigError
    from leadops.intake.mapping import MappingError, load_mapping, release_rules
    from leadops.intake.quarantine import QuarantineError, release

    runtime = _build(_settings())
    settings, engine, intake = runtime.settings, runtime.engine, runtime.intake
    corrections = _corrections(set_ or [])
    try:
        ready = load_mapping(mapping, settings.config_dir) if mapping else None
    except (MappingError, ConfigError) as exc:
        raise CliError(f"--mapping: {exc}") from exc

    def read_as(source: str) -> tuple[dict[str, str], SourceRules]:
        return release_rules(intake, settings.config_dir, source, ready)

    at = _instant(now)
    rows = []
    failed = False
    for record_id in record_ids:
        try:
            result = release(
                engine,
                record_id,
                now=at,
                default_region=settings.default_region,
                default_timezone=settings.default_timezone,
                corrections=corrections,
                read_as=read_as,
            )
        except QuarantineError as exc:
            raise CliError(str(exc)) from exc
        failed = failed or not result.released
        rows.append(
            {
                "id": record_id,
                "released": "yes" if result.released else "no",
                "lead": result.lead_id,
                "action": result.action,
                "reasons": ", ".join(result.reasons),
                "detail": result.detail,
            }
        )
    emit(rows, ["id", "released", "lead", "action", "reasons", "detail"], Format.TABLE)
    if failed:
        raise typer.Exit(1)


@quarantine_app.command("drop")
def quarantine_drop(
    record_ids: Annotated[list[int], typer.Argument(help="Quarantined record ids.")],
    now: NowOption = None,
) -> None:
    """Mark records dropped: they never become leads, and stay listed as dropped.

    Example: leadops quarantine drop 5 6
    """
    from leadops.intake.quarantine import QuarantineError, drop

    engine = _engine(_settings())
    at = _instant(now)
    for record_id in record_ids:
        try:
            drop(engine, record_id, now=at)
        except QuarantineError as exc:
            raise CliError(str(exc)) from exc
    console.print(f"dropped {len(record_ids)} record(s)")


FILE_COLUMNS = ["id", "status", "name", "reason", "detail", "size", "created_at", "resolution"]
FILE_TABLE_COLUMNS = ["id", "status", "name", "reason", "size", "created_at", "resolution"]


@quarantine_app.command("files")
def quarantine_files(
    status: Annotated[str, typer.Option(help="open, released or dropped.")] = "open",
    fmt: FormatOption = Format.TABLE,
) -> None:
    """List files quarantined as files (they could not be read as CSV), with the reason
    and the fix; each is kept under <data dir>/quarantine/files/.

    Example: leadops quarantine files --status open
    """
    from leadops.views.quarantine import file_rows

    rows = file_rows(_engine(_settings()), status=status)
    if fmt != Format.TABLE:
        emit(rows, [*FILE_COLUMNS, "path", "stored_path"], fmt)
        return
    emit(rows, FILE_TABLE_COLUMNS, fmt, title=f"Quarantined files ({status})")
    for r in rows:
        detail = r["detail"].replace("release-file ID", f"release-file {r['id']}")
        console.print(f"file {r['id']} ({r['name']}): {detail}", soft_wrap=True, highlight=False)


@quarantine_app.command("release-file")
def quarantine_release_file(
    file_id: Annotated[int, typer.Argument(help="Quarantined file id.")],
    path: Annotated[
        Path | None,
        typer.Option(
            "--path",
            help="Read this fixed file (default: the original path if it still exists, "
            "else the kept copy).",
        ),
    ] = None,
    now: NowOption = None,
) -> None:
    """Read a quarantined file again, fixed (or with a fixed config/intake.yaml), and import
    it; it stays open, with the reason, if it still cannot be read (exit code 1).

    Example: leadops quarantine release-file 2 --path fixed.csv
    """
    from leadops.intake.quarantine import QuarantineError
    from leadops.intake.run import TABLE_COLUMNS, release_file

    runtime = _build(_settings())
    try:
        result = release_file(
            runtime.engine,
            runtime.settings,
            runtime.intake,
            file_id,
            now=_instant(now),
            path=path,
        )
    except QuarantineError as exc:
        raise CliError(str(exc)) from exc
    if result.error is not None:
        raise CliError(f"quarantined file {file_id} stays open: {result.error}")
    emit([result.row()], TABLE_COLUMNS, Format.TABLE, title=f"Released file {file_id}")


@quarantine_app.command("drop-file")
def quarantine_drop_file(
    file_ids: Annotated[list[int], typer.Argument(help="Quarantined file ids.")],
    now: NowOption = None,
) -> None:
    """Mark quarantined files dropped: never imported (the drop folder skips their content),
    and kept.

    Example: leadops quarantine drop-file 2
    """
    from leadops.intake.quarantine import QuarantineError, mark_file
    from leadops.models import QuarantineStatus

    engine = _engine(_settings())
    at = _instant(now)
    for file_id in file_ids:
        try:
            mark_file(
                engine, file_id, status=QuarantineStatus.DROPPED, resolution="dropped", now=at
            )
        except QuarantineError as exc:
            raise CliError(str(exc)) from exc
    console.print(f"dropped {len(file_ids)} file(s)")
