"""Print lists as a rich table, JSON or CSV (`--format table|json|csv`).

Every table goes through `print_table`, which decides how wide it may be: on a terminal
as wide as the terminal, long cells folded onto more lines (never cut with an ellipsis);
when the output is a file or a pipe, as wide as its widest row, so no value is cut.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

# Cells that spreadsheet programs would run as formulas (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Below this width a table that is not on a terminal is laid out as before (80 columns).
PIPE_MIN_WIDTH = 80
PIPE_MAX_WIDTH = 100_000
# The columns of `--format csv` for a command with several sections.
SECTION_CSV_COLUMNS = ("section", "row", "column", "value")


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def print_json(value: Any) -> None:
    """Print a JSON document (times and dates as ISO 8601)."""
    json.dump(value, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def safe_cell(value: Any) -> str:
    """A CSV cell that spreadsheets show as text, never evaluate as a formula."""
    text = "" if value is None else str(_plain(value))
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def print_table(table: Table, console: Console | None = None) -> None:
    """Print a table whole: folded to the width of a terminal, at its natural width on a
    file or pipe (the one place that decides how wide tables are)."""
    target = console or Console()
    for column in table.columns:
        column.overflow = "fold"
    if target.is_terminal:
        target.print(table)
        return
    wide = target.options.update(max_width=PIPE_MAX_WIDTH)
    natural = Measurement.get(target, wide, table).maximum
    width = max(PIPE_MIN_WIDTH, min(natural, PIPE_MAX_WIDTH))
    Console(file=target.file, width=width, no_color=True, highlight=False).print(table)


def emit(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: Format,
    *,
    title: str | None = None,
    console: Console | None = None,
) -> None:
    if fmt == Format.JSON:
        json.dump([{k: _plain(row.get(k)) for k in columns} for row in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if fmt == Format.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([safe_cell(row.get(k)) for k in columns])
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*("" if row.get(k) is None else str(_plain(row.get(k))) for k in columns))
    print_table(table, console)


def emit_sections(
    sections: Mapping[str, Sequence[Mapping[str, Any]]],
    fmt: Format,
    *,
    titles: Mapping[str, str] | None = None,
    columns: Mapping[str, Sequence[str]] | None = None,
    console: Console | None = None,
) -> None:
    """Several lists at once. Table: one table per section (its title from `titles`, its
    columns those of its first row, or from `columns` when it has none).
    JSON: one object, a list of rows per section. CSV: one line per cell, with the
    columns `section,row,column,value` (`row` counts from 1 within its section)."""
    if fmt == Format.JSON:
        data = {
            name: [{k: _plain(v) for k, v in row.items()} for row in rows]
            for name, rows in sections.items()
        }
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if fmt == Format.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(SECTION_CSV_COLUMNS)
        for name, rows in sections.items():
            for number, row in enumerate(rows, start=1):
                for column, value in row.items():
                    writer.writerow([name, number, column, safe_cell(value)])
        return
    for name, rows in sections.items():
        names = list(rows[0]) if rows else (columns or {}).get(name, [name])
        emit(rows, names, fmt, title=(titles or {}).get(name, name), console=console)


def counted(title: str, shown: int, total: int) -> str:
    """A list's title with its count: "Leads (50 of 213)" when cut, else "Leads (213)"."""
    return f"{title} ({shown} of {total})" if total > shown else f"{title} ({total})"


def limit_note(shown: int, total: int, limit: int, console: Console | None = None) -> None:
    """Say on stderr that a list was cut by `--limit` (nothing when it was not)."""
    if limit and total > shown:
        (console or Console(stderr=True)).print(
            f"showing {shown} of {total}; --limit 0 for all", highlight=False
        )
