"""What every command module shares: the consoles, `CliError`, the `--now` and `--format`
options, and loading settings, the clock's instant and a ready database engine."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from leadops.cli.output import Format
from leadops.core.clock import clock_for
from leadops.core.settings import Settings, get_settings

console = Console()
err = Console(stderr=True)

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


def _check_config(settings: Settings) -> None:
    """Fail now, with the config's own error, if the nurture runtime would not load."""
    _runtime(settings)
