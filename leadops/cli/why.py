"""`leadops leads why` (each step of a lead's campaigns in words) and `leadops reasons`
(the legend of hold and skip reason codes)."""

from __future__ import annotations

from typing import Annotated

import typer

from leadops.cli.common import (
    CliError,
    FormatOption,
    NowOption,
    _build,
    _instant,
    _settings,
    console,
)
from leadops.cli.leads import leads_app
from leadops.cli.output import Format, emit, print_json

commands = typer.Typer()

STEP_COLUMNS = ["campaign", "step", "day", "channel", "state", "at", "reason", "explanation"]


@leads_app.command("why")
def leads_why(
    lead_id: Annotated[int, typer.Argument(help="The lead's id (see `leadops leads list`).")],
    fmt: FormatOption = Format.TABLE,
    now: NowOption = None,
) -> None:
    """Why the lead got what it got: each step of its campaigns on each channel (sent at,
    held until when and why, skipped and why, not yet due, waiting for consent), and which
    segment rule matches it now. Reads only; `--format json` carries everything.

    Example: leadops leads why 1 --now 2026-12-10T09:00Z
    """
    from sqlmodel import Session

    from leadops.nurture.why import explain_lead

    runtime = _build(_settings())
    engine, segments = runtime.engine, runtime.segments
    at = _instant(now)
    with Session(engine) as session:
        try:
            why = explain_lead(
                session,
                lead_id,
                segments=segments,
                stored=runtime.stored,
                now=at,
                campaigns=runtime.campaigns,
            )
        except LookupError as exc:
            raise CliError(str(exc)) from exc
    if fmt == Format.JSON:
        print_json(why.as_dict())
        return
    if fmt == Format.CSV:
        emit([step.row() for step in why.steps], STEP_COLUMNS, fmt)
        return
    console.print(
        f"Lead {why.lead_id} ({why.email or 'no email'}) at {at:%Y-%m-%d %H:%M} UTC: {why.segment}",
        soft_wrap=True,
        highlight=False,
    )
    if why.enrollments:
        emit(
            why.enrollments,
            ["campaign", "segment", "status", "started_at", "ended_at", "end_reason"],
            fmt,
            title="Enrollments",
        )
    if not why.steps:
        console.print("Not enrolled in any campaign.", highlight=False)
        return
    emit(
        [step.row() for step in why.steps],
        ["campaign", "step", "channel", "state", "explanation"],
        fmt,
        title="Steps",
    )
    if why.legend:
        emit(why.legend, ["code", "meaning"], fmt, title="Reason codes")


@commands.command()
def reasons(fmt: FormatOption = Format.TABLE) -> None:
    """Every reason code a touch can be held or skipped with, and what it means.

    Example: leadops reasons
    """
    from leadops.delivery.policy import REASON_MEANINGS, legend

    emit(legend(REASON_MEANINGS), ["code", "meaning"], fmt, title="Reason codes")
