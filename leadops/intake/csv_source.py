"""Read leads from CSV files: UTF-8 with or without BOM, `,` or `;` delimited, streamed.

A file whose header cannot be read (binary or UTF-16 bytes, a header line that does not
decode, a stray carriage return or an unclosed quote in it, two columns for the same lead
field, no `email` or `phone` column) raises FileRejected before any row is read: the
caller quarantines the file as a whole. Past the header, hostile input never stops a file
and never loses a row: a badly encoded line is decoded as Windows-1252 and quarantined,
a row with too many cells, an over-long field, a quote that never closes or a line the
CSV parser refuses is still yielded, carrying its problems, so the importer quarantines
it with its raw data.
"""

from __future__ import annotations

import csv
import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from leadops.core.db import session_scope
from leadops.intake.config import is_target
from leadops.intake.importer import ImportReport, import_each, import_records
from leadops.intake.mapping import SourceRules
from leadops.intake.records import RawRecord
from leadops.intake.validate import CONTROL_CHARACTERS
from leadops.models import ImportedFile

MAX_FIELD_CHARS = 10_000
MAX_RECORD_LINES = 20  # a quoted field spanning more lines is an unclosed quote
SNIFF_BYTES = 64 * 1024  # binary content is looked for in the file's first bytes
BINARY_SHARE = 0.1  # of those, at most this share may be control or undecodable bytes
MALFORMED_ROW = "malformed_row"
INVALID_ENCODING = "invalid_encoding"
MISSING_COLUMNS = "missing_columns"
# File-level reasons (the file is quarantined as a whole)
BINARY_FILE = "binary_file"
MALFORMED_HEADER = "malformed_header"
DUPLICATE_COLUMNS = "duplicate_columns"
RELEASE_HINT = "then `leadops quarantine release-file ID`"

csv.field_size_limit(64 * 1024 * 1024)


class CsvFormatError(ValueError):
    """The file cannot be read at all (kept for callers; content problems never raise)."""


class FileRejected(ValueError):
    """The file cannot be read as a CSV of leads: `reason` (a code) and `detail` (what is
    wrong, where, and the fix). Raised before any row is read."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Header:
    """A file's header: its line number, delimiter, the cells as written, and the key each
    column's values are stored under (a lead column, else the lower-cased header; a
    repeated or empty one gets its position, e.g. `notes_5`, `column_7`)."""

    line: int
    delimiter: str
    cells: list[str]
    names: list[str]

    @property
    def unmapped(self) -> list[str]:
        return [
            cell.strip()
            for cell, name in zip(self.cells, self.names, strict=True)
            if cell.strip() and not is_target(name)
        ]


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
) -> Iterator[tuple[list[str], list[tuple[int, str]], str | None]]:
    """Yield (cells, physical lines, parse error) per CSV record. A record spanning several
    lines is kept only when it has exactly `width` cells and at most MAX_RECORD_LINES
    lines; otherwise it is an unclosed quote swallowing rows, so its first line becomes a
    record of its own and the following lines are read again. A record the CSV parser
    refuses is yielded as its raw lines, with the parser's message."""
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        lines.taken = []
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield [line for _, line in lines.taken], lines.taken, str(exc)
            continue
        taken = lines.taken
        if len(taken) > 1 and (len(cells) != width or len(taken) > MAX_RECORD_LINES):
            first, rest = taken[0], taken[1:]
            lines.push_back(rest)
            reader = csv.reader(lines, delimiter=delimiter)
            try:
                yield next(csv.reader([first[1]], delimiter=delimiter), []), [first], None
            except csv.Error as exc:
                yield [first[1]], [first], str(exc)
            continue
        yield cells, taken, None


def _looks_binary(head: bytes, encoding: str) -> bool:
    """More than BINARY_SHARE of the first bytes are control bytes, or (for UTF-8) bytes
    that do not decode: an image, archive or spreadsheet, not a text file."""
    utf8 = encoding.replace("_", "-").lower() in ("utf-8", "utf8", "utf-8-sig")
    text = head.decode("utf-8" if utf8 else "latin-1", errors="replace")
    odd = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\n\r\f"))
    return len(text) > 0 and odd / len(text) > BINARY_SHARE


