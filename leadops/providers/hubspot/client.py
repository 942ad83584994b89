"""The HubSpot CRM API client shared by intake (reads) and the write-back (writes).

Facts it relies on (HubSpot's public API documentation):
- Private-app tokens go in `Authorization: Bearer <token>`; 401/403 mean a bad token or a
  missing scope (intake: crm.objects.contacts.read, deals read; write-back also
  crm.objects.contacts.write, crm.objects.deals.write, crm.schemas.*.write for setup,
  crm.objects.owners.read, and tasks).
- Rate limits are per account (all apps share them): about 10 requests per second in
  bursts and 5 per second for the search endpoints. Over the limit HubSpot answers 429
  with a JSON body `{"status": "error", "errorType": "RATE_LIMIT", "policyName":
  "SECONDLY" | "DAILY", ...}` and may send `Retry-After` (seconds).
- Batch endpoints (`/crm/v3/objects/<type>/batch/update`) take at most 100 inputs.

One `TokenBucket` per base URL is shared by every client in the process
(`shared_limiter`), so intake and the write-back together stay under the rate. Every
request has a timeout (a hang cannot hold a pass forever). 429 is always retried after
Retry-After (the request was refused, so nothing happened). 5xx, timeouts and connection
errors are retried only for requests that are safe to repeat (`idempotent=True`: reads,
searches and updates that set properties to fixed values); for a create they raise
`HubSpotUncertain` instead, because the create may have happened: the caller looks it
up before trying again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from leadops.core.ratelimit import TokenBucket

log = logging.getLogger("leadops.providers.hubspot")

SEARCH_PATH = "/crm/v3/objects/contacts/search"
MAX_BATCH = 100  # inputs per batch request

_limiters: dict[str, TokenBucket] = {}
_limiters_lock = threading.Lock()


class HubSpotError(RuntimeError):
    """HubSpot refused, kept failing, or is not configured; the message says which."""


class HubSpotRefused(HubSpotError):
    """HubSpot answered 4xx (not 429): the request itself is wrong; retrying cannot help."""

    def __init__(self, message: str, status: int, body: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class HubSpotUncertain(HubSpotError):
    """A request that is not safe to repeat failed in a way that may have applied it."""


def shared_limiter(base_url: str, requests_per_second: float) -> TokenBucket:
    """The process-wide limiter for one HubSpot account (base URL): the first caller's
    rate wins, later callers share its bucket."""
    key = base_url.rstrip("/")
    with _limiters_lock:
        bucket = _limiters.get(key)
        if bucket is None:
            bucket = _limiters[key] = TokenBucket(requests_per_second, burst=1)
        return bucket


def retry_after(value: str | None, *, default: float) -> float:
    """Seconds from a Retry-After header (capped at 5 minutes), else `default`."""
    try:
        return max(0.0, min(float(value or ""), 300.0))
    except ValueError:
        return default


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:300]


@dataclass
class HubSpotClient:
    """Rate-limited, retrying JSON requests to HubSpot. `limiter` defaults to a bucket of
    its own at `requests_per_second` (tests); production passes `shared_limiter`."""

    base_url: str
    token: str
    requests_per_second: float = 4.0
    max_attempts: int = 6
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    http: requests.Session = field(default_factory=requests.Session)
    limiter: TokenBucket | None = None
    requests_made: int = 0

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = TokenBucket(
                self.requests_per_second, burst=1, monotonic=self.monotonic, sleep=self.sleep
            )

    def search(self, body: dict[str, Any], object_type: str = "contacts") -> dict[str, Any]:
        """POST /crm/v3/objects/<type>/search (a read: retried on any transient failure)."""
        return self.request("POST", f"/crm/v3/objects/{object_type}/search", body)

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        idempotent: bool = True,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one request and return its JSON; see the module docstring for retries.
        Raises HubSpotRefused (4xx), HubSpotUncertain (unsafe request, outcome unknown) or
        HubSpotError (still failing after `max_attempts`)."""
        url = self.base_url.rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        what = f"{method} {path.split('?')[0]}"
        problem = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            assert self.limiter is not None
            self.limiter.acquire()
            self.requests_made += 1
            wait = min(2.0 ** (attempt - 1), 30.0)
            try:
                response = self.http.request(
                    method, url, json=body, params=params, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {str(exc)[:200]}"
                if not idempotent and not isinstance(exc, requests.ConnectTimeout):
                    raise HubSpotUncertain(
                        f"HubSpot {what} may not have applied: {problem}"
                    ) from exc
            else:
                status = response.status_code
                if status < 300:
                    return response.json() if response.content else {}
                problem = f"HTTP {status}: {response.text[:300]}"
                if status == 429:
                    wait = retry_after(response.headers.get("Retry-After"), default=wait)
                elif status < 500:
                    hint = " (check LEADOPS_HUBSPOT_TOKEN)" if status in (401, 403) else ""
                    raise HubSpotRefused(
                        f"HubSpot {what} refused the request: {problem}{hint}",
                        status,
                        _body(response),
                    )
                elif not idempotent:
                    raise HubSpotUncertain(f"HubSpot {what} may not have applied: {problem}")
            if attempt < self.max_attempts:
                log.warning(
                    "HubSpot %s attempt %d failed (%s); retrying in %.1f s",
                    what,
                    attempt,
                    problem,
                    wait,
                )
                self.sleep(wait)
        raise HubSpotError(f"HubSpot {what} failed {self.max_attempts} times; last: {problem}")
