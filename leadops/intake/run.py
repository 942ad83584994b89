"""One intake run: pull every configured source (CSV drop folder and files, HubSpot) and
report, per source, what was read, created, merged and quarantined (by reason).

Used by `leadops intake run` and by the 15-minute Prefect flow (flows/intake.py). A
failing source does not stop the others; its error is part of the report.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from leadops.db import is_locked, locked_message, session_scope
from leadops.intake.config import IntakeConfig, load_intake_config
from leadops.intake.csv_source import import_csv_file, unmapped_columns
from leadops.intake.hubspot import HubSpotClient, HubSpotError, pull_contacts
from leadops.intake.importer import ImportReport
from leadops.settings import Settings

log = logging.getLogger("leadops.intake")

SOURCES = ("csv", "hubspot", "forms")
REPORT_COLUMNS = ["source", "read", "created", "merged", "quarantined", "reasons", "note"]


@dataclass
class SourceResult:
    """What one source (a CSV file, HubSpot) did in a run."""

    source: str
    report: ImportReport | None = None
    note: str = ""
    error: str | None = None

    def row(self) -> dict[str, Any]:
        report = self.report or ImportReport(source=self.source)
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(report.quarantined.items()))
        return {
            "source": self.source,
            "read": report.read,
            "created": report.created,
            "merged": report.merged,
            "quarantined": report.quarantined_total,
            "reasons": reasons or "-",
            "note": f"error: {self.error}" if self.error else self.note,
        }


@dataclass
class IntakeRun:
    now: datetime
    results: list[SourceResult] = field(default_factory=list)

    @property
    def errors(self) -> list[SourceResult]:
        return [result for result in self.results if result.error]

    def rows(self) -> list[dict[str, Any]]:
        return [result.row() for result in self.results]

    def totals(self) -> dict[str, Any]:
        reasons: Counter[str] = Counter()
        totals = {"read": 0, "created": 0, "merged": 0, "quarantined": 0}
        for result in self.results:
            if result.report is not None:
                totals["read"] += result.report.read
                totals["created"] += result.report.created
                totals["merged"] += result.report.merged
                totals["quarantined"] += result.report.quarantined_total
                reasons.update(result.report.quarantined)
        return {**totals, "reasons": dict(reasons), "errors": len(self.errors)}

    def markdown(self) -> str:
        """The run as a markdown report (the Prefect artifact)."""
        totals = self.totals()
        lines = [
            f"# Intake run {self.now:%Y-%m-%d %H:%M} UTC",
            "",
            f"read {totals['read']}, created {totals['created']}, merged {totals['merged']}, "
            f"quarantined {totals['quarantined']}, errors {totals['errors']}",
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


def import_files(
    engine: Engine,
    settings: Settings,
    config: IntakeConfig,
    files: Iterable[Path],
    *,
    now: datetime,
    force: bool = False,
    source: str | None = None,
) -> list[SourceResult]:
    """Import CSV files, each in its own transaction; already-imported content is skipped."""
    results = []
    for path in files:
        name = source or f"csv:{path.name}"
        result = SourceResult(source=name)
        try:
            with session_scope(engine) as session:
                report, earlier = import_csv_file(
                    session,
                    path,
                    source=name,
                    now=now,
                    default_region=settings.default_region,
                    default_timezone=settings.default_timezone,
                    force=force,
                    mapping=config.csv.column_mapping,
                    encoding=config.csv.encoding,
                )
            result.report = report
            if earlier is not None:
                result.note = (
                    f"skipped: same content imported {earlier.imported_at:%Y-%m-%d %H:%M} UTC"
                )
            else:
                ignored = unmapped_columns(
                    path, mapping=config.csv.column_mapping, encoding=config.csv.encoding
                )
                if ignored:
                    result.note = "unmapped columns: " + ", ".join(ignored)[:300]
        except OSError as exc:
            result.error = f"{path}: {exc.strerror or exc}"
            log.error("intake of %s failed: %s", path, result.error)
        except (SQLAlchemyError, RuntimeError) as exc:  # rolled back: the file can be retried
            result.error = (
                f"{path}: {locked_message(str(engine.url))}"
                if is_locked(exc)
                else f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            )
            log.error("intake of %s failed: %s", path, result.error)
        results.append(result)
    return results


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
    return [r for r in results if r.report is not None or r.error]


def hubspot_client(settings: Settings, config: IntakeConfig) -> HubSpotClient:
    if settings.hubspot_token is None:
        raise HubSpotError(
            "HubSpot is enabled in config/intake.yaml but LEADOPS_HUBSPOT_TOKEN is not set"
        )
    source = config.hubspot
    return HubSpotClient(
        base_url=settings.hubspot_base_url,
        token=settings.hubspot_token.get_secret_value(),
        requests_per_second=source.requests_per_second,
        max_attempts=source.max_attempts,
        timeout=source.timeout_seconds,
    )


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
        pull_contacts(
            engine,
            client or hubspot_client(settings, config),
            config.hubspot,
            now=now,
            default_region=settings.default_region,
            default_timezone=settings.default_timezone,
            report=result.report,
        )
    except HubSpotError as exc:
        result.error = str(exc)
        log.error("HubSpot intake failed: %s", exc)
    except (SQLAlchemyError, RuntimeError, ValueError) as exc:  # the cursor stays put
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
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
) -> IntakeRun:
    """Pull the given sources: explicit `files` plus the drop folder (csv) and HubSpot
    when enabled in config/intake.yaml."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown intake source(s) {unknown}; known: {', '.join(SOURCES)}")
    config = config or load_intake_config(settings.config_dir)
    run = IntakeRun(now=now)
    if "csv" in sources:
        run.results += import_files(engine, settings, config, files, now=now, force=force)
        run.results += import_drop_folder(engine, settings, config, now=now, skip=files)
    if "hubspot" in sources:
        run.results += pull_hubspot(engine, settings, config, now=now, client=hubspot)
    if "forms" in sources:
        run.results += retry_form_confirmations(engine, settings, config, now=now)
    return run


def retry_form_confirmations(
    engine: Engine, settings: Settings, config: IntakeConfig, *, now: datetime
) -> list[SourceResult]:
    """Web forms push their leads; a run only retries confirmation emails that a
    temporary failure (or a crash) left unsent. Reported only when there were any."""
    from datetime import timedelta

    from leadops.delivery import build_channels
    from leadops.intake.forms import retry_confirmations
    from leadops.models import Channel

    sent, unsettled = retry_confirmations(
        engine,
        settings,
        now=now,
        channel=build_channels(settings)[Channel.EMAIL],
        ttl=timedelta(hours=config.confirmation_ttl_hours),
    )
    if not sent and not unsettled:
        return []
    note = f"confirmations sent {sent}, still unsent {unsettled}"
    return [SourceResult(source="web-forms", note=note)]
