"""How `leadops serve` runs uvicorn, with limits so slow or idle clients cannot hold
connections open indefinitely.

uvicorn closes an idle kept-alive connection after `timeout_keep_alive`, refuses work past
`limit_concurrency` (503) and bounds a request head to `h11_max_incomplete_event_size`,
but it has no deadline for a request head that arrives slowly: `HeaderDeadlineProtocol`
closes a connection whose request line and headers are not complete within
`HEADER_TIMEOUT_SECONDS`. The body has its own deadline in the routes
(`leadops.web.guard.read_body`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
LIMIT_CONCURRENCY = 200  # connections and requests at once; beyond it uvicorn answers 503
MAX_HEAD_BYTES = 16 * 1024  # request line and headers
GRACEFUL_SHUTDOWN_SECONDS = 10


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head arrives too slowly."""

    header_timeout = HEADER_TIMEOUT_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def _await_head(self) -> None:
        """Start the clock for the next request head."""
        self._head_timer = self.loop.call_later(
            self.header_timeout, self._head_too_slow, self.cycle
        )

    def _head_too_slow(self, waiting_after: Any) -> None:
        """Close the connection if no new request began and none is being answered."""
        idle = waiting_after is None or waiting_after.response_complete
        if self.cycle is waiting_after and idle and not self.transport.is_closing():
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._head_timer.cancel()
        if not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_timer.cancel()
        super().connection_lost(exc)


def uvicorn_options() -> dict[str, Any]:
    """The keyword arguments `leadops serve` gives uvicorn.run beside host and port."""
    return {
        "http": "leadops.web.server:HeaderDeadlineProtocol",
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "limit_concurrency": LIMIT_CONCURRENCY,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }
