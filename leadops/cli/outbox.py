"""`leadops outbox`: list touches and settle ambiguous ones."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from leadops.cli.common import (
    CliError,
    FormatOption,
    NowOption,
    _engine,
    _instant,
    _settings,
    console,
    err,
)
from leadops.cli.output import Format, counted, emit, limit_note

outbox_app = typer.Typer(
    help="Messages planned and sent (the touches table).", no_args_is_help=True
)


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
    channel: Annotated[str | None, typer.Option(help="Only email, whatsapp or sms.")] = None,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign.")] = None,
    lead: Annotated[int | None, typer.Option(help="Only this lead id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (0 for all).")] = 200,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """List touches with their lead's address, status and times; a list cut by --limit
    says so on stderr.

    Example: leadops outbox list --status ambiguous --format json
    """
    from leadops.views.outbox import touch_rows

    engine = _engine(_settings())
    rows, total = touch_rows(
        engine, status=status, channel=channel, campaign=campaign, lead=lead, limit=limit
    )
    emit(rows, OUTBOX_COLUMNS, fmt, title=counted("Touches", len(rows), total))
    limit_note(len(rows), total, limit, err)


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
