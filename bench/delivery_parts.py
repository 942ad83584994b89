"""Where a delivery tick's CPU goes: plan, policy, render, send and record, per message.

`PartTimer` wraps the functions of each part with thread CPU timers (time.thread_time,
so the sending threads are measured too, and waiting costs nothing), charging each moment
to the innermost part running on that thread (exclusive time: a part's own time, not its
callees'). What no part claims is `other` (the dispatcher loop, thread hand-offs, the
interpreter's own work). The wrappers cost about a microsecond per call, which is why the
timed runs go without them. `main_thread_profile` is a cProfile summary of the main thread.
"""

from __future__ import annotations

import cProfile
import functools
import io
import pstats
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PARTS = ("plan", "policy", "render", "send", "record", "other")


class PartTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack: list[list[Any]] | None = getattr(self._local, "stack", None)
            if stack is None:
                stack = self._local.stack = []
            now = time.thread_time()
            if stack:
                self._charge(stack[-1][0], now - stack[-1][1])
            stack.append([part, now])
            try:
                return function(*args, **kwargs)
            finally:
                end = time.thread_time()
                name, started = stack.pop()
                self._charge(name, end - started)
                if stack:
                    stack[-1][1] = end

        return timed

    def _charge(self, part: str, seconds: float) -> None:
        with self._lock:
            self.seconds[part] += seconds


@contextmanager
def timed_parts(timer: PartTimer) -> Iterator[None]:
    """Wrap the code paths of each part for the span (and put them back after)."""
    from leadops.delivery import dispatch, pool
    from leadops.nurture import tick

    targets: list[tuple[Any, str, str]] = [
        (tick, "plan_all", "plan"),
        (dispatch.Dispatcher, "claim", "policy"),
        (dispatch.Dispatcher, "_load", "policy"),
        (dispatch, "decide", "policy"),
        (dispatch, "contact_facts", "policy"),
        (dispatch, "compose", "render"),
        (pool.ChannelPool, "_send", "send"),
        (dispatch.Dispatcher, "_mark_sending", "record"),
        (dispatch.Dispatcher, "_record_attempts", "record"),
        (dispatch, "write_outcomes", "record"),
    ]
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in targets]
    try:
        for owner, name, part in targets:
            setattr(owner, name, timer.wrap(part, getattr(owner, name)))
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def main_thread_profile(run: Callable[[], object], top: int = 12) -> list[tuple[str, float]]:
    """The functions the main thread spends most of its own time in (cProfile tottime)."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        run()
    finally:
        profile.disable()
    stats = pstats.Stats(profile, stream=io.StringIO())
    rows = []
    for (path, line, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = "/".join(path.split("/")[-2:])
        rows.append((f"{name} ({short}:{line})", tottime))
    rows.sort(key=lambda row: -row[1])
    return rows[:top]
