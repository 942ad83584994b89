"""`leadops escalations`: sales-ready leads handed to reps."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from leadops.cli.common import (
    CliError,
    FormatOption,
    NowOption,
    _build,
    _engine,
    _escalation_runtime,
    _instant,
    _settings,
    console,
    err,
)
from leadops.cli.output import Format, counted, emit, limit_note

escalations_app = typer.Typer(
    help="Sales-ready leads handed to reps: list, show, acknowledge, close, run the loop.",
    no_args_is_help=True,
)


ESCALATION_COLUMNS = [
    "id",
    "lead_id",
    "email",
    "trigger",
    "why",
    "status",
    "assignee",
    "reroutes",
    "sla_due_at",
    "created_at",
]


ASSIGNMENT_COLUMNS = [
    "seq",
    "assignee",
    "rule",
    "detail",
    "assigned_at",
    "sla_due_at",
    "ended_at",
    "end_reason",
]


@escalations_app.command("list")
def escalations_list(
    status: Annotated[
        str | None,
        typer.Option(
            help="open, acknowledged, rerouted, closed_won, closed_lost, recycled, "
            "or active (the first three)."
        ),
    ] = "active",
    rep: Annotated[str | None, typer.Option(help="Only this rep key.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (0 for all).")] = 200,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """List escalations, newest first; a list cut by --limit says so on stderr.

    Example: leadops escalations list --status all
    """
    from leadops.views.escalations import escalation_rows

    engine = _engine(_settings())
    rows, total = escalation_rows(engine, status=status, rep=rep, limit=limit)
    emit(rows, ESCALATION_COLUMNS, fmt, title=counted("Escalations", len(rows), total))
    limit_note(len(rows), total, limit, err)


@escalations_app.command("show")
def escalations_show(
    escalation_id: Annotated[int, typer.Argument(help="Escalation id.")],
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Show one escalation: reasons, every assignment (audit) and every notification.

    Example: leadops escalations show 3
    """
    from leadops.sales.escalation import EscalationError
    from leadops.views.escalations import escalation_detail

    engine = _engine(_settings())
    try:
        detail = escalation_detail(engine, escalation_id)
    except EscalationError as exc:
        raise CliError(str(exc)) from exc
    if fmt != Format.TABLE:
        emit([detail["escalation"]], list(detail["escalation"]), fmt)
        return
    emit(
        [{"field": k, "value": v} for k, v in detail["escalation"].items()],
        ["field", "value"],
        fmt,
        title=f"Escalation {escalation_id}",
    )
    emit(detail["reasons"], ["reason", "points"], fmt, title="Why sales-ready")
    emit(
        detail["assignments"],
        ASSIGNMENT_COLUMNS,
        fmt,
        title="Assignments",
    )
    emit(
        detail["notifications"],
        ["id", "role", "recipient", "channel", "status", "sent_at", "provider_id", "error"],
        fmt,
        title="Notifications",
    )


@escalations_app.command("ack")
def escalations_ack(
    escalation_id: Annotated[int, typer.Argument(help="Escalation id.")],
    by: Annotated[str, typer.Option(help="Who acknowledges (name or rep key).")],
    now: NowOption = None,
) -> None:
    """Acknowledge an escalation (stops its SLA clock).

    Example: leadops escalations ack 3 --by james
    """
    from leadops.sales.acks import acknowledge
    from leadops.sales.escalation import EscalationError

    engine = _engine(_settings())
    try:
        result = acknowledge(engine, escalation_id, now=_instant(now), by=by)
    except EscalationError as exc:
        raise CliError(str(exc)) from exc
    if not result.ok:
        raise CliError(f"escalation {escalation_id} not acknowledged: {result.message}")
    console.print(f"escalation {escalation_id} {result.message}")


@escalations_app.command("close")
def escalations_close(
    escalation_id: Annotated[int, typer.Argument(help="Escalation id.")],
    outcome: Annotated[
        str,
        typer.Option(
            help="won (lead becomes a customer), lost, not-ready (back to nurture, tried "
            "again at --retry-at) or disqualified (marketing stops)."
        ),
    ],
    by: Annotated[str, typer.Option(help="Who closes it.")] = "cli",
    note: Annotated[str | None, typer.Option(help="A note kept with the escalation.")] = None,
    amount: Annotated[
        str | None, typer.Option(help="won: the amount in the currency's major unit (1250.50).")
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(help="lost, not-ready, disqualified: the reason code (see the sales guide)."),
    ] = None,
    retry_at: Annotated[
        str | None,
        typer.Option(
            help="not-ready: when to escalate the lead again: a date (09:00 the lead's "
            "time) or an ISO date and time with its offset."
        ),
    ] = None,
    now: NowOption = None,
) -> None:
    """Close an escalation (closing acknowledges it first if nobody has).

    Example: leadops escalations close 3 --outcome won --amount 1250 --by ana
    """
    from leadops.sales.acks import close, parse_amount, retry_for
    from leadops.sales.escalation import EscalationError

    engine = _engine(_settings())
    try:
        escalation = close(
            engine,
            escalation_id,
            outcome.replace("-", "_"),
            now=_instant(now),
            by=by,
            note=note,
            reason=reason.replace("-", "_") if reason else None,
            amount_cents=parse_amount(amount) if amount is not None else None,
            retry_at=retry_for(engine, escalation_id, retry_at) if retry_at else None,
        )
    except EscalationError as exc:
        raise CliError(str(exc)) from exc
    console.print(f"escalation {escalation_id} is {escalation.status}")


