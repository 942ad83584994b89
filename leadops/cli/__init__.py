"""The `leadops` command line (typer + rich).

Every command that depends on time takes `--now` (ISO 8601, e.g. 2026-12-01T09:00Z), so
anything can be replayed or simulated. Every list takes `--format table|json|csv`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func
from sqlmodel import Session, col, select

from leadops import deadletters
from leadops.cli.output import Format, emit
from leadops.core.clock import clock_for
from leadops.core.configfile import ConfigError
from leadops.core.db import DatabaseNotReady, one_line
from leadops.core.settings import Settings, get_settings
from leadops.delivery.render import RenderError
from leadops.intake.csv_source import CsvFormatError

console = Console()
err = Console(stderr=True)

app = typer.Typer(
    help="leadops: lead-nurture automation. Start with `leadops init`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
leads_app = typer.Typer(help="Import, list and inspect leads.", no_args_is_help=True)
outbox_app = typer.Typer(
    help="Messages planned and sent (the touches table).", no_args_is_help=True
)
templates_app = typer.Typer(help="Check and preview message templates.", no_args_is_help=True)
quarantine_app = typer.Typer(
    help="Records and files intake refused, with reasons.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
intake_app = typer.Typer(
    help="Pull leads from every configured source (config/intake.yaml).", no_args_is_help=True
)
app.add_typer(leads_app, name="leads")
app.add_typer(outbox_app, name="outbox")
app.add_typer(templates_app, name="templates")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(db_app, name="db")
app.add_typer(intake_app, name="intake")

NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Act as if it were this time (ISO 8601, UTC if no zone), e.g. 2026-12-01T09:00Z.",
    ),
]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit code 1."""


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise CliError(f"invalid settings: {problems}") from exc


def _instant(now: str | None) -> datetime:
    try:
        return clock_for(now).now()
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _engine(settings: Settings) -> Any:
    from leadops.core.db import ensure_ready, make_engine

    engine = make_engine(settings.resolved_database_url)
    ensure_ready(engine)
    return engine


def _runtime(settings: Settings) -> Any:
    from leadops.nurture.runtime import load_runtime

    return load_runtime(settings)


# -- init / db ---------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create the data folder and database, apply migrations and check the config.

    Example: leadops init
    """
    from leadops.core.db import make_engine, upgrade
    from leadops.delivery.campaigns import load_campaigns
    from leadops.nurture.segments import load_segments

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    campaigns = load_campaigns(settings.config_dir)
    segments = load_segments(settings.config_dir, set(campaigns))
    settings.signing_key()
    from leadops.sales.escalation import routing_path
    from leadops.sales.routing import load_routing

    routing_file = routing_path(settings)
    routing = load_routing(routing_file) if routing_file.exists() else None
    console.print(f"[green]database ready[/] {engine.url.render_as_string(hide_password=True)}")
    console.print(
        f"[green]config ok[/] {len(campaigns)} campaigns ({', '.join(sorted(campaigns))}), "
        f"{len(segments.rules)} segment rules"
    )
    if routing is not None:
        console.print(
            f"[green]routing ok[/] {len(routing.reps)} sales reps, "
            f"SLA {routing.sla_minutes} working minutes"
        )
    else:
        console.print(f"[yellow]no {routing_file}[/]: escalation stays off until it exists")
    console.print(f"outbox folder: {settings.resolved_outbox_dir}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations. Example: leadops db upgrade"""
    from leadops.core.db import current_revision, make_engine, upgrade

    engine = make_engine(_settings().resolved_database_url)
    upgrade(engine)
    console.print(f"database at revision {current_revision(engine)}")


@db_app.command("status")
def db_status() -> None:
    """Show the schema revision. Example: leadops db status"""
    from leadops.core.db import current_revision, head_revision, make_engine

    engine = make_engine(_settings().resolved_database_url)
    current, head = current_revision(engine), head_revision()
    state = "[green]up to date[/]" if current == head else "[yellow]needs `leadops db upgrade`[/]"
    console.print(f"database revision {current or 'none'}, latest {head}: {state}")


# -- leads -------------------------------------------------------------------------------


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
    from leadops.intake.config import load_intake_config
    from leadops.intake.run import TABLE_COLUMNS, IntakeRun, import_files

    settings = _settings()
    engine = _engine(settings)
    for path in files:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    config = load_intake_config(settings.config_dir)
    at = _instant(now)
    results = import_files(engine, settings, config, files, now=at, force=force, source=source)
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


def _open_quarantined_files() -> int:
    from leadops.models import QuarantinedFile, QuarantineStatus

    with Session(_engine(_settings())) as session:
        query = select(func.count()).where(col(QuarantinedFile.status) == QuarantineStatus.OPEN)
        return int(session.exec(query.select_from(QuarantinedFile)).one())


