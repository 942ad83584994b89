"""`leadops leads`: import, list and show leads."""

from __future__ import annotations

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
    now: NowOption = None,
) -> None:
    """Import leads from CSV files (headers mapped by config/intake.yaml); duplicates merge
    into the existing lead, bad rows go to quarantine with reasons, bad fields of a
    reachable lead are flagged. A file whose content was imported before is skipped. A
    file that cannot be read as CSV is quarantined as a file (`leadops quarantine files`)
    and the other files are still read: exit code 3 (1 if a file failed to import).

    Example: leadops leads import config/sample_leads.csv
    """
    from leadops.intake.run import TABLE_COLUMNS, IntakeRun, import_files

    runtime = _build(_settings())
    engine = runtime.engine
    for path in files:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    config = runtime.intake
    at = _instant(now)
    results = import_files(
        engine, runtime.settings, config, files, now=at, force=force, source=source
    )
    run = IntakeRun(now=at, results=results)
    emit(run.rows(), TABLE_COLUMNS, Format.TABLE, title="Import")
    for line in run.reason_lines():
        console.print(line, soft_wrap=True, highlight=False)
    for result in results:
        if result.note.startswith("skipped"):
            console.print(
                f"{result.source}: {result.note} (--force to import again)", soft_wrap=True
            )
    _exit_for(run)


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
    "email_consent",
    "whatsapp_consent",
]


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
    from leadops.views.leads import lead_rows

    rows, total = lead_rows(_engine(_settings()), stage=stage, segment=segment, limit=limit)
    emit(rows, LEAD_COLUMNS, fmt, title=counted("Leads", len(rows), total))
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
    if fmt != Format.TABLE:
        row: dict[str, Any] = dict(lead)
        if fmt == Format.JSON:
            row["data_issues"] = [{k: _plain_value(v) for k, v in i.items()} for i in issues]
        else:
            row["data_issues"] = "; ".join(
                f"{i['field']}={i['value']!r} {i['reason']}"
                + (" (resolved)" if i["resolved_at"] else "")
                for i in issues
            )
        emit([row], [*lead, "data_issues"], fmt)
        return
    emit(
        [{"field": k, "value": v} for k, v in lead.items()],
        ["field", "value"],
        fmt,
        title=f"Lead {lead_id}",
    )
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
    from leadops.views.escalations import lead_escalations

    emit(
        lead_escalations(engine, lead_id),
        ["id", "trigger", "status", "assignee", "created_at"],
        fmt,
        title="Escalations",
    )


def _plain_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
