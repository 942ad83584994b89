"""What a `leadops doctor` check reports: a `Check` with its `Status`, what it found, and
how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