def _exit_for(run: Any) -> None:
    """Name every quarantined file and failed source; exit 1 if a source failed, else 3
    if a file was quarantined as a file."""
    from leadops.intake.run import EXIT_FILE_QUARANTINED

    for held in run.quarantined_files:
        err.print(f"[yellow]{held.file_line}[/]", highlight=False, soft_wrap=True)
    waiting = _open_quarantined_files()
    if waiting:
        err.print(f"{waiting} file(s) in file quarantine: `leadops quarantine files`")
    for failed in run.errors:
        err.print(
            f"[red]error:[/] {failed.source}: {failed.error}", highlight=False, soft_wrap=True
        )
    if run.errors:
        raise typer.Exit(1)
    if run.quarantined_files:
        raise typer.Exit(EXIT_FILE_QUARANTINED)


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
    limit: Annotated[int, typer.Option(help="At most this many leads.")] = 100,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """List leads. Example: leadops leads list --stage mql --format csv"""
    from leadops.models import Lead

    engine = _engine(_settings())
    query = select(Lead).order_by(Lead.id).limit(limit)  # type: ignore[arg-type]
    if stage:
        query = query.where(col(Lead.lifecycle_stage) == stage)
    if segment:
        query = query.where(col(Lead.segment) == segment)
    with Session(engine) as session:
        leads = session.execute(query).scalars().all()
    rows = [lead.model_dump() for lead in leads]
    emit(rows, LEAD_COLUMNS, fmt, title=f"Leads ({len(rows)})")


