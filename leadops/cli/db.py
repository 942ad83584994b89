"""`leadops init` and `leadops db`: create the database, apply migrations, check the config."""

from __future__ import annotations

import typer

from leadops.cli.common import (
    _settings,
    console,
)

commands = typer.Typer()
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@commands.command()
def init() -> None:
    """Create the data folder and database, apply migrations and check the config.

    Example: leadops init
    """
    from leadops.core.db import make_engine, upgrade
    from leadops.runtime import build_runtime

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)  # not ready yet: upgraded first
    upgrade(engine)
    runtime = build_runtime(settings, engine=engine)
    campaigns, segments = runtime.campaigns, runtime.segments
    settings.signing_key()
    from leadops.sales.routing import load_routing
    from leadops.sales.runtime import routing_path

    routing_file = routing_path(settings)
    routing = load_routing(routing_file, settings.config_dir) if routing_file.exists() else None
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
