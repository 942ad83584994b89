"""`leadops segments test`: what segment rules (the live file or a draft) would do now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadops.cli.common import CliError, FormatOption, NowOption, _build, _instant, _settings
from leadops.cli.output import Format, emit, print_json

segments_app = typer.Typer(help="Try segment rules on the leads.", no_args_is_help=True)


@segments_app.command("test")
def segments_test(
    file: Annotated[
        Path | None,
        typer.Option("--file", help="A draft segments file (default: config/segments.yaml)."),
    ] = None,
    fmt: FormatOption = Format.TABLE,
    now: NowOption = None,
) -> None:
    """Which leads each segment rule matches now (with counts and examples), and what
    would change for leads already enrolled: kept in their campaign, moved to another, or
    leaving. Sends and writes nothing; try a draft with --file before it replaces
    config/segments.yaml.

    Example: leadops segments test --file draft-segments.yaml --now 2026-12-10T09:00Z
    """
    from sqlmodel import Session

    from leadops.nurture.segment_check import check_segments
    from leadops.nurture.segments import load_segments_file

    runtime = _build(_settings())
    settings = runtime.settings
    path = file if file is not None else settings.config_dir / "segments.yaml"
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    # a draft (--file) is read from its own path, against the runtime's campaigns
    config = load_segments_file(path, set(runtime.campaigns), settings.config_dir)
    engine = runtime.engine
    at = _instant(now)
    with Session(engine) as session:
        report = check_segments(session, config, at)
    if fmt == Format.JSON:
        print_json(report.as_dict())
        return
    rule_columns = ["segment", "campaign", "matches", "chosen", "examples"]
    if fmt == Format.CSV:
        emit(report.rule_rows(), rule_columns, fmt)
        return
    emit(
        report.rule_rows(),
        rule_columns,
        fmt,
        title=f"{path}: {report.leads} leads at {at:%Y-%m-%d %H:%M} UTC "
        "(matches: the rule's conditions hold; chosen: first match wins)",
    )
    emit(
        report.enrolled_rows(),
        ["change", "from_campaign", "to_campaign", "leads", "examples"],
        fmt,
        title="Leads already enrolled",
    )
