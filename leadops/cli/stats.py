"""`leadops stats`: counts of leads by stage and touches by status."""

from __future__ import annotations

import typer

from leadops.cli.common import (
    FormatOption,
    _engine,
    _settings,
)
from leadops.cli.output import Format, emit_sections

commands = typer.Typer()


@commands.command()
def stats(fmt: FormatOption = Format.TABLE) -> None:
    """Counts of leads by stage and touches by status; --format json|csv gives the
    sections `leads` and `touches`. Example: leadops stats --format json"""
    from leadops.views.stats import stage_counts, status_counts

    engine = _engine(_settings())
    emit_sections(
        {"leads": stage_counts(engine), "touches": status_counts(engine)},
        fmt,
        titles={"leads": "Leads", "touches": "Touches"},
        columns={"leads": ["stage", "leads"], "touches": ["status", "touches"]},
    )
