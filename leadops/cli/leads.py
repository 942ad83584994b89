"""`leadops leads`: import, list and show leads."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

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
    err,
)
from leadops.cli.intake import _exit_for
from leadops.cli.output import Format, counted, emit, limit_note

leads_app = typer.Typer(help="Import, list and inspect leads.", no_args_is_help=True)


@leads_app.command("import")
def leads_import(
    files: Annotated[list[Path], typer.Argument(help="CSV files to import.")],
    source: Annotated[str | None, typer.Option(help="Source name (default: csv:<file>).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Import a file even if its content was imported before.")
    ] = False,
    mapping: Annotated[
        str | None,
        typer.Option(
            "--mapping",
            help="Read the files as this export: hubspot, salesforce, or a mapping file "
            "(.yaml); default: csv settings of config/intake.yaml.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show what would be created, merged and quarantined; write nothing."
        ),
    ] = False,
    now: NowOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Import leads from CSV files (headers and values mapped by config/intake.yaml, or by
    --mapping); duplicates merge into the existing lead, bad rows go to quarantine with
    reasons, bad fields of a reachable lead are flagged. A file whose content was imported
    before is skipped. A file that cannot be read as CSV is quarantined as a file
    (`leadops quarantine files`) and the other files are still read. Exit codes: 0 clean,
    1 a file failed to import, 3 a file quarantined as a file, 4 most rows of a file
    quarantined, 5 no lead created has consent on any channel (never messaged).

    Example: leadops leads import hubspot-export.csv --mapping hubspot --dry-run
    """
    from leadops.core.configfile import ConfigError
    from leadops.intake.mapping import MappingError, load_mapping
    from leadops.intake.run import TABLE_COLUMNS, IntakeRun, import_files
    from leadops.intake.verdict import document, exit_code, preview_files

    runtime = _build(_settings())
    engine = runtime.engine
    for path in files:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    settings, config = runtime.settings, runtime.intake
    try:
        chosen = load_mapping(mapping, settings.config_dir) if mapping else None
    except (MappingError, ConfigError) as exc:
        raise CliError(f"--mapping: {exc}") from exc
    at = _instant(now)
    run_files = preview_files if dry_run else import_files
    results = run_files(
        engine, settings, config, files, now=at, force=force, source=source, mapping=chosen
    )
    run = IntakeRun(now=at, results=results)
    if fmt == Format.JSON:
        json.dump(document(run, dry_run=dry_run), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        if exit_code(run):
            raise typer.Exit(exit_code(run))
        return
    emit(
        run.rows(),
        TABLE_COLUMNS,
        fmt,
        title="Import (dry run: nothing written)" if dry_run else "Import",
    )
    if fmt != Format.TABLE:
        _exit_for(run, engine)
        return
    _print_import(run, dry_run=dry_run)
    if dry_run:
        raise typer.Exit(exit_code(run))
    _exit_for(run, engine)


def _print_import(run: Any, *, dry_run: bool) -> None:
    """The lines under the import table: reasons (with examples in a dry run), skipped
    and refused files, then the warnings."""
    from leadops.intake.verdict import example_lines, warnings

    for line in run.reason_lines():
        if dry_run:  # nothing was kept to look at
            line = line.split("; see `")[0]
        console.print(line, soft_wrap=True, highlight=False)
    if dry_run:
        for line in example_lines(run):
            console.print(line, soft_wrap=True, highlight=False)
    for result in run.results:
        if result.note.startswith("skipped"):
            console.print(
                f"{result.source}: {result.note} (--force to import again)", soft_wrap=True
            )
        elif result.rejected is not None:
            console.print(
                f"{result.source}: {result.note}: {result.rejected.detail}", soft_wrap=True
            )
    for line in warnings(run):
        console.print(line, soft_wrap=True, highlight=False)


LEAD_COLUMNS = [
    "id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "country",
    "timezone",
    "lifecycle_stage",
    "segment",
    "score",
    "grade",
    "band",
    "lead_status",
    "email_consent",
    "whatsapp_consent",
]
PREDICTIVE_COLUMNS = ["predictive_score", "predictive_mode"]


@leads_app.command("list")
def leads_list(
    stage: Annotated[str | None, typer.Option(help="Only this lifecycle stage.")] = None,
    segment: Annotated[str | None, typer.Option(help="Only this segment.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many leads (0 for all).")] = 100,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """List leads; a list cut by --limit says so on stderr.

    Example: leadops leads list --stage mql --format csv
    """
    from leadops.predictive.store import with_predictions
    from leadops.views.leads import lead_rows

    engine = _engine(_settings())
    rows, total = lead_rows(engine, stage=stage, segment=segment, limit=limit)
    columns = LEAD_COLUMNS  # json and csv also carry the predictive score and its mode
    if fmt != Format.TABLE:
        rows, columns = with_predictions(engine, rows), [*LEAD_COLUMNS, *PREDICTIVE_COLUMNS]
    emit(rows, columns, fmt, title=counted("Leads", len(rows), total))
    limit_note(len(rows), total, limit, err)


@leads_app.command("show")
def leads_show(
    lead_id: Annotated[int, typer.Argument(help="Lead id.")],
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Show one lead: profile, consent, enrollments, every touch, score and escalations.

    Example: leadops leads show 12
    """
    from leadops.views.leads import lead_detail

    engine = _engine(_settings())
    detail = lead_detail(engine, lead_id)
    if detail is None:
        raise CliError(f"no lead with id {lead_id}")
    lead, issues = detail["lead"], detail["issues"]
    from leadops.predictive.store import prediction_of, with_predictions

    with engine.connect() as connection:
        prediction = prediction_of(connection, lead_id)
    if fmt != Format.TABLE:
        row: dict[str, Any] = with_predictions(engine, [dict(lead)])[0]
        row["predictive_factors"] = prediction["factors"] if prediction else []
        if fmt == Format.JSON:
            row["data_issues"] = [{k: _plain_value(v) for k, v in i.items()} for i in issues]
        else:  # CSV: the custom properties as a JSON object in their cell
            row["properties"] = json.dumps(row["properties"]) if row["properties"] else ""
            row["predictive_factors"] = json.dumps(row["predictive_factors"])
            row["data_issues"] = "; ".join(
                f"{i['field']}={i['value']!r} {i['reason']}"
                + (" (resolved)" if i["resolved_at"] else "")
                for i in issues
            )
        emit([row], [*lead, *PREDICTIVE_COLUMNS, "predictive_factors", "data_issues"], fmt)
        return
    shown = [{"field": k, "value": v} for k, v in lead.items() if k != "properties"]
    shown += [
        {"field": f"properties.{name}", "value": value}
        for name, value in sorted((lead["properties"] or {}).items())
    ]
    emit(shown, ["field", "value"], fmt, title=f"Lead {lead_id}")
    open_issues = sum(1 for i in issues if i["resolved_at"] is None)
    emit(
        [{**i, "status": "resolved" if i["resolved_at"] else "open"} for i in issues],
        ["field", "value", "reason", "source_ref", "status"],
        fmt,
        title=f"Flagged data ({open_issues} open; imported without these values)",
    )
    emit(
        detail["enrollments"],
        ["campaign", "segment", "status", "started_at", "ended_at", "end_reason"],
        fmt,
        title="Enrollments",
    )
    emit(
        detail["touches"],
        ["campaign", "step", "channel", "status", "due_at", "sent_at", "hold_reason", "error"],
        fmt,
        title="Touches",
    )
    from leadops.views.scores import explain

    breakdown, timeline = explain(engine, lead_id)
    emit(
        breakdown,
        ["rule", "kind", "points", "rows"],
        fmt,
        title=f"Score {lead['score']} (the sum of these ledger rows)",
    )
    emit(timeline, ["at", "what", "detail", "event"], fmt, title="Timeline")
    _print_prediction(prediction)
    from leadops.views.escalations import lead_escalations

    emit(
        lead_escalations(engine, lead_id),
        ["id", "trigger", "status", "assignee", "created_at"],
        fmt,
        title="Escalations",
    )


def _print_prediction(prediction: dict[str, Any] | None) -> None:
    """A lead's predictive score and its top factors (nothing without a score)."""
    from leadops.predictive.store import factor_rows

    if prediction is None:
        return
    emit(
        factor_rows(prediction),
        ["factor", "value", "effect", "contribution"],
        Format.TABLE,
        title=f"Predictive score {prediction['predictive_score']:.1%} "
        f"({prediction['predictive_mode']}, model v{prediction['model_version']}): its factors",
    )


def _plain_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
