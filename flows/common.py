"""What every leadops flow shares: run names, the retry rule for tasks, and settings
(with provider credentials from Prefect Secret blocks when the environment has none)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prefect.runtime import flow_run

from leadops.core.clock import SystemClock
from leadops.core.credentials import with_secret_blocks
from leadops.core.db import is_transient
from leadops.core.settings import Settings, get_settings

# Task retries: three more tries, backing off, and only for transient errors.
RETRIES = 3
RETRY_DELAYS: list[float] = [2.0, 10.0, 30.0]


def run_name(prefix: str, key: str, fmt: str = "%Y-%m-%dT%H:%MZ") -> str:
    """`prefix-<time>`: the flow's `key` parameter if given, else the wall clock."""
    value = flow_run.parameters.get(key)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    when = value.astimezone(UTC) if isinstance(value, datetime) else SystemClock().now()
    return f"{prefix}-{when:{fmt}}"


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """retry_condition_fn: retry a failed task only when its error is transient."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            result = state.result(raise_on_failure=False)
        except Exception:
            return False
        exc = result if isinstance(result, BaseException) else None
    return is_transient(exc)


def flow_settings() -> Settings:
    """The process settings, secrets filled from Prefect Secret blocks, library logs on."""
    enable_library_logs()
    return with_secret_blocks(get_settings())


def enable_library_logs(level: int = logging.INFO) -> None:
    """Let leadops' own INFO lines through (Prefect forwards the `leadops` logger to the
    run's logs when PREFECT_LOGGING_EXTRA_LOGGERS=leadops)."""
    logging.getLogger("leadops").setLevel(level)
