"""`leadops stats`: counts of leads by stage and touches by status."""

from __future__ import annotations

import typer

from leadops.cli.common import (
    _engine,
    _settings,
)
from leadops.cli.output import Format, emit

commands = typer.Typer()


@commands.command()
def stats() -> None:
    """Counts of leads by stage and touches by status. Example: leadops stats"""
    from leadops.views.stats import stage_counts, status_counts

    engine = _engine(_settings())
    emit(stage_counts(engine), ["stage", "leads"], Format.TABLE, title="Leads")
    emit(status_counts(engine), ["status", "touches"], Format.TABLE, title="Touches")