def _sniff(path: Path, encoding: str) -> None:
    """Refuse UTF-16/32 files by their byte-order mark, binary files by their first bytes,
    and files with no line break in their first SNIFF_BYTES (no CSV header is that long)."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES + 1)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileRejected(
            INVALID_ENCODING,
            "the file is UTF-16 or UTF-32 (it starts with a byte-order mark FF FE or FE FF); "
            f'save it as "CSV UTF-8", {RELEASE_HINT}',
        )
    if _looks_binary(head, encoding):
        raise FileRejected(
            BINARY_FILE,
            "this is not a text file (its first bytes are mostly control bytes or not "
            f"{encoding}: an image, archive or spreadsheet?); export it as CSV UTF-8, "
            f"{RELEASE_HINT}",
        )
    if len(head) > SNIFF_BYTES and b"\n" not in head:
        raise FileRejected(
            MALFORMED_HEADER,
            f"no line break in the first {SNIFF_BYTES // 1024} KiB (old Mac CR line endings, "
            f"or not a CSV file); save it as CSV UTF-8 with LF or CRLF line endings, "
            f"{RELEASE_HINT}",
        )


def _header(lines: _Lines, *, mapping: dict[str, str] | None, encoding: str) -> Header | None:
    """Read and check the header line (the first non-blank one); None for an empty file."""
    first = lines.next_line()
    while first is not None and not first[1].strip():
        first = lines.next_line()
    if first is None:
        return None
    number, line = first
    where = f"line {number} (the header)"
    if number in lines.bad:
        raise FileRejected(
            INVALID_ENCODING,
            f"{where} is not valid {encoding}; set csv.encoding in config/intake.yaml "
            f"(e.g. cp1252) or save the file as UTF-8, {RELEASE_HINT}",
        )
    text = line.rstrip("\r\n")
    if "\x00" in text:
        raise FileRejected(
            BINARY_FILE,
            f"{where} contains NUL bytes: this is not a UTF-8 text file (UTF-16 without a "
            f"byte-order mark, a spreadsheet, an archive?); export it as CSV UTF-8, "
            f"{RELEASE_HINT}",
        )
    if "\r" in text:
        raise FileRejected(
            MALFORMED_HEADER,
            f"{where} has a carriage return inside it (a stray CR, or old Mac line endings); "
            f"save the file with LF or CRLF line endings, {RELEASE_HINT}",
        )
    if CONTROL_CHARACTERS.search(text):
        raise FileRejected(
            MALFORMED_HEADER,
            f"{where} contains control characters; fix the header, {RELEASE_HINT}",
        )
    delimiter = _delimiter(text)
    try:
        cells = next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error as exc:
        raise FileRejected(MALFORMED_HEADER, f"{where}: {exc}; {RELEASE_HINT}") from exc
    if any("\n" in cell or "\r" in cell for cell in cells) or text.count('"') % 2:
        raise FileRejected(
            MALFORMED_HEADER, f"{where}: a quote is never closed; fix the header, {RELEASE_HINT}"
        )
    folded = {k.strip().lower(): v.strip().lower() for k, v in (mapping or {}).items()}
    mapped = [folded.get(c.strip().lower(), c.strip().lower()) for c in cells]
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(mapped, start=1):
        if is_target(name):
            positions.setdefault(name, []).append(position)
    repeated = {name: at for name, at in positions.items() if len(at) > 1}
    if repeated:
        parts = [
            " and ".join(f"{p} `{cells[p - 1].strip()}`" for p in at) + f" both give `{name}`"
            for name, at in sorted(repeated.items())
        ]
        raise FileRejected(
            DUPLICATE_COLUMNS,
            f"{where}: columns {'; columns '.join(parts)}; which one holds the lead's value "
            f"is not guessed: remove or rename one (or change csv.column_mapping in "
            f"config/intake.yaml), {RELEASE_HINT}",
        )
    if "email" not in positions and "phone" not in positions:
        raise FileRejected(
            MISSING_COLUMNS,
            f"{where} has neither an `email` nor a `phone` column (found: "
            f"{', '.join(c.strip() for c in cells)[:300]}); map its headers in "
            f"csv.column_mapping in config/intake.yaml, {RELEASE_HINT}",
        )
    names: list[str] = []
    for position, name in enumerate(mapped, start=1):
        if not name:
            name = f"column_{position}"
        elif name in names:
            name = f"{name}_{position}"
        names.append(name)
    return Header(line=number, delimiter=delimiter, cells=cells, names=names)


def read_header(
    path: Path, *, mapping: dict[str, str] | None = None, encoding: str = "utf-8"
) -> Header | None:
    """The file's checked header (None for an empty file). Raises FileRejected."""
    _sniff(path, encoding)
    lines = _Lines(path, encoding)
    try:
        return _header(lines, mapping=mapping, encoding=encoding)
    finally:
        lines.close()


