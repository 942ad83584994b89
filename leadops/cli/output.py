"""Print lists as a rich table, JSON or CSV (`--format table|json|csv`)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

# Cells that spreadsheet programs would run as formulas (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def safe_cell(value: Any) -> str:
    """A CSV cell that spreadsheets show as text, never evaluate as a formula."""
    text = "" if value is None else str(_plain(value))
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def emit(
    rows: Sequence[dict[str, Any]],
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
    (console or Console()).print(table)
