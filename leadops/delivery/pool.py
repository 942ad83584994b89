"""Sending through a channel concurrently within its limits.

`ChannelPool` runs one channel's sends on a thread pool behind a token bucket, retrying
in place only what provably did not arrive (TransientSendError), honouring Retry-After.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from leadops.core.ratelimit import TokenBucket
from leadops.providers.base import (
    ChannelSender,
    ChannelUnavailableError,
    OutgoingMessage,
    SendError,
    SendResult,
    TransientSendError,
)

log = logging.getLogger("leadops.delivery")


class NotAttempted(ChannelUnavailableError):
    """The send never started (the dispatcher stopped first): the touch waits, unsent."""


@dataclass
class Attempt:
    """The outcome of sending one message: a result, or the error of the last try."""

    message: OutgoingMessage
    result: SendResult | None = None
    error: BaseException | None = None
    tries: int = 0


class ChannelPool:
    """One channel's concurrent sender: `concurrency` threads, `rate_per_second` starts.

    A transient error is retried in place up to `attempts` times when the wait it asks for
    is at most `max_wait` seconds; the bucket pauses every thread while a 429 lasts. A
    ChannelUnavailableError stops the pool: later messages are not attempted at all.
    """

    def __init__(
        self,
        channel: ChannelSender,
        *,
        attempts: int = 3,
        max_wait: float = 5.0,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.channel = channel
        self.attempts = attempts
        self.max_wait = max_wait
        # Set by close(cancel=True): waits for a token or a retry end, nothing new starts.
        self._closing = threading.Event()
        self._sleep = sleep if sleep is not None else self._closing.wait
        rate = channel.rate_per_second
        self.bucket = TokenBucket(rate) if rate else None
        self.executor = ThreadPoolExecutor(
            max_workers=max(1, channel.concurrency), thread_name_prefix=f"send-{channel.name}"
        )
        self.stopped: ChannelUnavailableError | None = None
        self._lock = threading.Lock()

    def submit(self, message: OutgoingMessage) -> Future[Attempt]:
        return self.executor.submit(self._send, message)

    def _send(self, message: OutgoingMessage) -> Attempt:
        attempt = Attempt(message)
        while True:
            if self.stopped is not None:
                attempt.error = self.stopped
                return attempt
            if self.bucket is not None and not self.bucket.acquire(self._closing):
                if attempt.tries == 0:
                    attempt.error = NotAttempted("dispatcher stopped before sending")
                return attempt
            attempt.tries += 1
            try:
                attempt.result = self.channel.send(message)
                attempt.error = None
                return attempt
            except ChannelUnavailableError as exc:
                with self._lock:
                    if self.stopped is None:
                        log.error(
                            "%s unavailable, stopping it for this run: %s", self.channel.name, exc
                        )
                        self.stopped = exc
                attempt.error = exc
                return attempt
            except TransientSendError as exc:
                attempt.error = exc
                wait = backoff(attempt.tries, exc.retry_after)
                if exc.retry_after is not None and self.bucket is not None:
                    self.bucket.pause(wait)
                if attempt.tries >= self.attempts or wait > self.max_wait:
                    return attempt
                self._sleep(wait)
                if self._closing.is_set():
                    return attempt
            except SendError as exc:
                attempt.error = exc
                return attempt
            except Exception as exc:  # our own bug after the request may have left
                log.exception(
                    "%s: unexpected error sending touch %s", self.channel.name, message.touch_id
                )
                attempt.error = exc
                return attempt

    def close(self, *, cancel: bool = False) -> None:
        """Wait for the sends on the wire; with `cancel`, drop those not started yet
        (including those waiting for the rate limit or a retry)."""
        if cancel:
            self._closing.set()
        self.executor.shutdown(wait=True, cancel_futures=cancel)


def backoff(tries: int, retry_after: float | None) -> float:
    """Seconds to wait before try `tries + 1`: Retry-After when given, else 0.2 s doubling."""
    if retry_after is not None:
        return max(0.0, retry_after)
    return min(30.0, 0.2 * 2 ** (tries - 1))