def read_csv(
    path: Path, *, mapping: dict[str, str] | None = None, encoding: str = "utf-8"
) -> Iterator[RawRecord]:
    """Yield one RawRecord per data row; `mapping` renames foreign headers to canonical ones
    (matched case-insensitively, surrounding spaces ignored). Raises FileRejected, before
    the first row, when the file cannot be read as CSV."""
    _sniff(path, encoding)
    lines = _Lines(path, encoding)
    try:
        header = _header(lines, mapping=mapping, encoding=encoding)
        if header is None:
            return
        names = header.names
        for cells, taken, error in _records(lines, header.delimiter, len(names)):
            if not any(cell.strip() for cell in cells):
                continue
            ref = f"{path.name}:{taken[0][0]}" if taken else path.name
            problems: list[tuple[str, str]] = []
            data: dict[str, object] = dict(zip(names, cells, strict=False))
            if error is not None:
                where = f"line {taken[0][0]}" if taken else "a line"
                problems.append((MALFORMED_ROW, f"{where} cannot be parsed: {error}"))
            elif len(cells) > len(names):
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
    try:
        header = read_header(path, mapping=mapping, encoding=encoding)
    except FileRejected:
        return []
    return header.unmapped if header is not None else []


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
    rules: SourceRules | None = None,
) -> tuple[ImportReport | None, ImportedFile | None]:
    """Import one CSV file unless a file with the same content was imported before.

    Returns (report, None) after an import, or (None, earlier) when the file is skipped.
    The file is recorded in the same transaction as its leads, so a failed import can be
    retried. `force` imports it again (its rows then merge into the leads they made).
    Raises FileRejected, having written nothing, when the file cannot be read as CSV.
    """
    checksum = file_checksum(path)
    read_header(path, mapping=mapping, encoding=encoding)  # FileRejected before any write
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
        rules=rules,
    )
    _record_file(session, path, checksum=checksum, source=source, now=now, report=report)
    return report, None


def _record_file(
    session: Session, path: Path, *, checksum: str, source: str, now: datetime, report: ImportReport
) -> None:
    """Record (or add to) the imported file's row, so the same content is skipped later."""
    record = session.exec(select(ImportedFile).where(ImportedFile.checksum == checksum)).first()
    record = record or ImportedFile(
        checksum=checksum, name=path.name[:500], source=source, imported_at=now
    )
    record.rows_read += report.read
    record.leads_created += report.created
    record.leads_merged += report.merged
    record.rows_quarantined += report.quarantined_total
    record.imported_at = now
    session.add(record)
    session.flush()


def import_csv_file_each(
    engine: Engine,
    path: Path,
    *,
    source: str,
    now: datetime,
    default_region: str,
    default_timezone: str,
    mapping: dict[str, str] | None = None,
    encoding: str = "utf-8",
    rules: SourceRules | None = None,
) -> ImportReport:
    """Import a file record by record, each in its own transaction: the fallback when the
    file's single transaction failed in the database, so one record the database refuses
    never stops the file (it is quarantined as `store_failed`). The file is recorded last;
    a crash part-way leaves it unrecorded, and its rows merge when it is read again."""
    checksum = file_checksum(path)
    report = import_each(
        engine,
        read_csv(path, mapping=mapping, encoding=encoding),
        source=source,
        now=now,
        default_region=default_region,
        default_timezone=default_timezone,
        rules=rules,
    )
    with session_scope(engine) as session:
        _record_file(session, path, checksum=checksum, source=source, now=now, report=report)
    return report
