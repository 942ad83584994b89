"""`leadops crm`: set up HubSpot for the write-back, run a pass, and see the outbox."""

from __future__ import annotations

import typer

from leadops.cli.common import (
    CliError,
    FormatOption,
    NoPrefectOption,
    NowOption,
    _check_config,
    _engine,
    _instant,
    _runtime,
    _settings,
    console,
)
from leadops.cli.output import Format, emit, emit_sections

crm_app = typer.Typer(help="HubSpot write-back (config/crm.yaml).", no_args_is_help=True)


@crm_app.command("setup")
def crm_setup(now: NowOption = None, fmt: FormatOption = Format.TABLE) -> None:
    """Create the leadops_* contact properties and the unique deal property leadops_key in
    HubSpot if missing, and match reps (config/routing.yaml) to HubSpot owners by email.

    Example: leadops crm setup
    """
    from leadops.crm.setup import ensure_properties, match_owners
    from leadops.crm.sync import crm_client
    from leadops.providers.hubspot import HubSpotError

    settings = _settings()
    runtime = _runtime(settings)
    try:
        client = crm_client(settings, runtime.crm)
        lines = ensure_properties(client)
        reps = [(rep.key, rep.email) for rep in (runtime.routing.reps if runtime.routing else [])]
        lines += match_owners(runtime.engine, client, reps, now=_instant(now))
    except HubSpotError as exc:
        raise CliError(str(exc)) from exc
    rows = [{"object": x.object_type, "name": x.name, "result": x.result} for x in lines]
    emit(rows, ["object", "name", "result"], fmt, title="HubSpot set-up")


@crm_app.command("sync")
def crm_sync(
    now: NowOption = None,
    no_prefect: NoPrefectOption = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """One write-back pass: queue contacts whose values changed, send them in batches of
    up to 100, then deals and tasks for new escalations (when config/crm.yaml enables it).
    Exits 1 when HubSpot refused or stayed down (the rest stays queued for the next pass).

    Example: leadops crm sync --no-prefect --format json
    """
    settings = _settings()
    if no_prefect:
        from leadops.crm.sync import sync_crm
        from leadops.providers.hubspot import HubSpotError

        runtime = _runtime(settings)
        try:
            report = sync_crm(runtime.engine, settings, runtime.crm, now=_instant(now))
        except HubSpotError as exc:
            raise CliError(str(exc)) from exc
        result = report.as_dict()
    else:
        from flows.crm import crm_flow

        _check_config(settings)
        result = crm_flow(now=_instant(now) if now else None)
    errors = [{"error": e} for e in result.pop("errors", [])]
    if fmt != Format.TABLE:
        emit_sections({"counts": [result], "errors": errors}, fmt)
    elif not result.get("enabled"):
        console.print("CRM write-back is off (config/crm.yaml)")
    else:
        console.print("crm sync done: " + ", ".join(f"{k} {v}" for k, v in result.items()))
        for error in errors:
            console.print(f"[red]error[/red] {error['error']}")
    if errors:  # what was confirmed is recorded; the rest stays queued
        raise typer.Exit(1)


@crm_app.command("status")
def crm_status_command(fmt: FormatOption = Format.TABLE) -> None:
    """The contact outbox: pending (and how many are retrying), failed and written
    contacts, deals by status, and the last error.

    Example: leadops crm status --format json
    """
    from leadops.crm.sync import crm_status

    status = crm_status(_engine(_settings()))
    deals = status.pop("deals")
    row = status | {f"deals_{k}": v for k, v in sorted(deals.items())}
    if fmt == Format.JSON:
        from leadops.cli.output import print_json

        print_json(status | {"deals": deals})
        return
    emit([row], list(row), fmt, title="CRM write-back")
