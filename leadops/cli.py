"""The `leadops` command line (typer + rich).

Every command that depends on time takes `--now` (ISO 8601, e.g. 2026-12-01T09:00Z), so
anything can be replayed or simulated. Every list takes `--format table|json|csv`.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func
from sqlmodel import Session, col, select

from leadops.clock import clock_for
from leadops.configfile import ConfigError
from leadops.db import DatabaseNotReady
from leadops.intake.csv_source import CsvFormatError
from leadops.output import Format, emit
from leadops.render import RenderError
from leadops.settings import Settings, get_settings

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
quarantine_app = typer.Typer(help="Records intake refused, with reasons.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
app.add_typer(leads_app, name="leads")
app.add_typer(outbox_app, name="outbox")
app.add_typer(templates_app, name="templates")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(db_app, name="db")

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
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise CliError(f"invalid settings: {problems}") from exc


def _instant(now: str | None) -> datetime:
    try:
        return clock_for(now).now()
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _engine(settings: Settings) -> Any:
    from leadops.db import ensure_ready, make_engine

    engine = make_engine(settings.resolved_database_url)
    ensure_ready(engine)
    return engine


def _runtime(settings: Settings) -> Any:
    from leadops.nurture import load_runtime

    return load_runtime(settings)


# -- init / db ---------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create the data folder and database, apply migrations and check the config.

    Example: leadops init
    """
    from leadops.campaigns import load_campaigns
    from leadops.db import make_engine, upgrade
    from leadops.segments import load_segments

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    campaigns = load_campaigns(settings.config_dir)
    segments = load_segments(settings.config_dir, set(campaigns))
    settings.signing_key()
    console.print(f"[green]database ready[/] {engine.url.render_as_string(hide_password=True)}")
    console.print(
        f"[green]config ok[/] {len(campaigns)} campaigns ({', '.join(sorted(campaigns))}), "
        f"{len(segments.rules)} segment rules"
    )
    console.print(f"outbox folder: {settings.resolved_outbox_dir}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations. Example: leadops db upgrade"""
    from leadops.db import current_revision, make_engine, upgrade

    engine = make_engine(_settings().resolved_database_url)
    upgrade(engine)
    console.print(f"database at revision {current_revision(engine)}")


@db_app.command("status")
def db_status() -> None:
    """Show the schema revision. Example: leadops db status"""
    from leadops.db import current_revision, head_revision, make_engine

    engine = make_engine(_settings().resolved_database_url)
    current, head = current_revision(engine), head_revision()
    state = "[green]up to date[/]" if current == head else "[yellow]needs `leadops db upgrade`[/]"
    console.print(f"database revision {current or 'none'}, latest {head}: {state}")


# -- leads -------------------------------------------------------------------------------


@leads_app.command("import")
def leads_import(
    files: Annotated[list[Path], typer.Argument(help="CSV files with the canonical columns.")],
    source: Annotated[str | None, typer.Option(help="Source name (default: csv:<file>).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Import a file even if its content was imported before.")
    ] = False,
    now: NowOption = None,
) -> None:
    """Import leads from CSV files; bad rows go to quarantine with reasons. A file whose
    content was imported before is skipped.

    Example: leadops leads import config/sample_leads.csv
    """
    from leadops.db import session_scope
    from leadops.intake.csv_source import import_csv_file

    settings = _settings()
    engine = _engine(settings)
    at = _instant(now)
    rows = []
    for path in files:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
        with session_scope(engine) as session:
            report, earlier = import_csv_file(
                session,
                path,
                source=source or f"csv:{path.name}",
                now=at,
                default_region=settings.default_region,
                default_timezone=settings.default_timezone,
                force=force,
            )
        if report is None:
            assert earlier is not None
            when = f"{earlier.imported_at:%Y-%m-%d %H:%M} UTC"
            rows.append(
                {
                    "file": str(path),
                    "read": 0,
                    "created": 0,
                    "quarantined": 0,
                    "reasons": f"skipped: same content imported {when} (--force to import again)",
                }
            )
            continue
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(report.quarantined.items())) or "-"
        rows.append(
            {
                "file": str(path),
                "read": report.read,
                "created": report.created,
                "quarantined": report.quarantined_total,
                "reasons": reasons,
            }
        )
    emit(rows, ["file", "read", "created", "quarantined", "reasons"], Format.TABLE, title="Import")


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
    """Show one lead: profile, consent, enrollments and every touch.

    Example: leadops leads show 12
    """
    from leadops.models import Enrollment, Lead, Touch

    engine = _engine(_settings())
    with Session(engine) as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise CliError(f"no lead with id {lead_id}")
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
        emit([lead.model_dump()], list(Lead.model_fields), fmt)
        return
    emit(
        [{"field": k, "value": v} for k, v in lead.model_dump().items()],
        ["field", "value"],
        fmt,
        title=f"Lead {lead_id}",
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


# -- run / simulate ----------------------------------------------------------------------


def _print_summary(engine: Any, title: str) -> None:
    from leadops.summary import SUMMARY_COLUMNS, summary_rows, touch_summary

    emit(summary_rows(touch_summary(engine)), SUMMARY_COLUMNS, Format.TABLE, title=title)


@app.command()
def run(
    now: NowOption = None,
    no_prefect: Annotated[
        bool, typer.Option("--no-prefect", help="Run the stages directly, without a flow run.")
    ] = False,
) -> None:
    """Run one nurture tick: segment, plan, apply the contact policy, send, record.

    Example: leadops run --now 2026-12-01T15:00Z
    """
    settings = _settings()
    runtime = _runtime(settings)
    at = _instant(now) if now else None
    if no_prefect:
        from leadops.nurture import run_tick

        tick = run_tick(runtime, clock_for(at))
        result = {
            "sent": tick.dispatch.sent_total,
            "held": sum(tick.dispatch.held.values()),
            "skipped": sum(tick.dispatch.skipped.values()),
            "failed": tick.dispatch.failed,
            "ambiguous": tick.dispatch.ambiguous,
        }
    else:
        from flows.nurture import nurture_flow

        result = nurture_flow(now=at)
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
    from leadops import progress
    from leadops.nurture import simulate as run_simulation

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
                for day in range(days):
                    day_start = begin + timedelta(days=day)
                    run_simulation(runtime, day_start, day_start + timedelta(days=1))
                    progress.notify((day + 1) / days, f"day {day + 1} of {days}")
            else:
                from flows.nurture import simulate_flow

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
    from leadops.resolution import ResolutionError, resolve_touch

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
    from leadops.campaigns import load_campaigns
    from leadops.messages import template_context
    from leadops.render import Renderer

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
    from leadops.campaigns import load_campaigns
    from leadops.messages import lead_context, template_context, unsubscribe_url
    from leadops.models import Lead
    from leadops.render import Renderer

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
    """Serve the webhooks app (uvicorn). Example: leadops serve --port 8000"""
    import uvicorn

    _engine(_settings())  # fail now, with a clear message, if the database is not ready
    uvicorn.run(
        "leadops.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=True,
    )


# Prefect defaults for a command-line run, set before Prefect is first imported; the
# environment wins. The first ephemeral server on a new PREFECT_HOME runs migrations,
# which can take longer than Prefect's default 20 s on a busy 2-core machine.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "leadops",
}


def main() -> None:
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except (CliError, ConfigError, DatabaseNotReady, CsvFormatError, RenderError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
