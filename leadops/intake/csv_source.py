"""Read leads from CSV files: UTF-8 with or without BOM, `,` or `;` delimited, streamed."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, select

from leadops.intake.importer import ImportReport, RawRecord, import_records
from leadops.models import ImportedFile

CANONICAL_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "company_size",
    "industry",
    "country",
    "timezone",
    "lifecycle_stage",
    "source",
    "email_consent",
    "whatsapp_consent",
    "created_at",
)
MAX_FIELD_CHARS = 10_000
MALFORMED_ROW = "malformed_row"
INVALID_ENCODING = "invalid_encoding"


class CsvFormatError(ValueError):
    """The file as a whole cannot be read as a lead CSV (not a row-level problem)."""


def _decoded_lines(path: Path, bad_lines: set[int]) -> Iterator[str]:
    """Decode line by line so one badly encoded line cannot stop the whole import."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_lines.add(number)
                yield raw.decode("utf-8", errors="replace")


def _delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def read_csv(path: Path, *, mapping: dict[str, str] | None = None) -> Iterator[RawRecord]:
    """Yield one RawRecord per data row; `mapping` renames foreign headers to canonical ones.

    Rows that are malformed (more cells than headers, over-long fields, undecodable bytes)
    are still yielded, carrying their problems, so the importer quarantines them.
    """
    csv.field_size_limit(1_000_000)
    bad_lines: set[int] = set()
    lines = _decoded_lines(path, bad_lines)
    first = next(lines, None)
    if first is None or not first.strip():
        raise CsvFormatError(f"{path}: the file is empty or has no header row")
    delimiter = _delimiter(first)
    header = next(csv.reader([first], delimiter=delimiter))
    names = [(mapping or {}).get(h.strip(), h.strip()).lower() for h in header]
    if "email" not in names and "phone" not in names:
        raise CsvFormatError(
            f"{path}: header has neither an `email` nor a `phone` column "
            f"(found: {', '.join(header)}); map foreign headers in config"
        )

    def rest() -> Iterator[str]:
        yield from lines

    reader = csv.reader(rest(), delimiter=delimiter)
    start_line = 2
    for cells in reader:
        end_line = reader.line_num + 1
        ref = f"{path.name}:{start_line}"
        problems: list[tuple[str, str]] = []
        if not any(cell.strip() for cell in cells):
            start_line = end_line + 1
            continue
        data: dict[str, object] = dict(zip(names, cells, strict=False))
        if len(cells) > len(names):
            data["_extra"] = cells[len(names) :]
            problems.append((MALFORMED_ROW, f"{len(cells)} cells for {len(names)} columns"))
        for key, value in list(data.items()):
            if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
                problems.append((MALFORMED_ROW, f"{key} is {len(value)} characters long"))
                data[key] = value[:MAX_FIELD_CHARS]
        if any(start_line <= n <= end_line for n in bad_lines):
            problems.append((INVALID_ENCODING, "line is not valid UTF-8"))
        yield RawRecord(data=data, source_ref=ref, problems=tuple(problems))
        start_line = end_line + 1


def file_checksum(path: Path) -> str:
    """SHA-256 of the file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def import_csv_file(
    session: Session,
    path: Path,
    *,
    source: str,
    now: datetime,
    default_region: str,
    default_timezone: str,
    force: bool = False,
) -> tuple[ImportReport | None, ImportedFile | None]:
    """Import one CSV file unless a file with the same content was imported before.

    Returns (report, None) after an import, or (None, earlier) when the file is skipped.
    The file is recorded in the same transaction as its leads, so a failed import can be
    retried. `force` imports it again (rows then quarantine as duplicates, none are lost).
    """
    checksum = file_checksum(path)
    earlier = session.exec(select(ImportedFile).where(ImportedFile.checksum == checksum)).first()
    if earlier is not None and not force:
        return None, earlier
    report = import_records(
        session,
        read_csv(path),
        source=source,
        now=now,
        default_region=default_region,
        default_timezone=default_timezone,
    )
    record = earlier or ImportedFile(
        checksum=checksum, name=path.name, source=source, imported_at=now
    )
    record.rows_read += report.read
    record.leads_created += report.created
    record.rows_quarantined += report.quarantined_total
    record.imported_at = now
    session.add(record)
    session.flush()
    return report, None
