"""The token bucket that keeps each provider under its messages-per-second limit, and a
stopping dispatcher's waits for it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadops.core.ratelimit import TokenBucket
from leadops.delivery.pool import ChannelPool, NotAttempted, backoff
from leadops.providers.base import OutgoingMessage
from leadops.providers.outbox import OutboxChannel


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bucket_allows_the_burst_then_paces_to_the_rate() -> None:
    clock = FakeTime()
    bucket = TokenBucket(50, burst=5, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(105):
        bucket.acquire()
    # 5 at once, then 100 more at 50/s: two seconds
    assert clock.now - 100.0 == pytest.approx(2.0, abs=0.03)


def test_pause_stops_everyone_for_the_retry_after() -> None:
    clock = FakeTime()
    bucket = TokenBucket(1000, burst=10, monotonic=clock.monotonic, sleep=clock.sleep)
    bucket.acquire()
    bucket.pause(3.0)
    bucket.acquire()
    assert clock.now >= 103.0


def test_bucket_is_thread_safe_and_never_exceeds_the_rate() -> None:
    bucket = TokenBucket(400, burst=1)
    starts: list[float] = []
    lock = threading.Lock()
    import time

    def worker() -> None:
        for _ in range(20):
            bucket.acquire()
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == 80
    assert max(starts) - began >= 79 / 400 * 0.9


def test_backoff_prefers_retry_after_and_doubles_otherwise() -> None:
    assert backoff(1, 7.0) == 7.0
    assert [backoff(n, None) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]
    assert backoff(20, None) == 30.0
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_a_wait_for_a_token_ends_once_stop_is_set() -> None:
    bucket = TokenBucket(1000, burst=1)
    bucket.pause(60)  # a provider's Retry-After: nobody may start for a minute
    stop = threading.Event()
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(bucket.acquire(stop)))
    waiter.start()
    stop.set()
    waiter.join(timeout=10)
    assert results == [False]
    assert not bucket.acquire(stop)  # stopped: no token is handed out


def test_closing_a_pool_cancels_the_sends_still_waiting_for_the_rate_limit(
    tmp_path: Path,
) -> None:
    channel = OutboxChannel(tmp_path, "email", sender_email="hello@northwind.example")
    channel.rate_per_second = 1000.0
    channel.concurrency = 3
    pool = ChannelPool(channel)
    assert pool.bucket is not None
    pool.bucket.pause(60)
    futures = [pool.submit(_message(touch_id)) for touch_id in range(1, 7)]
    pool.close(cancel=True)
    # three were waiting for a token, three never started: none was sent
    attempts = [future.result() for future in futures if not future.cancelled()]
    assert len(attempts) == 3
    assert all(isinstance(a.error, NotAttempted) and a.tries == 0 for a in attempts)
    assert not list(tmp_path.rglob("*.eml"))


def _message(touch_id: int) -> OutgoingMessage:
    return OutgoingMessage(
        touch_id=touch_id,
        lead_id=touch_id,
        channel="email",
        to=f"lead{touch_id}@example.com",
        campaign="educate",
        step="day-1",
        created_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        subject="Metrics that matter",
        html="<p>Hello</p>",
        text="Hello",
        unsubscribe_url="https://hooks.example.com/u/x",
    )
