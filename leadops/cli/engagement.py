"""`leadops rescore` and `leadops webhooks`: apply the inbox and rescore; inbox counts."""

from __future__ import annotations

import typer

from leadops import deadletters
from leadops.cli.common import (
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

commands = typer.Typer()
webhooks_app = typer.Typer(help="The webhook inbox and refused requests.", no_args_is_help=True)


@commands.command()
def rescore(
    now: NowOption = None,
    no_prefect: NoPrefectOption = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Apply the webhook inbox, rescore, decay, move stages and re-segment (the 5-minute
    Prefect flow). --format json|csv gives the sections `counts` (one row) and
    `sales_ready` (with --no-prefect).

    Example: leadops rescore --now 2026-12-02T15:00Z
    """
    settings = _settings()
    if no_prefect:
        from leadops.engagement.rescore import run_rescore
        from leadops.sales.handoff import escalate_if_routed

        runtime = _runtime(settings)
        at = _instant(now)
        report = run_rescore(runtime, at)
        result = report.counts()
        # The rescore flow's two steps, without Prefect.
        handed = escalate_if_routed(runtime.escalation, report.sales_ready, at)
        if handed is not None:
            result["escalated"] = handed.escalated
            result["escalation_dead_letters"] = handed.dead_letters
        ready = [item.row() for item in report.sales_ready]
    else:
        from flows.rescore import rescore_flow

        _check_config(settings)
        result = rescore_flow(now=_instant(now) if now else None)
        ready = []
    if fmt != Format.TABLE:
        emit_sections({"counts": [result], "sales_ready": ready}, fmt)
        return
    console.print("rescore done: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    if ready:
        emit(ready, ["lead_id", "trigger", "score", "reasons"], Format.TABLE, title="Sales-ready")


@webhooks_app.command("stats")
def webhooks_stats(fmt: FormatOption = Format.TABLE) -> None:
    """Inbox events by source, kind and status, and refused requests by reason.

    Example: leadops webhooks stats
    """
    from leadops.views.webhooks import inbox_counts, rejection_counts

    engine = _engine(_settings())
    emit(inbox_counts(engine), ["source", "kind", "status", "events"], fmt, title="Inbox")
    emit(
        rejection_counts(engine),
        ["source", "reason", "count", "last_at"],
        fmt,
        title="Refused requests",
    )
    emit(
        deadletters.counts(engine),
        ["item", "status", "count", "last_failed_at"],
        fmt,
        title="Dead letters (leadops deadletters list)",
    )
