"""What every command module shares: the consoles, `CliError`, the `--now` and `--format`
options, and loading settings, the clock's instant and the one runtime
(`leadops.runtime`: its engine, nurture parts, escalation parts)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from leadops.cli.output import Format
from leadops.core.clock import clock_for
from leadops.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from leadops.runtime import Runtime
    from leadops.sales.runtime import EscalationRuntime

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
NoPrefectOption = Annotated[
    bool, typer.Option("--no-prefect", help="Run directly, without a flow run.")
]


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


def _build(settings: Settings) -> Runtime:
    """The one runtime of this command; each part loads when the command first uses it."""
    from leadops.runtime import build_runtime

    return build_runtime(settings)


def _engine(settings: Settings) -> Any:
    """A ready database engine (reachable, at the latest schema)."""
    return _build(settings).engine


def _runtime(settings: Settings) -> Runtime:
    """A runtime with the nurture parts loaded and checked."""
    return _build(settings).nurture()


def _escalation_runtime(settings: Settings) -> EscalationRuntime:
    """The escalation parts of a new runtime; fails without routing.yaml, as always."""
    return _build(settings).require_escalation()


def _check_config(settings: Settings) -> None:
    """Fail now, with the config's own error, if the nurture parts would not load."""
    _runtime(settings)
