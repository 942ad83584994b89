"""Read leads from CSV files: UTF-8 with or without BOM, `,` or `;` delimited, streamed.

Hostile input never stops a file and never loses a row: a badly encoded line is decoded
as Windows-1252 and quarantined, a row with a bad header, too many cells, an over-long
field or a quote that never closes is still yielded, carrying its problems, so the
importer quarantines it with its raw data.
"""

from __future__ import annotations

import csv
import hashlib
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, select

from leadops.intake.config import LEAD_COLUMNS
from leadops.intake.importer import ImportReport, RawRecord, import_records
from leadops.models import ImportedFile

MAX_FIELD_CHARS = 10_000
MAX_RECORD_LINES = 20  # a quoted field spanning more lines is an unclosed quote
MALFORMED_ROW = "malformed_row"
INVALID_ENCODING = "invalid_encoding"
MISSING_COLUMNS = "missing_columns"

csv.field_size_limit(64 * 1024 * 1024)


class CsvFormatError(ValueError):
    """The file cannot be read at all (kept for callers; content problems never raise)."""


class _Lines:
    """Decoded physical lines with their numbers; lines can be pushed back to re-read."""

    def __init__(self, path: Path, encoding: str) -> None:
        self._handle = path.open("rb")
        self._numbered = enumerate(self._handle, start=1)
        self._encoding = encoding
        self._pushed: deque[tuple[int, str]] = deque()
        self.bad: set[int] = set()
        self.taken: list[tuple[int, str]] = []  # lines consumed by the record being read

    def _decode(self, number: int, raw: bytes) -> str:
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            return raw.decode(self._encoding)
        except UnicodeDecodeError:
            self.bad.add(number)
            try:
                return raw.decode("cp1252")
            except UnicodeDecodeError:
                return raw.decode("latin-1")

    def next_line(self) -> tuple[int, str] | None:
        if self._pushed:
            return self._pushed.popleft()
        item = next(self._numbered, None)
        if item is None:
            return None
        return item[0], self._decode(*item)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        item = self.next_line()
        if item is None:
            raise StopIteration
        self.taken.append(item)
        return item[1]

    def push_back(self, lines: list[tuple[int, str]]) -> None:
        self._pushed.extendleft(reversed(lines))

    def close(self) -> None:
        self._handle.close()


def _delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def _records(
    lines: _Lines, delimiter: str, width: int
) -> Iterator[tuple[list[str], list[tuple[int, str]]]]:
    """Yield (cells, physical lines) per CSV record. A record spanning several lines is
    kept only when it has exactly `width` cells and at most MAX_RECORD_LINES lines;
    otherwise it is an unclosed quote swallowing rows, so its first line becomes a record
    of its own and the following lines are read again."""
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        lines.taken = []
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            cells = [line for _, line in lines.taken]
            yield cells, lines.taken
            continue
        taken = lines.taken
        if len(taken) > 1 and (len(cells) != width or len(taken) > MAX_RECORD_LINES):
            first, rest = taken[0], taken[1:]
            lines.push_back(rest)
            reader = csv.reader(lines, delimiter=delimiter)
            yield next(csv.reader([first[1]], delimiter=delimiter), []), [first]
            continue
        yield cells, taken


def read_csv(
    path: Path, *, mapping: dict[str, str] | None = None, encoding: str = "utf-8"
) -> Iterator[RawRecord]:
    """Yield one RawRecord per data row; `mapping` renames foreign headers to canonical ones
    (matched case-insensitively, surrounding spaces ignored)."""
    lines = _Lines(path, encoding)
    try:
        first = lines.next_line()
        while first is not None and not first[1].strip():
            first = lines.next_line()
        if first is None:
            return
        delimiter = _delimiter(first[1])
        header = next(csv.reader([first[1]], delimiter=delimiter), [])
        folded = {k.strip().lower(): v.strip().lower() for k, v in (mapping or {}).items()}
        names = [folded.get(h.strip().lower(), h.strip().lower()) for h in header]
        header_problem: tuple[str, str] | None = None
        if "email" not in names and "phone" not in names:
            header_problem = (
                MISSING_COLUMNS,
                f"header has neither an `email` nor a `phone` column (found: "
                f"{', '.join(h.strip() for h in header)[:300]}); map foreign headers in "
                "config/intake.yaml",
            )
        for cells, taken in _records(lines, delimiter, len(names)):
            if not any(cell.strip() for cell in cells):
                continue
            ref = f"{path.name}:{taken[0][0]}" if taken else path.name
            problems: list[tuple[str, str]] = [header_problem] if header_problem else []
            data: dict[str, object] = dict(zip(names, cells, strict=False))
            if len(cells) > len(names):
                data["_extra"] = cells[len(names) :]
                problems.append((MALFORMED_ROW, f"{len(cells)} cells for {len(names)} columns"))
            if len(taken) == 1 and taken[0][1].count('"') % 2 and len(cells) < len(names):
                problems.append((MALFORMED_ROW, "a quote is never closed"))
            for key, value in list(data.items()):
                if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
                    problems.append(
                        (
                            MALFORMED_ROW,
                            f"{key} is {len(value)} characters long (kept the first "
                            f"{MAX_FIELD_CHARS})",
                        )
                    )
                    data[key] = value[:MAX_FIELD_CHARS]
            bad = [n for n, _ in taken if n in lines.bad]
            if bad:
                problems.append(
                    (INVALID_ENCODING, f"line {bad[0]} is not valid {encoding}; read as cp1252")
                )
            yield RawRecord(data=data, source_ref=ref, problems=tuple(problems))
    finally:
        lines.close()


def unmapped_columns(
    path: Path, *, mapping: dict[str, str] | None = None, encoding: str = "utf-8"
) -> list[str]:
    """Header columns that are neither lead columns nor mapped to one (their values are
    kept only in quarantine, never on a lead): worth a mapping in config/intake.yaml."""
    lines = _Lines(path, encoding)
    try:
        first = lines.next_line()
        while first is not None and not first[1].strip():
            first = lines.next_line()
    finally:
        lines.close()
    if first is None:
        return []
    header = next(csv.reader([first[1]], delimiter=_delimiter(first[1])), [])
    folded = {k.strip().lower(): v.strip().lower() for k, v in (mapping or {}).items()}
    return [
        h.strip()
        for h in header
        if h.strip() and folded.get(h.strip().lower(), h.strip().lower()) not in LEAD_COLUMNS
    ]


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
    mapping: dict[str, str] | None = None,
    encoding: str = "utf-8",
) -> tuple[ImportReport | None, ImportedFile | None]:
    """Import one CSV file unless a file with the same content was imported before.

    Returns (report, None) after an import, or (None, earlier) when the file is skipped.
    The file is recorded in the same transaction as its leads, so a failed import can be
    retried. `force` imports it again (its rows then merge into the leads they made).
    """
    checksum = file_checksum(path)
    earlier = session.exec(select(ImportedFile).where(ImportedFile.checksum == checksum)).first()
    if earlier is not None and not force:
        return None, earlier
    report = import_records(
        session,
        read_csv(path, mapping=mapping, encoding=encoding),
        source=source,
        now=now,
        default_region=default_region,
        default_timezone=default_timezone,
    )
    record = earlier or ImportedFile(
        checksum=checksum, name=path.name[:500], source=source, imported_at=now
    )
    record.rows_read += report.read
    record.leads_created += report.created
    record.leads_merged += report.merged
    record.rows_quarantined += report.quarantined_total
    record.imported_at = now
    session.add(record)
    session.flush()
    return report, None
