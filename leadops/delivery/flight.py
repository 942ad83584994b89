"""Sends in flight: handed to channel pools, not yet recorded, across chunks and batches.

The dispatcher hands a chunk to the pools only once it is committed as `sending`, and
waits (`drain`) until at most one more chunk is in flight, so a crash leaves at most two
chunks in doubt. A send cancelled before it started is reported as NotAttempted.
"""

from __future__ import annotations

from concurrent.futures import Future, wait

from leadops.delivery.outcomes import ClaimedTouch
from leadops.delivery.pool import Attempt, NotAttempted
from leadops.providers.base import OutgoingMessage


class Flight:
    """Sends handed to channel pools and not yet recorded, across chunks and batches."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.inflight: dict[Future[Attempt], tuple[str, ClaimedTouch, OutgoingMessage]] = {}
        self.finished: list[tuple[str, ClaimedTouch, Attempt]] = []

    def submit(
        self, token: str, touch: ClaimedTouch, message: OutgoingMessage, future: Future[Attempt]
    ) -> None:
        self.inflight[future] = (token, touch, message)

    def _finish(self, future: Future[Attempt]) -> None:
        token, touch, message = self.inflight.pop(future)
        if future.cancelled():
            attempt = Attempt(message, error=NotAttempted("dispatcher stopped before sending"))
        else:
            attempt = future.result()
        self.finished.append((token, touch, attempt))

    def _collect(self) -> None:
        """Move every finished send (done() includes cancelled ones) to `finished`."""
        for future in [f for f in self.inflight if f.done()]:
            self._finish(future)

    def take_finished(self) -> list[tuple[str, ClaimedTouch, Attempt]]:
        """The sends finished so far (without waiting), forgotten here."""
        self._collect()
        finished, self.finished = self.finished, []
        return finished

    def drain(self, limit: int) -> None:
        """Wait until at most `limit` sends are in flight."""
        while True:
            # cancelled futures count as done: wait() would never return them
            self._collect()
            if len(self.inflight) <= limit:
                return
            # Wait on the oldest send only: sends finish roughly in order, and waiting on
            # one future is cheap where waiting on all of them locks each one every time.
            wait([next(iter(self.inflight))])