@leads_app.command("show")
def leads_show(
    lead_id: Annotated[int, typer.Argument(help="Lead id.")],
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Show one lead: profile, consent, enrollments, every touch, score and escalations.

    Example: leadops leads show 12
    """
    from leadops.models import Enrollment, Lead, LeadFieldIssue, Touch

    engine = _engine(_settings())
    with Session(engine) as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise CliError(f"no lead with id {lead_id}")
        issues = [
            issue.model_dump()
            for issue in session.exec(
                select(LeadFieldIssue)
                .where(LeadFieldIssue.lead_id == lead_id)
                .order_by(col(LeadFieldIssue.id))
            )
        ]
        enrollments = (
            session.execute(
                select(Enrollment).where(Enrollment.lead_id == lead_id).order_by(Enrollment.id)  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
        touches = (
            session.execute(
                select(Touch).where(Touch.lead_id == lead_id).order_by(Touch.due_at, Touch.id)  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
    if fmt != Format.TABLE:
        row: dict[str, Any] = lead.model_dump()
        if fmt == Format.JSON:
            row["data_issues"] = [{k: _plain_value(v) for k, v in i.items()} for i in issues]
        else:
            row["data_issues"] = "; ".join(
                f"{i['field']}={i['value']!r} {i['reason']}"
                + (" (resolved)" if i["resolved_at"] else "")
                for i in issues
            )
        emit([row], [*Lead.model_fields, "data_issues"], fmt)
        return
    emit(
        [{"field": k, "value": v} for k, v in lead.model_dump().items()],
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
        [e.model_dump() for e in enrollments],
        ["campaign", "segment", "status", "started_at", "ended_at", "end_reason"],
        fmt,
        title="Enrollments",
    )
    emit(
        [t.model_dump() for t in touches],
        ["campaign", "step", "channel", "status", "due_at", "sent_at", "hold_reason", "error"],
        fmt,
        title="Touches",
    )
    from leadops.engagement.rescore import explain

    breakdown, timeline = explain(engine, lead_id)
    emit(
        breakdown,
        ["rule", "kind", "points", "rows"],
        fmt,
        title=f"Score {lead.score} (the sum of these ledger rows)",
    )
    emit(timeline, ["at", "what", "detail", "event"], fmt, title="Timeline")
    from leadops.sales.escalation import lead_escalations

    emit(
        lead_escalations(engine, lead_id),
        ["id", "trigger", "status", "assignee", "created_at"],
        fmt,
        title="Escalations",
    )


# -- run / simulate ----------------------------------------------------------------------


def _plain_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


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
    from leadops.reporting.summary import SUMMARY_COLUMNS, summary_rows, touch_summary

    emit(summary_rows(touch_summary(engine)), SUMMARY_COLUMNS, Format.TABLE, title=title)


@app.command()
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
        from leadops.delivery.workers import run_workers
        from leadops.nurture.plan import plan_all
        from leadops.nurture.tick import run_tick

        processes = workers or settings.dispatch_workers
        try:
            with _interruptible("the tick", flow_run=False), run_lock(runtime.engine, "nurture"):
                if processes == 1:
                    dispatch = run_tick(runtime, clock_for(at)).dispatch
                else:
                    clock = clock_for(at)
                    plan_all(runtime, clock.now())
                    dispatch = run_workers(settings, at, processes)
        except LockHeld as exc:
            raise CliError(f"{exc}; try again when it has finished") from exc
        result = {
            "sent": dispatch.sent_total,
            "held": sum(dispatch.held.values()),
            "skipped": sum(dispatch.skipped.values()),
            "failed": dispatch.failed,
            "ambiguous": dispatch.ambiguous,
            "dead_letters": dispatch.dead_letters,
        }
    else:
        from flows.nurture import nurture_flow

        with _interruptible("the tick"):
            result = nurture_flow(now=at, workers=workers)
    console.print("tick done: " + ", ".join(f"{key} {value}" for key, value in result.items()))
    _print_summary(runtime.engine, "All touches so far")


@app.command()
def simulate(
    days: Annotated[int, typer.Option(min=1, max=366, help="How many days to simulate.")] = 30,
    start: Annotated[
        str | None, typer.Option(help="Simulated start time (ISO 8601); default now.")
    ] = None,
    no_prefect: Annotated[
        bool, typer.Option("--no-prefect", help="Run the stages directly, without a flow run.")
    ] = False,
) -> None:
    """Simulate the nurture loop over DAYS days, jumping from one due moment to the next.

    Example: leadops simulate --days 30 --start 2026-12-01T00:00Z
    """
    from leadops.core import progress
    from leadops.nurture.tick import simulate as run_simulation

    settings = _settings()
    runtime = _runtime(settings)
    begin = _instant(start)
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
                        run_simulation(runtime, day_start, day_start + timedelta(days=1))
                        progress.notify((day + 1) / days, f"day {day + 1} of {days}")
            else:
                from flows.nurture import simulate_flow

                with _interruptible("the simulation"):
                    simulate_flow(start=begin, days=days)
    end = begin + timedelta(days=days)
    _print_summary(runtime.engine, f"Simulated {begin:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")


# -- outbox ------------------------------------------------------------------------------

OUTBOX_COLUMNS = [
    "id",
    "lead_id",
    "email",
    "phone",
    "campaign",
    "step",
    "channel",
    "status",
    "due_at",
    "sent_at",
    "hold_reason",
    "provider_id",
    "provider_message_id",
    "error",
]


@outbox_app.command("list")
def outbox_list(
    status: Annotated[
        str | None, typer.Option(help="Only this status (sent, pending, ambiguous...).")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="Only email or whatsapp.")] = None,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign.")] = None,
    lead: Annotated[int | None, typer.Option(help="Only this lead id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (0 for all).")] = 200,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """List touches with their lead's address, status and times.

    Example: leadops outbox list --status ambiguous --format json
    """
    from leadops.models import Lead, Touch

    engine = _engine(_settings())
    query = (
        select(Touch, col(Lead.email), col(Lead.phone))
        .join(Lead, Lead.id == Touch.lead_id)  # type: ignore[arg-type]
        .order_by(Touch.id)  # type: ignore[arg-type]
    )
    for column, value in (
        (Touch.status, status),
        (Touch.channel, channel),
        (Touch.campaign, campaign),
        (Touch.lead_id, lead),
    ):
        if value is not None:
            query = query.where(column == value)
    if limit:
        query = query.limit(limit)
    with Session(engine) as session:
        rows = [
            {**touch.model_dump(), "email": email, "phone": phone}
            for touch, email, phone in session.execute(query).all()
        ]
    emit(rows, OUTBOX_COLUMNS, fmt, title=f"Touches ({len(rows)})")


@outbox_app.command("resolve")
def outbox_resolve(
    touch_id: Annotated[int, typer.Argument(help="Id of the ambiguous touch.")],
    sent: Annotated[
        bool | None,
        typer.Option(
            "--sent/--not-sent",
            help="--sent: it reached the lead, record it as sent. "
            "--not-sent: it did not, queue it to be sent again.",
            show_default=False,
        ),
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Why (kept in the audit log), e.g. 'not in SendGrid activity'.")
    ] = "",
    provider_message_id: Annotated[
        str | None, typer.Option(help="With --sent: the provider's message id, if known.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who decides (default: $USER).")] = None,
    now: NowOption = None,
) -> None:
    """Settle an ambiguous touch after checking the provider: --sent or --not-sent.

    Example: leadops outbox resolve 42 --not-sent --reason "absent from SendGrid activity"
    """
    from leadops.delivery.resolution import ResolutionError, resolve_touch

    if sent is None:
        raise CliError("say what happened: --sent or --not-sent")
    engine = _engine(_settings())
    try:
        result = resolve_touch(
            engine,
            touch_id,
            sent=sent,
            reason=reason,
            actor=actor or os.environ.get("USER") or "operator",
            now=_instant(now),
            provider_message_id=provider_message_id,
        )
    except ResolutionError as exc:
        raise CliError(str(exc)) from exc
    console.print(
        f"touch {result.touch_id}: {result.from_status} -> {result.to_status} ({result.reason})",
        highlight=False,
    )


# -- templates ---------------------------------------------------------------------------


def _sample_leads() -> list[dict[str, Any]]:
    full = {
        "first_name": "Amara",
        "last_name": "Nwosu",
        "full_name": "Amara Nwosu",
        "email": "amara.nwosu@harbor-logistics.example",
        "phone": "+447700900123",
        "company": "Harbor Logistics",
        "job_title": "Head of Operations",
        "industry": "logistics",
        "country": "GB",
        "lifecycle_stage": "mql",
        "company_size": 240,
    }
    sparse = {key: None for key in full} | {
        "email": "someone@example.com",
        "lifecycle_stage": "lead",
    }
    hostile = full | {"first_name": "<script>alert(1)</script>", "company": 'Smith & Sons "Ltd"'}
    return [full, sparse, hostile]


@templates_app.command("check")
def templates_check() -> None:
    """Render every campaign step on every channel against sample leads; list each error.

    Example: leadops templates check
    """
    from leadops.delivery.campaigns import load_campaigns
    from leadops.delivery.compose import template_context
    from leadops.delivery.render import Renderer

    settings = _settings()
    campaigns = load_campaigns(settings.config_dir)
    renderer = Renderer(settings.templates_dir)
    errors: list[RenderError] = []
    checked = 0
    for campaign in campaigns.values():
        for step in campaign.steps:
            for channel in step.channels:
                for sample in _sample_leads():
                    context = template_context(
                        lead=sample,
                        campaign=campaign,
                        step_key=step.key,
                        settings=settings,
                        unsubscribe="https://example.invalid/u/sample-token",
                    )
                    checked += 1
                    try:
                        if channel == "email":
                            renderer.email(campaign.key, step.key, context)
                        else:
                            renderer.whatsapp(campaign.key, step.key, context)
                    except RenderError as exc:
                        if all(str(exc) != str(seen) for seen in errors):
                            errors.append(exc)
    if errors:
        emit(
            [{"template": e.template, "line": e.line, "error": e.message} for e in errors],
            ["template", "line", "error"],
            Format.TABLE,
            title=f"{len(errors)} template error(s)",
            console=err,
        )
        raise typer.Exit(1)
    console.print(f"[green]all templates render[/] ({checked} renders checked)")


@templates_app.command("preview")
def templates_preview(
    campaign: Annotated[str, typer.Argument(help="Campaign key, e.g. educate.")],
    step: Annotated[str, typer.Argument(help="Step key, e.g. day-1.")],
    channel: Annotated[str, typer.Option(help="email or whatsapp.")] = "email",
    lead: Annotated[
        int | None, typer.Option(help="Render for this lead id (default: a sample).")
    ] = None,
    part: Annotated[str, typer.Option(help="For email: txt, html or all.")] = "txt",
) -> None:
    """Print a rendered message. Example: leadops templates preview offer day-10 --lead 3"""
    from leadops.delivery.campaigns import load_campaigns
    from leadops.delivery.compose import lead_context, template_context, unsubscribe_url
    from leadops.delivery.render import Renderer
    from leadops.models import Lead

    settings = _settings()
    campaigns = load_campaigns(settings.config_dir)
    if campaign not in campaigns:
        raise CliError(f"unknown campaign {campaign!r} (known: {', '.join(sorted(campaigns))})")
    sample = _sample_leads()[0]
    unsubscribe = "https://example.invalid/u/sample-token"
    if lead is not None:
        with Session(_engine(settings)) as session:
            row = session.get(Lead, lead)
            if row is None:
                raise CliError(f"no lead with id {lead}")
            sample, unsubscribe = lead_context(row), unsubscribe_url(settings, lead)
    try:
        campaigns[campaign].step(step)
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from exc
    context = template_context(
        lead=sample,
        campaign=campaigns[campaign],
        step_key=step,
        settings=settings,
        unsubscribe=unsubscribe,
    )
    renderer = Renderer(settings.templates_dir)
    if channel == "whatsapp":
        console.print(renderer.whatsapp(campaign, step, context), markup=False, highlight=False)
        return
    email = renderer.email(campaign, step, context)
    console.print(f"Subject: {email.subject}\n", markup=False, highlight=False)
    if part in ("txt", "all"):
        console.print(email.text, markup=False, highlight=False)
    if part in ("html", "all"):
        console.print(email.html, markup=False, highlight=False)


# -- quarantine --------------------------------------------------------------------------


@quarantine_app.command("list")
def quarantine_list(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    status: Annotated[str, typer.Option(help="open, released or dropped.")] = "open",
    fmt: FormatOption = Format.TABLE,
) -> None:
    """List quarantined records with their reasons.

    Example: leadops quarantine list --format csv
    """
    from leadops.models import QuarantinedRecord

    engine = _engine(_settings())
    query = select(QuarantinedRecord).where(col(QuarantinedRecord.status) == status)
    if source:
        query = query.where(col(QuarantinedRecord.source) == source)
    with Session(engine) as session:
        records = session.execute(query.order_by(QuarantinedRecord.id)).scalars().all()  # type: ignore[arg-type]
    rows = [
        {**r.model_dump(), "reasons": ", ".join(r.reasons), "email": r.raw.get("email")}
        for r in records
    ]
    emit(
        rows, ["id", "source", "source_ref", "reasons", "email", "detail"], fmt, title="Quarantine"
    )


# -- escalations -------------------------------------------------------------------------

escalations_app = typer.Typer(
    help="Sales-ready leads handed to reps: list, show, acknowledge, close, run the loop.",
    no_args_is_help=True,
)
app.add_typer(escalations_app, name="escalations")

ESCALATION_COLUMNS = [
    "id",
    "lead_id",
    "email",
    "trigger",
    "status",
    "assignee",
    "reroutes",
    "sla_due_at",
    "created_at",
]


ASSIGNMENT_COLUMNS = [
    "seq",
    "assignee",
    "rule",
    "detail",
    "assigned_at",
    "sla_due_at",
    "ended_at",
    "end_reason",
]


def _escalation_runtime(settings: Settings) -> Any:
    from leadops.sales.escalation import load_escalation_runtime

    return load_escalation_runtime(settings)


@escalations_app.command("list")
def escalations_list(
    status: Annotated[
        str | None,
        typer.Option(
            help="open, acknowledged, rerouted, closed_won, closed_lost, recycled, "
            "or active (the first three)."
        ),
    ] = "active",
    rep: Annotated[str | None, typer.Option(help="Only this rep key.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (0 for all).")] = 200,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """List escalations, newest first. Example: leadops escalations list --status all"""
    from leadops.sales.escalation import escalation_rows

    engine = _engine(_settings())
    rows = escalation_rows(engine, status=status, rep=rep, limit=limit)
    emit(rows, ESCALATION_COLUMNS, fmt, title=f"Escalations ({len(rows)})")


@escalations_app.command("show")
def escalations_show(
    escalation_id: Annotated[int, typer.Argument(help="Escalation id.")],
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Show one escalation: reasons, every assignment (audit) and every notification.

    Example: leadops escalations show 3
    """
    from leadops.sales.escalation import EscalationError, escalation_detail

    engine = _engine(_settings())
    try:
        detail = escalation_detail(engine, escalation_id)
    except EscalationError as exc:
        raise CliError(str(exc)) from exc
    if fmt != Format.TABLE:
        emit([detail["escalation"]], list(detail["escalation"]), fmt)
        return
    emit(
        [{"field": k, "value": v} for k, v in detail["escalation"].items()],
        ["field", "value"],
        fmt,
        title=f"Escalation {escalation_id}",
    )
    emit(detail["reasons"], ["reason", "points"], fmt, title="Why sales-ready")
    emit(
        detail["assignments"],
        [
            "seq",
            "assignee",
            "rule",
            "detail",
            "assigned_at",
            "sla_due_at",
            "ended_at",
            "end_reason",
        ],
        fmt,
        title="Assignments",
    )
    emit(
        detail["notifications"],
        ["id", "role", "recipient", "channel", "status", "sent_at", "provider_id", "error"],
        fmt,
        title="Notifications",
    )


@escalations_app.command("ack")
def escalations_ack(
    escalation_id: Annotated[int, typer.Argument(help="Escalation id.")],
    by: Annotated[str, typer.Option(help="Who acknowledges (name or rep key).")],
    now: NowOption = None,
) -> None:
    """Acknowledge an escalation (stops its SLA clock).

    Example: leadops escalations ack 3 --by james
    """
    from leadops.sales.escalation import EscalationError, acknowledge

    engine = _engine(_settings())
    try:
        result = acknowledge(engine, escalation_id, now=_instant(now), by=by)
    except EscalationError as exc:
        raise CliError(str(exc)) from exc
    if not result.ok:
        raise CliError(f"escalation {escalation_id} not acknowledged: {result.message}")
    console.print(f"escalation {escalation_id} {result.message}")


@escalations_app.command("close")
def escalations_close(
    escalation_id: Annotated[int, typer.Argument(help="Escalation id.")],
    outcome: Annotated[
        str,
        typer.Option(help="won (lead becomes a customer), lost, or not-ready (back to nurture)."),
    ],
    by: Annotated[str, typer.Option(help="Who closes it.")] = "cli",
    note: Annotated[str | None, typer.Option(help="A note kept with the escalation.")] = None,
    now: NowOption = None,
) -> None:
    """Close an escalation. Example: leadops escalations close 3 --outcome not-ready"""
    from leadops.sales.escalation import EscalationError, close

    engine = _engine(_settings())
    try:
        escalation = close(
            engine,
            escalation_id,
            outcome.replace("-", "_"),
            now=_instant(now),
            by=by,
            note=note,
        )
    except EscalationError as exc:
        raise CliError(str(exc)) from exc
    console.print(f"escalation {escalation_id} is {escalation.status}")


@escalations_app.command("run")
def escalations_run(now: NowOption = None) -> None:
    """One pass of the every-minute loop without Prefect: escalate SQL leads, re-route
    missed SLAs, send due notifications; new webhook events are applied first, so a
    hand-raise is escalated at once. Example: leadops escalations run"""
    from leadops.sales.escalation import run_escalations
    from leadops.sales.handoff import apply_inbox_and_escalate

    settings = _settings()
    runtime = _escalation_runtime(settings)
    at = _instant(now)
    fast = apply_inbox_and_escalate(_runtime(settings), runtime, at)
    report = run_escalations(runtime, at)
    console.print(
        f"webhook events applied {fast.events}, "
        f"escalated {fast.escalated + report.escalated}, re-routed {report.rerouted}, "
        f"to the fallback queue {report.to_queue}, notifications sent {report.notify.sent}, "
        f"failed {report.notify.failed}, ambiguous {report.notify.ambiguous}"
    )


@escalations_app.command("route")
def escalations_route(
    lead_id: Annotated[int, typer.Argument(help="Lead id.")],
    now: NowOption = None,
) -> None:
    """Show who would get a lead now and why, without escalating it.

    Example: leadops escalations route 42 --now 2026-12-01T10:00Z
    """
    from leadops.sales.escalation import EscalationError, preview_route

    runtime = _escalation_runtime(_settings())
    try:
        decision = preview_route(runtime, lead_id, _instant(now))
    except EscalationError as exc:
        raise CliError(str(exc)) from exc
    who = decision.rep.key if decision.rep else "the fallback queue"
    console.print(f"lead {lead_id} -> {who} ({decision.rule}: {decision.detail})", markup=False)


@quarantine_app.command("show")
def quarantine_show(
    record_id: Annotated[int, typer.Argument(help="Quarantined record id.")],
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Show one quarantined record: source, reasons, detail and every raw field.

    Example: leadops quarantine show 3
    """
    from leadops.models import QuarantinedRecord

    with Session(_engine(_settings())) as session:
        record = session.get(QuarantinedRecord, record_id)
    if record is None:
        raise CliError(f"no quarantined record with id {record_id}")
    if fmt != Format.TABLE:
        emit([record.model_dump()], list(QuarantinedRecord.model_fields), fmt)
        return
    info = record.model_dump(exclude={"raw"}) | {"reasons": ", ".join(record.reasons)}
    emit(
        [{"field": k, "value": v} for k, v in info.items()],
        ["field", "value"],
        fmt,
        title=f"Quarantined record {record_id}",
    )
    emit(
        [{"field": k, "value": v} for k, v in record.raw.items()],
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
    now: NowOption = None,
) -> None:
    """Validate records again (with corrections) and let those that pass into the leads;
    they merge into an existing lead when they match one. Failing ones stay open.

    Example: leadops quarantine release 3 --set email=maria.lopez@lopez.example
    """
    from leadops.intake.config import load_intake_config
    from leadops.intake.quarantine import QuarantineError, release

    settings = _settings()
    engine = _engine(settings)
    corrections = _corrections(set_ or [])
    mapping = load_intake_config(settings.config_dir).csv.column_mapping
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
                mapping=mapping,
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
    from leadops.models import QuarantinedFile

    engine = _engine(_settings())
    query = select(QuarantinedFile).where(col(QuarantinedFile.status) == status)
    with Session(engine) as session:
        records = session.exec(query.order_by(col(QuarantinedFile.id))).all()
    rows = [r.model_dump() for r in records]
    if fmt != Format.TABLE:
        emit(rows, [*FILE_COLUMNS, "path", "stored_path"], fmt)
        return
    emit(rows, FILE_TABLE_COLUMNS, fmt, title=f"Quarantined files ({status})")
    for r in records:
        detail = r.detail.replace("release-file ID", f"release-file {r.id}")
        console.print(f"file {r.id} ({r.name}): {detail}", soft_wrap=True, highlight=False)


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
    from leadops.intake.config import load_intake_config
    from leadops.intake.quarantine import QuarantineError
    from leadops.intake.run import TABLE_COLUMNS, release_file

    settings = _settings()
    engine = _engine(settings)
    config = load_intake_config(settings.config_dir)
    try:
        result = release_file(engine, settings, config, file_id, now=_instant(now), path=path)
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


# -- intake ------------------------------------------------------------------------------


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
    (the others still ran), 3 if a file was quarantined as a file (the others were read).

    Example: leadops intake run --now 2026-12-01T08:00Z
    """
    from leadops.intake.run import REPORT_COLUMNS, SOURCES, TABLE_COLUMNS, run_intake

    settings = _settings()
    engine = _engine(settings)
    for path in files or []:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    try:
        run = run_intake(
            engine,
            settings,
            now=_instant(now),
            files=files or [],
            sources=source or SOURCES,
            force=force,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    columns = TABLE_COLUMNS if fmt == Format.TABLE else REPORT_COLUMNS
    emit(run.rows(), columns, fmt, title=f"Intake {run.now:%Y-%m-%d %H:%M} UTC")
    if fmt == Format.TABLE:
        for line in run.reason_lines():
            console.print(line, soft_wrap=True, highlight=False)
        console.print(run.summary())
    _exit_for(run)


@app.command()
def stats() -> None:
    """Counts of leads by stage and touches by status. Example: leadops stats"""
    from leadops.models import Lead, Touch

    engine = _engine(_settings())
    with Session(engine) as session:
        stages = session.execute(
            select(col(Lead.lifecycle_stage), func.count()).group_by(col(Lead.lifecycle_stage))
        ).all()
        statuses = session.execute(
            select(col(Touch.status), func.count()).group_by(col(Touch.status))
        ).all()
    emit(
        [{"stage": s, "leads": n} for s, n in stages],
        ["stage", "leads"],
        Format.TABLE,
        title="Leads",
    )
    emit(
        [{"status": s, "touches": n} for s, n in statuses],
        ["status", "touches"],
        Format.TABLE,
        title="Touches",
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the webhooks app (uvicorn), with the connection limits and timeouts of
    leadops.web.server. Example: leadops serve --port 8000"""
    import uvicorn

    from leadops.web.server import uvicorn_options

    _engine(_settings())  # fail now, with a clear message, if the database is not ready
    uvicorn.run(
        "leadops.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=True,
        **uvicorn_options(),
    )


# -- engagement: rescore and webhooks --------------------------------------------------

webhooks_app = typer.Typer(help="The webhook inbox and refused requests.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@app.command()
def rescore(
    now: NowOption = None,
    no_prefect: Annotated[
        bool, typer.Option("--no-prefect", help="Run directly, without a flow run.")
    ] = False,
) -> None:
    """Apply the webhook inbox, rescore, decay, move stages and re-segment (the 5-minute
    Prefect flow). Example: leadops rescore --now 2026-12-02T15:00Z
    """
    settings = _settings()
    if no_prefect:
        from leadops.engagement.rescore import run_rescore
        from leadops.sales.handoff import escalate_sales_ready, escalation_runtime_or_none

        runtime = _runtime(settings)
        at = _instant(now)
        report = run_rescore(runtime, at)
        result = report.counts()
        escalation = escalation_runtime_or_none(settings, runtime.engine)
        if escalation is not None and report.sales_ready:
            handed = escalate_sales_ready(escalation, report.sales_ready, at)
            result["escalated"] = handed.escalated
            result["escalation_dead_letters"] = handed.dead_letters
        ready = [
            {
                "lead_id": r.lead_id,
                "trigger": r.trigger,
                "score": r.score,
                "reasons": ", ".join(r.reasons),
            }
            for r in report.sales_ready
        ]
    else:
        from flows.rescore import rescore_flow

        _runtime(settings)
        result = rescore_flow(now=_instant(now) if now else None)
        ready = []
    console.print("rescore done: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    if ready:
        emit(ready, ["lead_id", "trigger", "score", "reasons"], Format.TABLE, title="Sales-ready")


@webhooks_app.command("stats")
def webhooks_stats(fmt: FormatOption = Format.TABLE) -> None:
    """Inbox events by source, kind and status, and refused requests by reason.

    Example: leadops webhooks stats
    """
    from leadops.engagement.inbox import inbox_counts, rejection_counts

    engine = _engine(_settings())
    emit(inbox_counts(engine), ["source", "kind", "status", "events"], fmt, title="Inbox")
    emit(
        rejection_counts(engine),
        ["source", "reason", "count", "last_at"],
        fmt,
        title="Refused requests",
    )
    emit(
        deadletters.counts(engine),
        ["item", "status", "count", "last_failed_at"],
        fmt,
        title="Dead letters (leadops deadletters list)",
    )


# -- dead letters ------------------------------------------------------------------------

deadletters_app = typer.Typer(
    help="Inbox events, touches and escalations a pipeline set aside, with their errors.",
    no_args_is_help=True,
)
app.add_typer(deadletters_app, name="deadletters")
DEAD_LETTER_COLUMNS = [
    "id",
    "item",
    "item_id",
    "stage",
    "status",
    "item_status",
    "failures",
    "retries",
    "last_failed_at",
    "error",
]


@deadletters_app.command("list")
def deadletters_list(
    status: Annotated[
        str, typer.Option(help="open (waiting for a retry), retried, or all.")
    ] = "open",
    item: Annotated[str | None, typer.Option(help="Only inbox, touch or escalation.")] = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """What the rescore, dispatch and escalation runs set aside, with the error and when.

    Example: leadops deadletters list --status all --format json
    """
    from leadops.models import DeadLetterItem, DeadLetterStatus

    statuses = {s.value for s in DeadLetterStatus}
    if status != "all" and status not in statuses:
        raise CliError(f"--status must be all or one of {', '.join(sorted(statuses))}")
    items = {i.value for i in DeadLetterItem}
    if item is not None and item not in items:
        raise CliError(f"--item must be one of {', '.join(sorted(items))}")
    rows = deadletters.list_rows(
        _engine(_settings()), status=None if status == "all" else status, item=item
    )
    columns = DEAD_LETTER_COLUMNS
    if fmt == Format.TABLE:  # the rest is in --format json|csv
        columns = [c for c in columns if c not in ("item_status", "retries")]
    emit(rows, columns, fmt, title=f"Dead letters ({status})")


@deadletters_app.command("retry")
def deadletters_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids.")] = None,
    retry_all: Annotated[bool, typer.Option("--all", help="Every open dead letter.")] = False,
    now: NowOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Retry dead letters after fixing their cause: an inbox event or touch goes back to
    pending (the next rescore or run applies it, once); an escalation runs again now.
    Exit code 1 when one fails again.

    Example: leadops deadletters retry 3 4, or leadops deadletters retry --all
    """
    from leadops.sales.escalation import load_escalation_runtime

    if bool(ids) == retry_all:
        raise CliError("give dead letter ids or --all (see `leadops deadletters list`)")
    settings = _settings()
    engine = _engine(settings)
    try:
        results = deadletters.retry(
            engine,
            None if retry_all else ids,
            _instant(now),
            escalation_runtime=lambda: load_escalation_runtime(settings, engine=engine),
        )
    except deadletters.DeadLetterError as exc:
        raise CliError(str(exc)) from exc
    rows = [
        {"id": r.id, "item": r.item, "item_id": r.item_id, "outcome": r.outcome, "detail": r.detail}
        for r in results
    ]
    emit(rows, ["id", "item", "item_id", "outcome", "detail"], fmt, title="Retried")
    if any(r.outcome == "failed" for r in results):
        raise typer.Exit(1)


# -- operations: report, doctor, deploy --------------------------------------------------


@app.command()
def report(
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML report (charts) here.")
    ] = None,
    now: NowOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """KPIs and stuck work: response times, funnel, nurture conversion, scores, cost per
    lead, leads never followed up, per-step delivery and engagement rates, escalations.
    Exit code 2 when stuck work is above LEADOPS_STUCK_THRESHOLD.

    Example: leadops report --html report.html
    """
    from leadops.reporting import kpis, stuck
    from leadops.reporting.report import build_report, write_html

    settings = _settings()
    result = build_report(_engine(settings), settings, _instant(now))
    k = result.kpis
    emit(kpis.headline_rows(k), ["kpi", "value", "note"], fmt, title="KPIs")
    if fmt == Format.TABLE:
        emit(
            kpis.funnel_rows(k),
            ["stage", "leads now", "reached", "to next stage"],
            fmt,
            title="Conversion by stage",
        )
        cost = kpis.cost_rows(k)
        emit(cost, list(cost[0]) if cost else ["source"], fmt, title="Cost per lead by source")
        steps = kpis.step_rows(k)
        emit(steps, list(steps[0]) if steps else ["campaign"], fmt, title="Campaign steps")
        engaged = kpis.engagement_rows(k)
        emit(
            engaged,
            list(engaged[0]) if engaged else ["campaign"],
            fmt,
            title="Engagement per step: unique messages, of those sent",
        )
        emit(kpis.escalation_rows(k), ["figure", "value"], fmt, title="Escalations")
        emit(
            stuck.finding_rows(result.stuck),
            ["check", "count", "what", "action"],
            fmt,
            title=f"Stuck work: {result.stuck.total} (threshold {result.stuck.threshold})",
        )
        for name, why in k.missing:
            console.print(f"[dim]not available: {name} ({why})[/]", highlight=False)
    if html is not None:
        (console if fmt == Format.TABLE else err).print(
            f"HTML report written to {write_html(result, html)}"
        )
    if result.stuck.over_threshold:
        err.print(f"[red]stuck work above threshold:[/] {stuck.StuckWorkError(result.stuck)}")
        raise typer.Exit(2)


@app.command()
def doctor(fmt: FormatOption = Format.TABLE) -> None:
    """Check settings, database, migrations, config, templates, channels and the public
    URL without sending anything; explain each problem. Exit code 1 if any check fails.

    Example: leadops doctor
    """
    from leadops.ops import doctor as checks

    results = checks.run_checks(get_settings)
    emit(checks.rows(results), ["check", "status", "detail", "fix"], fmt, title="leadops doctor")
    if checks.failed(results):
        raise typer.Exit(1)


@app.command()
def deploy(
    project: Annotated[
        Path, typer.Option(help="Folder with prefect.yaml, flows/, config/ and templates/.")
    ] = Path(),
) -> None:
    """Create the process work pool `leadops` and deploy every flow in prefect.yaml to the
    Prefect server at PREFECT_API_URL (both commands are the README's, non-interactive).

    Example: PREFECT_API_URL=http://127.0.0.1:4200/api leadops deploy
    """
    from leadops.ops.prefect_stack import PrefectCommandError, deploy_all

    if not os.environ.get("PREFECT_API_URL"):
        raise CliError(
            "PREFECT_API_URL is not set: start a server (`prefect server start`) and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    home = project.resolve()
    env = dict(os.environ)
    env.setdefault("LEADOPS_HOME", str(home))
    try:
        console.print(deploy_all(env=env, cwd=home), markup=False, highlight=False)
    except PrefectCommandError as exc:
        raise CliError(str(exc)) from exc
    console.print(
        f"[green]deployed[/] flow runs will start in {env['LEADOPS_HOME']}; start a worker: "
        "prefect worker start --pool leadops"
    )


def _prefect_environment() -> None:
    """Prefect's home and defaults for this process, before Prefect is first imported."""
    from leadops.ops.prefect_stack import cli_prefect_environment

    try:
        data_dir = get_settings().data_dir
    except (ValidationError, ValueError, OSError):
        data_dir = Path("data")  # the command reports the broken settings itself
    os.environ.update(cli_prefect_environment(os.environ, data_dir))


def main() -> None:
    _prefect_environment()
    # The terminal shows warnings and errors (LEADOPS_LOG_LEVEL=INFO for more); flows still
    # send leadops' INFO lines to the Prefect run logs through Prefect's own handler.
    handler = logging.StreamHandler()
    handler.setLevel(os.environ.get("LEADOPS_LOG_LEVEL", "WARNING").upper())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    try:
        app()
    except (CliError, ConfigError, DatabaseNotReady, CsvFormatError, RenderError) as exc:
        _fail(str(exc))
    except Exception as exc:
        from leadops.core.db import is_locked, locked_message

        if not is_locked(exc):
            raise
        try:
            url = get_settings().resolved_database_url
        except Exception:  # the settings loaded before; this is only for the file name
            url = "leadops.db"
        _fail(locked_message(url))


def _fail(message: str) -> None:
    """The one-line error of a mistake the user can fix; exit code 1."""
    err.print(f"[red]error:[/] {one_line(message)}", highlight=False, soft_wrap=True)
    sys.exit(1)
