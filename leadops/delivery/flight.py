"""Sends in flight: handed to channel pools, not yet recorded, across chunks and batches.

The dispatcher hands a chunk to the pools only once it is committed as `sending`, and
waits (`drain`) until at most one more chunk is in flight, so a crash leaves at most two
chunks in doubt. A send cancelled before it started is reported as NotAttempted.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import CancelledError, Future
from contextlib import suppress

from leadops.delivery.outcomes import ClaimedTouch
from leadops.delivery.pool import Attempt, NotAttempted
from leadops.providers.base import OutgoingMessage


class Flight:
    """Sends handed to channel pools and not yet recorded, across chunks and batches."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.inflight: dict[Future[Attempt], tuple[str, ClaimedTouch, OutgoingMessage]] = {}
        self.finished: list[tuple[str, ClaimedTouch, Attempt]] = []
        # Futures that finished (or were cancelled), appended by their done-callback in the
        # sending thread: collecting them asks no future whether it is done.
        self._done: deque[Future[Attempt]] = deque()

    def submit(
        self, token: str, touch: ClaimedTouch, message: OutgoingMessage, future: Future[Attempt]
    ) -> None:
        self.inflight[future] = (token, touch, message)
        future.add_done_callback(self._done.append)

    def _finish(self, future: Future[Attempt]) -> None:
        """Move one finished send to `finished` (once: its callback may come after)."""
        entry = self.inflight.pop(future, None)
        if entry is None:
            return
        token, touch, message = entry
        if future.cancelled():
            attempt = Attempt(message, error=NotAttempted("dispatcher stopped before sending"))
        else:
            attempt = future.result()
        self.finished.append((token, touch, attempt))

    def _collect(self) -> None:
        """Move every finished send (cancelled ones included) to `finished`."""
        done = self._done
        while done:
            self._finish(done.popleft())

    def take_finished(self) -> list[tuple[str, ClaimedTouch, Attempt]]:
        """The sends finished so far (without waiting), forgotten here."""
        self._collect()
        finished, self.finished = self.finished, []
        return finished

    def drain(self, limit: int) -> None:
        """Wait until at most `limit` sends are in flight."""
        while True:
            # cancelled futures run their done-callback too: wait() would never return them
            self._collect()
            if len(self.inflight) <= limit:
                return
            # Wait on the oldest send only: sends finish roughly in order, and waiting on
            # one future is cheap where waiting on all of them locks each one every time
            # (exception() waits on the future's own lock; wait() would make a waiter).
            oldest = next(iter(self.inflight))
            with suppress(CancelledError):
                oldest.exception()
            self._finish(oldest)  # done, though its callback may not have run yet
