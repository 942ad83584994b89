"""The `leadops` command line (typer + rich): the app, `main` and its error handling.

Every command that depends on time takes `--now` (ISO 8601, e.g. 2026-12-01T09:00Z), so
anything can be replayed or simulated. Every list takes `--format table|json|csv`. Each
sub-app has its own module; the top-level commands are mounted in their `--help` order.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer
from pydantic import ValidationError

from leadops.cli import (
    campaigns,
    crm,
    db,
    deadletters,
    engagement,
    escalations,
    intake,
    leads,
    model,
    nurture,
    ops,
    outbox,
    quarantine,
    scoring,
    segments,
    serve,
    stats,
    templates,
    why,
)
from leadops.cli.common import CliError, err
from leadops.core.configfile import ConfigError
from leadops.core.db import DatabaseNotReady, one_line
from leadops.core.settings import get_settings
from leadops.delivery.render import RenderError
from leadops.intake.csv_source import CsvFormatError

app = typer.Typer(
    help="leadops: lead-nurture automation. Start with `leadops init`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
# Top-level commands first (init, run, simulate, stats, serve, rescore, report, doctor,
# deploy), then the sub-apps, in the order `leadops --help` lists them.
for commands in (db, nurture, stats, serve, engagement, ops, why):
    app.add_typer(commands.commands)
app.add_typer(leads.leads_app, name="leads")
app.add_typer(outbox.outbox_app, name="outbox")
app.add_typer(templates.templates_app, name="templates")
app.add_typer(campaigns.campaigns_app, name="campaigns")
app.add_typer(quarantine.quarantine_app, name="quarantine")
app.add_typer(segments.segments_app, name="segments")
app.add_typer(scoring.scoring_app, name="scoring")
app.add_typer(db.db_app, name="db")
app.add_typer(intake.intake_app, name="intake")
app.add_typer(escalations.escalations_app, name="escalations")
app.add_typer(engagement.webhooks_app, name="webhooks")
app.add_typer(deadletters.deadletters_app, name="deadletters")
app.add_typer(model.model_app, name="model")
app.add_typer(crm.crm_app, name="crm")


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
