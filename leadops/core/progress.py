"""Progress of long work, reported to whoever listens (the CLI's progress bar, a flow's
progress artifact). Listeners are registered by the caller that owns the display."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Listener = Callable[[float, str], None]
_listeners: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def notify(fraction: float, text: str) -> None:
    """Report `fraction` (0..1) done, with a short description."""
    for listener in list(_listeners):
        listener(min(1.0, max(0.0, fraction)), text)