def _record(escalation_id: int, action: Any, by: str, now: str | None) -> None:
    from leadops.sales.acks import act
    from leadops.sales.escalation import EscalationError

    engine = _engine(_settings())
    try:
        result = act(engine, escalation_id, action, now=_instant(now), by=by)
    except EscalationError as exc:
        raise CliError(str(exc)) from exc
    if not result.ok:
        raise CliError(f"escalation {escalation_id}: {result.message}")
    console.print(f"escalation {escalation_id}: {result.message}", markup=False)


@escalations_app.command("contact")
def escalations_contact(
    escalation_id: Annotated[int, typer.Argument(help="Escalation id.")],
    channel: Annotated[str, typer.Option(help="call, email or meeting.")],
    by: Annotated[str, typer.Option(help="Who contacted the lead (name or rep key).")],
    note: Annotated[str | None, typer.Option(help="What happened.")] = None,
    now: NowOption = None,
) -> None:
    """Log a contact with the lead; the first one is the speed-to-lead contact.

    Example: leadops escalations contact 3 --channel call --by ana
    """
    from leadops.models import ActivityKind
    from leadops.sales.acks import Action

    _record(escalation_id, Action(ActivityKind.CONTACTED, channel=channel, note=note), by, now)


@escalations_app.command("note")
def escalations_note(
    escalation_id: Annotated[int, typer.Argument(help="Escalation id.")],
    text: Annotated[str, typer.Argument(help="The note.")],
    by: Annotated[str, typer.Option(help="Who writes it.")],
    now: NowOption = None,
) -> None:
    """Add a note to an escalation.

    Example: leadops escalations note 3 "Wants a call on Friday" --by ana
    """
    from leadops.models import ActivityKind
    from leadops.sales.acks import Action

    _record(escalation_id, Action(ActivityKind.NOTE, note=text), by, now)


@escalations_app.command("run")
def escalations_run(now: NowOption = None, fmt: FormatOption = Format.TABLE) -> None:
    """One pass of the every-minute loop without Prefect: escalate SQL leads, re-route
    missed SLAs, send due notifications; new webhook events are applied first, so a
    hand-raise is escalated at once; --format json|csv gives the counts as one row.

    Example: leadops escalations run --format json
    """
    from leadops.sales.handoff import apply_inbox_and_escalate
    from leadops.sales.scan import run_escalations

    runtime = _build(_settings())
    escalation = runtime.require_escalation()
    at = _instant(now)
    fast = apply_inbox_and_escalate(runtime.nurture(), escalation, at)
    report = run_escalations(escalation, at)
    counts = {
        "webhook_events_applied": fast.events,
        "escalated": fast.escalated + report.escalated,
        "rerouted": report.rerouted,
        "to_fallback_queue": report.to_queue,
        "notifications_sent": report.notify.sent,
        "notifications_failed": report.notify.failed,
        "notifications_ambiguous": report.notify.ambiguous,
    }
    if fmt != Format.TABLE:
        emit([counts], list(counts), fmt)
        return
    console.print(
        f"webhook events applied {fast.events}, "
        f"escalated {counts['escalated']}, re-routed {report.rerouted}, "
        f"to the fallback queue {report.to_queue}, notifications sent {report.notify.sent}, "
        f"failed {report.notify.failed}, ambiguous {report.notify.ambiguous}"
    )


@escalations_app.command("route")
def escalations_route(
    lead_id: Annotated[int, typer.Argument(help="Lead id.")],
    now: NowOption = None,
) -> None:
    """Show who would get a lead now and why, without escalating it.

    Example: leadops escalations route 42 --now 2026-12-01T10:00Z
    """
    from leadops.sales.escalation import EscalationError
    from leadops.views.escalations import preview_route

    runtime = _escalation_runtime(_settings())
    try:
        decision = preview_route(runtime, lead_id, _instant(now))
    except EscalationError as exc:
        raise CliError(str(exc)) from exc
    who = decision.rep.key if decision.rep else "the fallback queue"
    console.print(f"lead {lead_id} -> {who} ({decision.rule}: {decision.detail})", markup=False)
