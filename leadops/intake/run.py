"""One intake run: pull every configured source (CSV drop folder and files, HubSpot) and
report, per source, what was read, created, merged and quarantined (by reason).

Used by `leadops intake run` and by the 15-minute Prefect flow (flows/intake.py). A
failing source does not stop the others; its error is part of the report. A file that
cannot be read as CSV is quarantined as a file (kept, with its reason) and the run goes
on; in the drop folder it is skipped by its checksum on later runs until it is fixed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from leadops.core.db import is_locked, locked_message, session_scope
from leadops.core.settings import Settings
from leadops.intake.config import IntakeConfig, load_intake_config
from leadops.intake.csv_source import (
    FileRejected,
    file_checksum,
    import_csv_file,
    import_csv_file_each,
    unmapped_columns,
)
from leadops.intake.forms import retry_confirmations
from leadops.intake.hubspot import HubSpotClient, HubSpotError, hubspot_client, pull_contacts
from leadops.intake.hubspot_deals import pull_deals
from leadops.intake.importer import REFUSED, ImportReport
from leadops.intake.mapping import MappingFile, csv_rules, source_rules
from leadops.intake.quarantine import (
    file_store,
    open_file,
    quarantine_file,
    quarantined_file,
    release_source,
    resolve_replaced,
)
from leadops.models import ImportedFile, QuarantinedFile, QuarantineStatus
from leadops.providers.base import ChannelSender

log = logging.getLogger("leadops.intake")

SOURCES = ("csv", "hubspot", "forms")
REPORT_COLUMNS = [
    "source",
    "read",
    "created",
    "merged",
    "quarantined",
    "reasons",
    "flagged",
    "flagged_reasons",
    "note",
]
# The terminal table leaves the reasons to lines below it (`reason_lines`).
TABLE_COLUMNS = [c for c in REPORT_COLUMNS if c not in ("reasons", "flagged_reasons")]
# `leads import` and `intake run` exit with this code when a file was quarantined as a
# file (and no source failed, which exits 1).
EXIT_FILE_QUARANTINED = 3


@dataclass
class SourceResult:
    """What one source (a CSV file, HubSpot) did in a run."""

    source: str
    report: ImportReport | None = None
    note: str = ""
    error: str | None = None
    quarantined_file: QuarantinedFile | None = None  # the file is in file quarantine
    skipped: bool = False  # not read: imported or quarantined before
    rejected: FileRejected | None = None  # a dry run: the file would be quarantined as a file

    @property
    def file_line(self) -> str | None:
        """One line naming the quarantined file, its reason and what to do."""
        held = self.quarantined_file
        if held is None:
            return None
        return (
            f"file quarantined: {held.name} (quarantined file {held.id}): {held.reason}: "
            f"{held.detail}".replace("release-file ID", f"release-file {held.id}")
        )

    def row(self) -> dict[str, Any]:
        report = self.report or ImportReport(source=self.source)
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(report.quarantined.items()))
        flagged = ", ".join(f"{r} {n}" for r, n in sorted(report.flagged.items()))
        note = self.note
        if self.error:
            note = f"error: {self.error}"
        elif self.quarantined_file is not None and not self.skipped:
            held = self.quarantined_file
            note = f"quarantined as file {held.id}: {held.reason}"
        return {
            "source": self.source,
            "read": report.read,
            "created": report.created,
            "merged": report.merged,
            "quarantined": report.quarantined_total,
            "reasons": reasons or "-",
            "flagged": report.flagged_records,
            "flagged_reasons": flagged or "-",
            "note": note,
        }


@dataclass
class IntakeRun:
    now: datetime
    results: list[SourceResult] = field(default_factory=list)

    @property
    def errors(self) -> list[SourceResult]:
        return [result for result in self.results if result.error]

    @property
    def quarantined_files(self) -> list[SourceResult]:
        return [result for result in self.results if result.quarantined_file is not None]

    def rows(self) -> list[dict[str, Any]]:
        return [result.row() for result in self.results]

    def totals(self) -> dict[str, Any]:
        reasons: Counter[str] = Counter()
        totals = {"read": 0, "created": 0, "merged": 0, "quarantined": 0, "flagged": 0}
        for result in self.results:
            if result.report is not None:
                totals["read"] += result.report.read
                totals["created"] += result.report.created
                totals["merged"] += result.report.merged
                totals["quarantined"] += result.report.quarantined_total
                totals["flagged"] += result.report.flagged_records
                reasons.update(result.report.quarantined)
        return {
            **totals,
            "reasons": dict(reasons),
            "files_quarantined": len(self.quarantined_files),
            "errors": len(self.errors),
        }

    def reason_lines(self) -> list[str]:
        """Per source, the quarantine and flag reasons (for under the terminal table)."""
        lines = []
        for row in self.rows():
            if row["quarantined"]:
                lines.append(
                    f"{row['source']}: quarantined {row['quarantined']} ({row['reasons']}); "
                    "see `leadops quarantine list`"
                )
            if row["flagged"]:
                lines.append(
                    f"{row['source']}: flagged {row['flagged']}, imported with the bad value "
                    f"kept ({row['flagged_reasons']}); see `leadops leads show ID`"
                )
        return lines

    def summary(self) -> str:
        totals = self.totals()
        return (
            f"read {totals['read']}, created {totals['created']}, merged {totals['merged']}, "
            f"quarantined {totals['quarantined']}, flagged {totals['flagged']}, "
            f"files quarantined {totals['files_quarantined']}"
        )

    def markdown(self) -> str:
        """The run as a markdown report (the Prefect artifact)."""
        lines = [
            f"# Intake run {self.now:%Y-%m-%d %H:%M} UTC",
            "",
            f"{self.summary()}, errors {len(self.errors)}",
            "",
            *(f"- **{r.file_line}**" for r in self.quarantined_files),
            "",
            "| " + " | ".join(REPORT_COLUMNS) + " |",
            "|" + "---|" * len(REPORT_COLUMNS),
        ]
        for row in self.rows():
            cells = [str(row[c]).replace("|", "\\|").replace("\n", " ") for c in REPORT_COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def drop_folder(settings: Settings, config: IntakeConfig) -> Path:
    return config.csv.drop_folder or settings.data_dir / "inbox"


def dropped_files(settings: Settings, config: IntakeConfig) -> list[Path]:
    """CSV files waiting in the drop folder, oldest name first."""
    folder = drop_folder(settings, config)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(config.csv.pattern) if p.is_file())


def import_file(
    engine: Engine,
    settings: Settings,
    config: IntakeConfig,
    path: Path,
    *,
    now: datetime,
    force: bool = False,
    source: str | None = None,
    releasing: QuarantinedFile | None = None,
    mapping: MappingFile | None = None,
) -> SourceResult:
    """Import one CSV file in its own transaction. Content imported before is skipped
    (unless `force`), and so is content seen in file quarantine before (unless `force`, or
    it is the file being released): open or dropped, it is reported as quarantined. A
    file that cannot be read as CSV is quarantined as a file; one that imports resolves
    the open quarantine of earlier content at the same path. `mapping` (a ready
    mapping) reads its headers and values instead of csv settings."""
    name = source or f"csv:{path.name}"
    result = SourceResult(source=name)
    checksum = file_checksum(path)
    with Session(engine) as session:
        held = quarantined_file(session, checksum)
    if held is not None and not force and (releasing is None or held.id != releasing.id):
        result.skipped = True
        result.note = f"skipped: quarantined file {held.id}, {held.status}"
        if held.status != QuarantineStatus.RELEASED:
            result.quarantined_file = held
        return result
    columns, rules = csv_rules(config, settings.config_dir, mapping)
    options: dict[str, Any] = {
        "source": name,
        "now": now,
        "default_region": settings.default_region,
        "default_timezone": settings.default_timezone,
        "mapping": columns,
        "encoding": config.csv.encoding,
        "rules": rules,
    }
    try:
        try:
            with session_scope(engine) as session:
                report, earlier = import_csv_file(session, path, force=force, **options)
                _resolve(session, path, report, earlier, (held, releasing), now=now)
        except REFUSED as exc:  # rolled back; a refused record must
            # not stop the file: read it again one record per transaction
            log.warning(
                "importing %s in one transaction failed (%s); importing it record by record",
                path,
                str(exc).splitlines()[0][:300],
            )
            report, earlier = import_csv_file_each(engine, path, **options), None
            with session_scope(engine) as session:
                _resolve(session, path, report, earlier, (held, releasing), now=now)
    except FileRejected as rejected:
        if releasing is not None:
            result.error = f"{path}: still refused: {rejected.reason}: {rejected.detail}"
            return result
        with session_scope(engine) as session:
            result.quarantined_file = quarantine_file(
                session,
                path,
                source=name,
                checksum=checksum,
                rejected=rejected,
                store=file_store(settings.data_dir),
                now=now,
            )
        log.info("%s", result.file_line)
        return result
    result.report = report
    if earlier is not None:
        result.skipped = True
        result.note = f"skipped: same content imported {earlier.imported_at:%Y-%m-%d %H:%M} UTC"
    else:
        ignored = unmapped_columns(path, mapping=columns, encoding=config.csv.encoding)
        if ignored:
            result.note = "unmapped columns: " + ", ".join(ignored)[:300]
    return result


def _resolve(
    session: Session,
    path: Path,
    report: ImportReport | None,
    earlier: ImportedFile | None,
    records: tuple[QuarantinedFile | None, ...],
    *,
    now: datetime,
) -> None:
    """The file at `path` imported (or was imported before): resolve the open file
    quarantine of earlier content at that path, and of `records`."""
    done = (
        f"{path.name}, {now:%Y-%m-%d %H:%M} UTC"
        if report is not None
        else f"same content imported {earlier.imported_at:%Y-%m-%d %H:%M} UTC"
        if earlier is not None
        else path.name
    )
    resolve_replaced(session, path, imported=done, now=now)
    for record in {r.id: r for r in records if r is not None}.values():
        stored = session.get(QuarantinedFile, record.id)
        if stored is not None and stored.status == QuarantineStatus.OPEN:
            stored.status = QuarantineStatus.RELEASED
            stored.resolution = f"imported from {path}: {done}"[:1000]
            stored.resolved_at = now
            session.add(stored)


def import_files(
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
    """Import CSV files, each in its own transaction; one file never stops the others."""
    results = []
    for path in files:
        name = source or f"csv:{path.name}"
        try:
            result = import_file(
                engine, settings, config, path, now=now, force=force, source=source, mapping=mapping
            )
        except OSError as exc:
            result = SourceResult(source=name, error=f"{path}: {exc.strerror or exc}")
            log.error("intake of %s failed: %s", path, result.error)
        except (SQLAlchemyError, RuntimeError) as exc:  # rolled back: the file can be retried
            result = SourceResult(
                source=name,
                error=(
                    f"{path}: {locked_message(str(engine.url))}"
                    if is_locked(exc)
                    else f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                ),
            )
            log.error("intake of %s failed: %s", path, result.error)
        results.append(result)
    return results


def release_file(
    engine: Engine,
    settings: Settings,
    config: IntakeConfig,
    file_id: int,
    *,
    now: datetime,
    path: Path | None = None,
) -> SourceResult:
    """Read a quarantined file again (the replacement `path`, else its original path,
    else the kept copy) with the current config. It is released when it imports; when it
    is still refused it stays open and the result's error says why. Raises
    QuarantineError for an unknown or closed id."""
    with Session(engine) as session:
        record = open_file(session, file_id)
    target = release_source(record, path)
    result = import_file(
        engine, settings, config, target, now=now, source=record.source, releasing=record
    )
    if result.error is not None:
        with session_scope(engine) as session:
            stored = open_file(session, file_id)
            stored.resolution = f"{now:%Y-%m-%d %H:%M} UTC release failed: {result.error}"[:1000]
            session.add(stored)
    return result


def import_drop_folder(
    engine: Engine,
    settings: Settings,
    config: IntakeConfig,
    *,
    now: datetime,
    skip: Sequence[Path] = (),
) -> list[SourceResult]:
    """Import the new files in the CSV drop folder. Files imported before stay in the
    folder and are left out of the results: they are not news every run."""
    if not config.csv.enabled:
        return []
    dropped = [p for p in dropped_files(settings, config) if p not in skip]
    results = import_files(engine, settings, config, dropped, now=now)
    return [r for r in results if not r.skipped]


def pull_hubspot(
    engine: Engine,
    settings: Settings,
    config: IntakeConfig,
    *,
    now: datetime,
    client: HubSpotClient | None = None,
) -> list[SourceResult]:
    """Pull HubSpot when it is enabled (one result), else nothing."""
    if not config.hubspot.enabled:
        return []
    result = SourceResult(source=config.hubspot.source)
    result.report = ImportReport(source=config.hubspot.source)  # pages count as they commit
    try:
        client = client or hubspot_client(settings, config)
        pull_contacts(
            engine,
            client,
            config.hubspot,
            now=now,
            default_region=settings.default_region,
            default_timezone=settings.default_timezone,
            report=result.report,
            rules=source_rules(config.hubspot.value_mapping(), config, settings.config_dir),
        )
        if config.hubspot.deals:
            pull_deals(engine, client, config.hubspot, now=now)
    except HubSpotError as exc:
        result.error = str(exc)
        log.error("HubSpot intake failed: %s", exc)
    except (SQLAlchemyError, RuntimeError, ValueError) as exc:  # the cursor stays put
        result.error = (
            locked_message(str(engine.url))
            if is_locked(exc)
            else f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        )
        log.error("HubSpot intake failed: %s", result.error)
    return [result]


def run_intake(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    files: Sequence[Path] = (),
    sources: Sequence[str] = SOURCES,
    force: bool = False,
    config: IntakeConfig | None = None,
    hubspot: HubSpotClient | None = None,
    email: ChannelSender | None = None,
) -> IntakeRun:
    """Pull the given sources: explicit `files` plus the drop folder (csv) and HubSpot
    when enabled in config/intake.yaml; `forms` retries confirmations through `email`
    (the runtime's email sender)."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown intake source(s) {unknown}; known: {', '.join(SOURCES)}")
    if "forms" in sources and email is None:
        raise ValueError("intake source forms needs the email sender (run_intake email=)")
    config = config or load_intake_config(settings.config_dir)
    run = IntakeRun(now=now)
    if "csv" in sources:
        run.results += import_files(engine, settings, config, files, now=now, force=force)
        run.results += import_drop_folder(engine, settings, config, now=now, skip=files)
    if "hubspot" in sources:
        run.results += pull_hubspot(engine, settings, config, now=now, client=hubspot)
    if "forms" in sources and email is not None:
        run.results += retry_form_confirmations(engine, settings, config, now=now, email=email)
    return run


def retry_form_confirmations(
    engine: Engine,
    settings: Settings,
    config: IntakeConfig,
    *,
    now: datetime,
    email: ChannelSender,
) -> list[SourceResult]:
    """Web forms push their leads; a run only retries confirmation emails that a
    temporary failure (or a crash) left unsent. Reported only when there were any."""

    sent, unsettled = retry_confirmations(
        engine,
        settings,
        now=now,
        channel=email,
        ttl=timedelta(hours=config.confirmation_ttl_hours),
    )
    if not sent and not unsettled:
        return []
    note = f"confirmations sent {sent}, still unsent {unsettled}"
    return [SourceResult(source="web-forms", note=note)]
