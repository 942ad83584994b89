"""What an import says about itself beyond its counts: the warnings a person must read
(most rows refused, leads nobody may message, industries not in the list) and the exit
status that carries them, and the dry run that shows all of it without writing.

Exit codes of `leads import` and `intake run`: 0 a clean import; 1 a source failed; 3 a
file was quarantined as a file; 4 more than half of the rows read were quarantined; 5
leads were created and none of them has consent on any channel (no consent column, or
consent given on no row). The first that applies, in that order, wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.core.settings import Settings
from leadops.intake.config import IntakeConfig
from leadops.intake.csv_source import FileRejected, file_checksum, import_csv_file
from leadops.intake.importer import REFUSED
from leadops.intake.mapping import MappingFile, csv_rules
from leadops.intake.quarantine import quarantined_file
from leadops.intake.run import EXIT_FILE_QUARANTINED, IntakeRun, SourceResult
from leadops.models import QuarantineStatus

EXIT_SOURCE_FAILED = 1
EXIT_MOSTLY_QUARANTINED = 4
EXIT_NO_CONSENT = 5
MOSTLY = 0.5  # a share of the rows read above this quarantined is "most rows failed"


def _mostly_quarantined(result: SourceResult) -> bool:
    report = result.report
    return (
        report is not None and report.read > 0 and report.quarantined_total > MOSTLY * report.read
    )


def _none_consented(result: SourceResult) -> bool:
    report = result.report
    return report is not None and report.created > 0 and report.no_consent == report.created


def warnings(run: IntakeRun) -> list[str]:
    """Plain sentences about what went wrong or will not work, per source."""
    lines: list[str] = []
    for result in run.results:
        report = result.report
        if report is None or result.skipped:
            continue
        if _mostly_quarantined(result):
            lines.append(
                f"{result.source}: most rows failed: {report.quarantined_total} of "
                f"{report.read} quarantined; check the file's columns and values "
                "(--mapping hubspot|salesforce|FILE, config/intake.yaml)"
            )
        if _none_consented(result):
            lines.append(
                f"{result.source}: none of the {report.created} created leads has consent on "
                "any channel: they will never get a message (no consent column, or no row "
                "gives consent)"
            )
        elif report.no_consent:
            one = report.no_consent == 1
            lines.append(
                f"{result.source}: {report.no_consent} of the {report.created} created leads "
                f"{'has' if one else 'have'} consent on no channel: "
                f"{'it' if one else 'they'} will never get a message"
            )
        if report.unknown_industries:
            count = sum(report.unknown_industries.values())
            names = ", ".join(f"{n!r}" for n, _ in report.unknown_industries.most_common(5))
            lines.append(
                f"{result.source}: {count} {'lead has' if count == 1 else 'leads have'} an "
                f"industry not in config/intake.yaml industries, kept as given: {names}"
            )
    return lines


def exit_code(run: IntakeRun) -> int:
    """The run's exit status (see the module's docstring)."""
    if run.errors:
        return EXIT_SOURCE_FAILED
    if run.quarantined_files or any(r.rejected is not None for r in run.results):
        return EXIT_FILE_QUARANTINED
    if any(_mostly_quarantined(r) for r in run.results):
        return EXIT_MOSTLY_QUARANTINED
    if any(_none_consented(r) for r in run.results):
        return EXIT_NO_CONSENT
    return 0


def example_lines(run: IntakeRun) -> list[str]:
    """Per source and reason, a few examples of the rows it refused or flagged."""
    lines: list[str] = []
    for result in run.results:
        if result.report is None:
            continue
        for reason, examples in sorted(result.report.examples.items()):
            lines.extend(f"  {reason}: {example}" for example in examples)
    return lines


def document(run: IntakeRun, *, dry_run: bool) -> dict[str, Any]:
    """The run as JSON: per source every count, reason and example, and the verdict."""
    sources = []
    for result, row in zip(run.results, run.rows(), strict=True):
        report = result.report
        sources.append(
            {
                **row,
                "reasons": dict(report.quarantined) if report else {},
                "flagged_reasons": dict(report.flagged) if report else {},
                "examples": report.examples if report else {},
                "no_consent": report.no_consent if report else 0,
                "unknown_industries": dict(report.unknown_industries) if report else {},
                "fit_rows": report.fit_rows if report else 0,
                "rejected": (
                    {"reason": result.rejected.reason, "detail": result.rejected.detail}
                    if result.rejected
                    else None
                ),
            }
        )
    return {
        "dry_run": dry_run,
        "now": run.now.isoformat(),
        "sources": sources,
        "totals": run.totals(),
        "warnings": warnings(run),
        "exit_code": exit_code(run),
    }


def preview_files(
    engine: Engine,
    settings: Settings,
    config: IntakeConfig,
    files: Iterable[Path],
    *,
    now: datetime,
    force: bool = False,
    source: str | None = None,
    mapping: MappingFile | None = None,
) -> list[SourceResult]:
    """What importing `files` would do, computed by importing each in a transaction that
    is rolled back: nothing is written (leads, quarantine, imported files, scores). Like
    the import, it skips (unless `force`) content seen in file quarantine before: open
    or dropped, it is reported as quarantined."""
    columns, rules = csv_rules(config, settings.config_dir, mapping)
    results = []
    for path in files:
        result = SourceResult(source=source or f"csv:{path.name}")
        with Session(engine) as session:
            held = None if force else quarantined_file(session, file_checksum(path))
            if held is not None:
                result.skipped = True
                result.note = f"would be skipped: quarantined file {held.id}, {held.status}"
                if held.status != QuarantineStatus.RELEASED:
                    result.quarantined_file = held
                results.append(result)
                continue
            try:
                report, earlier = import_csv_file(
                    session,
                    path,
                    source=result.source,
                    now=now,
                    default_region=settings.default_region,
                    default_timezone=settings.default_timezone,
                    force=force,
                    mapping=columns,
                    encoding=config.csv.encoding,
                    rules=rules,
                )
                result.report = report
                if earlier is not None:
                    result.skipped = True
                    result.note = (
                        f"would be skipped: same content imported "
                        f"{earlier.imported_at:%Y-%m-%d %H:%M} UTC"
                    )
            except FileRejected as rejected:
                result.rejected = rejected
                result.note = f"would be quarantined as a file: {rejected.reason}"
            except REFUSED as exc:
                result.note = (
                    "the database refuses a record; the import would read the file record "
                    f"by record: {str(exc).splitlines()[0][:200]}"
                )
            finally:
                session.rollback()
        results.append(result)
    return results
