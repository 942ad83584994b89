"""Guards every route of the webhooks app runs before it trusts a request.

Nothing is parsed before it is bounded: the declared Content-Length is checked first (a
bad or too large value is refused before a byte of the body is read), the body is read in
a loop with a byte cap and an overall deadline (a slow client cannot hold the request
open), and JSON is parsed with a nesting limit. Every refusal is a `Refused` with a 4xx
status and a reason code that the route counts in `webhook_rejections`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from starlette.requests import Request

from leadops.providers.inbound import MAX_ID

BODY_DEADLINE_SECONDS = 10.0  # the whole body must arrive within this
MAX_JSON_DEPTH = 16  # objects and arrays nested deeper are refused
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
_SURROGATES = re.compile("[\ud800-\udfff]")


class Refused(Exception):
    """The request is refused: `status`, a reason code and a message safe to show."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def malformed(message: str) -> Refused:
    return Refused(400, "malformed", message)


def ascii_int(value: str, name: str, *, maximum: int = MAX_ID) -> int:
    """`value` as an integer when it is 1-19 ASCII digits and at most `maximum`."""
    if not _ASCII_DIGITS.fullmatch(value) or int(value) > maximum:
        raise malformed(f"{name} must be a whole number from 0 to {maximum}")
    return int(value)


def declared_length(request: Request, limit: int) -> int | None:
    """The Content-Length header as a number, refusing a malformed or too large value."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not _ASCII_DIGITS.fullmatch(declared.strip()):
        raise malformed("Content-Length must be ASCII digits")
    length = int(declared)
    if length > limit:
        raise Refused(413, "too_large", f"body larger than {limit} bytes")
    return length


async def read_body(
    request: Request, limit: int, *, deadline: float = BODY_DEADLINE_SECONDS
) -> bytes:
    """The raw body, at most `limit` bytes, all of it within `deadline` seconds."""
    declared_length(request, limit)
    body = bytearray()
    stream = request.stream().__aiter__()
    ends = time.monotonic() + deadline
    while True:
        remaining = ends - time.monotonic()
        if remaining <= 0:
            raise Refused(408, "too_slow", f"body not received within {deadline:g} s")
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), remaining)
        except StopAsyncIteration:
            return bytes(body)
        except TimeoutError as exc:
            raise Refused(408, "too_slow", f"body not received within {deadline:g} s") from exc
        body += chunk
        if len(body) > limit:
            raise Refused(413, "too_large", f"body larger than {limit} bytes")


def check_text(value: Any, where: str) -> None:
    """Refuse text a database cannot store (NUL, lone surrogates), NaN and deep nesting."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise malformed(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
            children = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            for key, child in children:
                if isinstance(key, str):
                    stack.append((key, depth + 1))
                stack.append((child, depth + 1))
        elif isinstance(item, str):
            if "\x00" in item or _SURROGATES.search(item):
                raise malformed(f"{where}: text contains NUL or an unpaired surrogate")
        elif isinstance(item, float) and item != item:  # NaN
            raise malformed(f"{where}: NaN is not a number")


def parse_json(body: bytes, where: str = "body") -> Any:
    """Strict JSON (no NaN or Infinity), nesting bounded, text storable."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(body, parse_constant=no_constants)
    except RecursionError as exc:
        raise malformed(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise malformed(f"{where} is not JSON: {exc}") from exc
    check_text(value, where)
    return value


Count = Callable[[str, str], Awaitable[None]]


class ContentLengthGuard:
    """ASGI middleware: refuse a malformed or oversized Content-Length on any path before
    the route runs (routes then read with their own, smaller cap). `allowances` gives
    single paths a cap of their own instead of `limit`."""

    def __init__(
        self, app: Any, limit: int, count: Count, allowances: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.count = count
        self.allowances = dict(allowances or {})

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            try:
                limit = self.allowances.get(scope.get("path", ""), self.limit)
                declared_length(request, limit)
            except Refused as refused:
                from starlette.responses import JSONResponse

                await self.count(scope.get("path", ""), refused.reason)
                response = JSONResponse(
                    {"error": refused.message},
                    status_code=refused.status,
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
