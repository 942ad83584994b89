"""`leadops deadletters`: work a pipeline set aside; list and retry it."""

from __future__ import annotations

from typing import Annotated

import typer

from leadops import deadletters
from leadops.cli.common import (
    CliError,
    FormatOption,
    NowOption,
    _build,
    _engine,
    _instant,
    _settings,
)
from leadops.cli.output import Format, emit

deadletters_app = typer.Typer(
    help="Inbox events, touches and escalations a pipeline set aside, with their errors.",
    no_args_is_help=True,
)


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
    from leadops.ops.retry import DeadLetterError, retry

    if bool(ids) == retry_all:
        raise CliError("give dead letter ids or --all (see `leadops deadletters list`)")
    runtime = _build(_settings())
    try:
        results = retry(
            runtime.engine,
            None if retry_all else ids,
            _instant(now),
            escalation_runtime=runtime.require_escalation,
        )
    except DeadLetterError as exc:
        raise CliError(str(exc)) from exc
    rows = [
        {"id": r.id, "item": r.item, "item_id": r.item_id, "outcome": r.outcome, "detail": r.detail}
        for r in results
    ]
    emit(rows, ["id", "item", "item_id", "outcome", "detail"], fmt, title="Retried")
    if any(r.outcome == "failed" for r in results):
        raise typer.Exit(1)
