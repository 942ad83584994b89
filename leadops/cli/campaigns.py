"""`leadops campaigns`: list, show, pause, resume and forecast campaigns."""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer

from leadops.cli.common import (
    CliError,
    FormatOption,
    NowOption,
    _instant,
    _runtime,
    _settings,
    console,
)
from leadops.cli.output import Format, emit

campaigns_app = typer.Typer(
    help="Campaigns on a calendar: list, show, pause, resume, forecast.", no_args_is_help=True
)

CampaignArgument = Annotated[str, typer.Argument(help="The campaign key (its file name).")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who does it (default: OS user).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept with the record).")]

LIST_COLUMNS = [
    "campaign",
    "state",
    "starts_at",
    "ends_at",
    "active_enrollments",
    "pending_touches",
    "paused_since",
    "paused_by",
]


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


@campaigns_app.command("list")
def campaigns_list(now: NowOption = None, fmt: FormatOption = Format.TABLE) -> None:
    """List the campaigns with their dates and state (enrolling, paused, not started,
    ended) at --now, and the enrollments and touches in flight.

    Example: leadops campaigns list
    """
    from leadops.nurture.calendar import campaign_rows

    runtime = _runtime(_settings())
    rows = campaign_rows(runtime.engine, runtime.campaigns, _instant(now))
    emit(rows, LIST_COLUMNS, fmt, title=f"Campaigns ({len(rows)})")


@campaigns_app.command("show")
def campaigns_show(
    campaign: CampaignArgument, now: NowOption = None, fmt: FormatOption = Format.TABLE
) -> None:
    """Show one campaign: its calendar, goal, steps (with their conditions and waits)
    and pause history.

    Example: leadops campaigns show educate
    """
    from leadops.nurture.calendar import campaign_rows, pause_history

    runtime = _runtime(_settings())
    if campaign not in runtime.campaigns:
        raise CliError(
            f"unknown campaign {campaign!r} (known: {', '.join(sorted(runtime.campaigns))})"
        )
    found = runtime.campaigns[campaign]
    row = next(
        r
        for r in campaign_rows(runtime.engine, runtime.campaigns, _instant(now))
        if r["campaign"] == campaign
    )
    window = found.send_window
    details: dict[str, Any] = {
        **row,
        "blackout_dates": ", ".join(day.isoformat() for day in found.blackout_dates) or None,
        "send_days": ", ".join(found.send_days) if found.send_days else "settings",
        "send_window": f"{window.start:%H:%M}-{window.end:%H:%M}" if window else "settings",
        "goal": found.goal.describe() if found.goal else None,
    }
    steps = [
        {
            "step": s.key,
            "day": s.day,
            "name": s.name,
            "channels": ", ".join(s.channels),
            "rules": s.rules() or None,
        }
        for s in found.steps
    ]
    pauses = [
        {
            "paused_at": p.paused_at.isoformat(),
            "paused_by": p.paused_by,
            "pause_reason": p.pause_reason,
            "resumed_at": p.resumed_at.isoformat() if p.resumed_at else None,
            "resumed_by": p.resumed_by,
            "resume_reason": p.resume_reason,
        }
        for p in pause_history(runtime.engine, campaign)
    ]
    if fmt != Format.TABLE:
        emit([{**details, "steps": steps, "pauses": pauses}], [*details, "steps", "pauses"], fmt)
        return
    emit(
        [{"field": k, "value": v} for k, v in details.items()],
        ["field", "value"],
        fmt,
        title=f"Campaign {campaign}",
    )
    emit(steps, ["step", "day", "name", "channels", "rules"], fmt, title="Steps")
    emit(pauses, list(pauses[0]) if pauses else ["paused_at"], fmt, title="Pauses")


@campaigns_app.command("pause")
def campaigns_pause(
    campaign: CampaignArgument,
    reason: ReasonOption = "",
    by: ByOption = None,
    now: NowOption = None,
) -> None:
    """Pause a campaign from the next tick: nobody enrolls, and its messages are held
    (campaign_paused) until you resume it. Nothing is lost or skipped.

    Example: leadops campaigns pause educate --reason "fixing the day-10 link"
    """
    from leadops.nurture.calendar import PauseError, pause_campaign

    runtime = _runtime(_settings())
    try:
        pause = pause_campaign(
            runtime.engine,
            runtime.campaigns,
            campaign,
            by=_who(by),
            reason=reason,
            now=_instant(now),
        )
    except PauseError as exc:
        raise CliError(str(exc)) from exc
    console.print(
        f"{campaign}: paused at {pause.paused_at:%Y-%m-%d %H:%M} UTC by {pause.paused_by}"
        + (f" ({pause.pause_reason})" if pause.pause_reason else ""),
        highlight=False,
    )


@campaigns_app.command("resume")
def campaigns_resume(
    campaign: CampaignArgument,
    reason: ReasonOption = "",
    by: ByOption = None,
    now: NowOption = None,
) -> None:
    """Resume a paused campaign: what it held goes out from the next tick, and every
    remaining step moves later by the length of the pause (steps keep their spacing).

    Example: leadops campaigns resume educate --reason "link fixed"
    """
    from leadops.nurture.calendar import PauseError, resume_campaign

    runtime = _runtime(_settings())
    try:
        result = resume_campaign(
            runtime.engine,
            runtime.campaigns,
            campaign,
            by=_who(by),
            reason=reason,
            now=_instant(now),
        )
    except PauseError as exc:
        raise CliError(str(exc)) from exc
    pause = result.pause
    assert pause.resumed_at is not None
    console.print(
        f"{campaign}: resumed at {pause.resumed_at:%Y-%m-%d %H:%M} UTC by {pause.resumed_by} "
        f"after {_duration(pause.resumed_at - pause.paused_at)}; "
        f"{result.touches_retimed} touches and {result.enrollments_shifted} enrollments "
        "moved later by the pause",
        highlight=False,
    )


def _duration(span: Any) -> str:
    hours = int(span.total_seconds() // 3600)
    return f"{hours // 24} d {hours % 24} h"


@campaigns_app.command("forecast")
def campaigns_forecast(
    days: Annotated[int, typer.Option(help="How many days ahead, from --now.", min=1)] = 14,
    now: NowOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """What will go out per day (UTC), campaign, step and channel, from the plan and the
    contact policy (consent, suppression, send window, caps, calendar, pauses). Sends
    and writes nothing.

    Example: leadops campaigns forecast --days 14 --format csv
    """
    from leadops.nurture.forecast import FORECAST_COLUMNS, forecast

    runtime = _runtime(_settings())
    at = _instant(now)
    result = forecast(runtime, at, days)
    emit(
        result.rows(),
        FORECAST_COLUMNS,
        fmt,
        title=f"Forecast: {result.total} messages, {at:%Y-%m-%d %H:%M} UTC + {days} days",
    )
    if fmt == Format.TABLE:
        for campaign, leads in sorted(result.waiting.items()):
            console.print(f"{leads} leads wait to enroll in {campaign}", highlight=False)
        for campaign, held in sorted(result.held_paused.items()):
            console.print(f"{held} messages held: {campaign} is paused", highlight=False)
        ruled = [
            f"{c.key} {s.key}" for c in runtime.campaigns.values() for s in c.steps if s.rules()
        ]
        if ruled:
            console.print(
                f"steps with conditions or waits, counted on their day: {', '.join(ruled)}",
                highlight=False,
            )
