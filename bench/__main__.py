"""Run benchmarks by name: `python -m bench intake delivery` (no name: all of them).

Each benchmark is a module bench/<name>.py with a `main() -> None` that measures and
calls bench.report.write_section(name, ...).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

SKIP = {"app", "report", "__main__", "standin", "delivery_parts", "pgserver", "scale_report"}


def available() -> list[str]:
    folder = str(Path(__file__).resolve().parent)
    return sorted(m.name for m in pkgutil.iter_modules([folder]) if m.name not in SKIP)


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = [name for name in names if name not in available()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(available())}")
        return 2
    for name in names:
        print(f"== bench {name}", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
