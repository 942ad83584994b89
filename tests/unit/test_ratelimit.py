"""The token bucket that keeps each provider under its messages-per-second limit."""

from __future__ import annotations

import threading

import pytest

from leadops.delivery import backoff
from leadops.ratelimit import TokenBucket


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
