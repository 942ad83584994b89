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
    """Show one campaign: its calendar, goal, holdout, steps (with their conditions, waits
    and A/B variants) and pause history.

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
        "holdout": f"{found.holdout:.0%}" if found.holdout else None,
        "goal": found.goal.describe() if found.goal else None,
    }
    steps = [
        {
            "step": s.key,
            "day": s.day,
            "name": s.name,
            "channels": ", ".join(s.channels),
            "variants": ", ".join(
                f"{v.key} (weight {v.weight}" + (f", day {v.day})" if v.day else ")")
                for v in s.variants
            )
            or None,
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
    emit(steps, ["step", "day", "name", "channels", "rules", "variants"], fmt, title="Steps")
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


RESULT_COLUMNS = [
    "kind",
    "step",
    "arm",
    "assigned",
    "sent",
    "delivered",
    "clicked",
    "replied",
    "goal",
    "sql",
    "metric",
    "rate",
    "difference",
    "low",
    "high",
    "p_value",
    "verdict",
    "keep",
    "goal_lift",
    "goal_low",
    "goal_high",
]
RESULT_TABLE_COLUMNS = [*RESULT_COLUMNS[:11], "rate", "difference", "interval", "verdict"]


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value:+.2%}"


@campaigns_app.command("results")
def campaigns_results(campaign: CampaignArgument, fmt: FormatOption = Format.TABLE) -> None:
    """A campaign's A/B tests and holdout: per variant and arm, leads assigned, sent,
    delivered, clicked, replied, goal and SQL reached; each test's always-valid verdict
    (mSPRT, safe to read every day) and the campaign's lift over its holdout.

    Example: leadops campaigns results educate --format json
    """
    from leadops.reporting.experiments import campaign_results
    from leadops.reporting.sequential import MIN_SAMPLE

    runtime = _runtime(_settings())
    found = runtime.campaigns.get(campaign)
    if found is None:
        raise CliError(
            f"unknown campaign {campaign!r} (known: {', '.join(sorted(runtime.campaigns))})"
        )
    with runtime.engine.connect() as conn:
        results = campaign_results(conn, found)
    rows = results.rows()
    if fmt != Format.TABLE:
        emit(rows, RESULT_COLUMNS, fmt)
        return
    shown = [
        {
            **row,
            "rate": f"{row['rate']:.2%}",
            "difference": _percent(row["difference"]),
            "interval": None
            if row["low"] is None
            else f"{_percent(row['low'])} to {_percent(row['high'])}",
        }
        for row in rows
    ]
    emit(shown, RESULT_TABLE_COLUMNS, fmt, title=f"Campaign {campaign}: experiments and holdout")
    for experiment in results.experiments:
        result = experiment.verdict
        console.print(
            f"{experiment.step} ({experiment.metric}): {result.status}, send "
            f"{result.keep}: {result.reason}",
            highlight=False,
        )
    for name, lift in results.lift.items():
        console.print(
            f"lift over the holdout ({name} reached): {lift.difference:+.2%} "
            f"({lift.low:+.2%} to {lift.high:+.2%}, 95% always-valid)",
            highlight=False,
        )
    if results.holdout_share and not results.lift:
        console.print(
            f"lift over the holdout: too early (fewer than {MIN_SAMPLE} leads in an arm)",
            highlight=False,
        )
    if not results.experiments and not results.holdout_share:
        console.print(f"{campaign} has no experiment or holdout results yet", highlight=False)


@campaigns_app.command("promote")
def campaigns_promote(
    campaign: CampaignArgument,
    step: Annotated[str, typer.Argument(help="The step whose test ended.")],
    variant: Annotated[str, typer.Argument(help="The variant every new lead gets.")],
    write: Annotated[
        bool, typer.Option("--write", help="Write the edit to the campaign file.")
    ] = False,
) -> None:
    """Promote a variant: print the campaign file edit (the other variants' weight to 0)
    for review, or write it with --write. Leads already enrolled keep their version.

    Example: leadops campaigns promote educate day-1 b --write
    """
    from leadops.core.configfile import ConfigError
    from leadops.nurture.promote import promotion

    settings = _settings()
    path = settings.config_dir / "campaigns" / f"{campaign}.yaml"
    try:
        edit = promotion(path, step, variant)
    except (ConfigError, KeyError) as exc:
        raise CliError(str(exc)) from exc
    if not edit.diff:
        console.print(f"{campaign}/{step}: {variant} already gets every new lead")
        return
    typer.echo(edit.diff, nl=False)
    if write:
        edit.write()
        console.print(
            f"wrote {path}: new leads get {variant} on {step} from the next tick", highlight=False
        )
    else:
        console.print("not written: review the edit, then run again with --write")
