"""`leadops scoring calibration`: do the scores and the scoring rules predict sales?"""

from __future__ import annotations

import typer

from leadops.cli.common import FormatOption, NowOption, _engine, _instant, _settings, console
from leadops.cli.output import Format, emit_sections

scoring_app = typer.Typer(help="Check the lead scores against sales.", no_args_is_help=True)

GROUPS = "Conversion by score decile, band and grade"
RULES = "Scoring rules: lift on SQL, SAL and customer"


@scoring_app.command("calibration")
def scoring_calibration(now: NowOption = None, fmt: FormatOption = Format.TABLE) -> None:
    """Conversion to SQL, SAL and customer by score decile, band and grade, and the lift
    of each scoring rule (the leads that fired it against the others, with an interval and
    a verdict), each lead scored as it was before its hand-off to sales. The same figures
    as the report's calibration section; --format json|csv gives the sections
    `calibration_summary`, `calibration` and `rule_lift`, numbers as numbers.

    Example: leadops scoring calibration --now 2026-12-31T08:00Z
    """
    from leadops.reporting import calibration, lift
    from leadops.reporting.report_data import calibration_sections

    report = calibration.calibration_report(_engine(_settings()), _instant(now))
    if fmt != Format.TABLE:
        emit_sections(calibration_sections(report), fmt)
        return
    console.print(
        f"{report.calibration_leads} leads, each with the highest score it had before its "
        f"hand-off to sales (never handed off: up to now); {report.calibration_not_scored} "
        "left out, handed off before any score. A verdict needs "
        f"{lift.MIN_GROUP} leads each side and {lift.MIN_CONVERSIONS} conversions; the "
        f"intervals hold for all the rules together ({lift.CONFIDENCE:.0%}).",
        highlight=False,
    )
    emit_sections(
        {RULES: calibration.rule_rows(report), GROUPS: calibration.group_rows(report)},
        Format.TABLE,
        columns={RULES: ["rule"], GROUPS: ["by"]},
    )
