"""Send the requests an SDK built with urllib over one kept-alive connection.

The SendGrid SDK (python_http_client) builds a `urllib.request.Request` and opens it with
a fresh opener, so every message pays a new TCP (and TLS) connection. `KeepAliveTransport`
sends a request with the same headers urllib would add (`request_headers`: Host,
Content-Length, the default User-Agent if none was given), except `Connection: close`,
over a connection kept open between messages. Errors keep urllib's meaning, which the
channel relies on to tell a message that never left from one that may have arrived:

- connecting or writing the request fails: `urllib.error.URLError` (nothing was accepted:
  a request not fully written, with its Content-Length, is never processed);
- reading the answer fails: the raw `OSError` / `http.client.HTTPException` (in doubt);
- a non-2xx answer: returned as it is; the caller decides (SendGrid raises the SDK's
  HTTPError for it).

A kept connection the server has already closed (it is readable before we write) or that
sat idle longer than `max_idle` seconds is replaced before the request is written, so an
idle timeout on the server's side does not turn a send into an ambiguous one.

One transport serves one thread. When the environment names a proxy for the host, the
transport is not used (`applies_to` is false) and the SDK's own opener sends the request.
"""

from __future__ import annotations

import http.client
import select
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit


class NotConnected(urllib.error.URLError):
    """No connection could be made (refused, unreachable, connect timeout)."""


def uses_proxy(url: str) -> bool:
    """Whether urllib would route a request for `url` through an environment proxy."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


class _OneWrite:
    """http.client writes a request's head and its body in two system calls; with a body
    of bytes (every request here) both go out in one, the head exactly as http.client
    formats it."""

    _buffer: list[bytes]
    if TYPE_CHECKING:

        def send(self, data: Any) -> None: ...  # http.client.HTTPConnection's

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if not isinstance(message_body, bytes) or encode_chunked:
            super()._send_output(message_body, encode_chunked)  # type: ignore[misc]
            return
        self._buffer.extend((b"", b""))
        head = b"\r\n".join(self._buffer)
        del self._buffer[:]
        self.send(head + message_body)


class _Connection(_OneWrite, http.client.HTTPConnection):
    pass


class _TLSConnection(_OneWrite, http.client.HTTPSConnection):
    pass


class KeepAliveTransport:
    """Opens urllib requests for one host over one persistent connection (one thread)."""

    def __init__(self, base_url: str, *, max_idle: float = 4.0, cafile: str | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.max_idle = max_idle
        self.applies = not uses_proxy(base_url)
        self._context = (
            ssl.create_default_context(cafile=cafile) if self.scheme == "https" else None
        )
        self._conn: http.client.HTTPConnection | None = None
        self._handler = urllib.request.HTTPHandler()
        self._handler.add_parent(urllib.request.OpenerDirector())
        self._last_used = 0.0
        self.connections_opened = 0

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and (
            conn.sock is None
            or time.monotonic() - self._last_used > self.max_idle
            or _readable(conn.sock)  # the server closed it (or sent something unasked)
        ):
            conn.close()
            conn = None
        if conn is None:
            if self._context is not None:
                conn = _TLSConnection(self.host, self.port, timeout=timeout, context=self._context)
            else:
                conn = _Connection(self.host, self.port, timeout=timeout)
            try:
                conn.connect()
            except OSError as exc:
                conn.close()
                raise NotConnected(exc) from exc
            self.connections_opened += 1
            self._conn = conn
        if conn.timeout != timeout or conn.sock is None or conn.sock.gettimeout() != timeout:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | None,
    ) -> _Response:
        """Send one request as given on the kept connection and read the whole answer.

        Raises `urllib.error.URLError` when the request could not be fully written (it was
        not processed); errors while reading the answer propagate as they are."""
        selector = self._selector(url)  # urlsplit keeps its own cache of recent URLs
        conn = self._connection(timeout)
        try:
            conn.request(method, selector, body=body, headers=dict(headers))
        except OSError as exc:  # not fully written: it cannot have been processed
            self.close()
            raise urllib.error.URLError(exc) from exc
        try:
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        self._last_used = time.monotonic()
        if response.will_close:
            self.close()
        return _Response(response.status, response.reason, response.headers, data)

    def _selector(self, url: str) -> str:
        """The request target of `url`, which must be on this transport's host."""
        parts = urlsplit(url)
        if (parts.scheme, parts.hostname, parts.port) != (self.scheme, self.host, self.port):
            raise ValueError(f"{url} is not on {self.scheme}://{self.host}")
        selector = parts.path or "/"
        if parts.query:
            selector += "?" + parts.query
        return selector

    def request_headers(self, request: urllib.request.Request) -> dict[str, str]:
        """The headers urllib's default opener sends with `request`, but `Connection: close`:
        its AbstractHTTPHandler.do_request_ adds Content-Type, Content-Length, Host and the
        default User-Agent, and its do_open merges them as here."""
        self._handler.do_request_(request)
        headers = dict(request.unredirected_hdrs)
        headers.update({k: v for k, v in request.headers.items() if k not in headers})
        return {name.title(): value for name, value in headers.items()}


class _Response:
    """The parts of a urllib response an SDK reads: getcode(), read(), info()."""

    def __init__(self, status: int, reason: str, headers: Any, body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def getcode(self) -> int:
        return self.status

    def read(self) -> bytes:
        return self.body

    def info(self) -> Any:
        return self.headers


def _readable(sock: Any) -> bool:
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
