"""Slack incoming webhooks: post a message's `body` as text to the URL in `to`.

The URL is a secret (it is the credential), so it never appears in errors or logs. Like the
other channels, an error says whether the message may have arrived: a refused connection or
429 provably did not, a timeout or 5xx after the request left might have (never re-sent).
"""

from __future__ import annotations

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError

from leadops.providers.base import (
    AmbiguousSendError,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)


def _never_connected(exc: BaseException) -> bool:
    """True when the request provably never left (DNS failure, connection refused)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | NameResolutionError):
            return True
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
        if current.__cause__ is not None:
            stack.append(current.__cause__)
        if current.__context__ is not None:
            stack.append(current.__context__)
    return False


class SlackWebhookChannel:
    name = "slack"
    concurrency = 1
    rate_per_second: float | None = 1.0  # Slack's incoming-webhook limit

    def __init__(self, *, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        self.timeout = timeout
        self.session = session or requests.Session()

    def find_sent(self, touch_id: int, campaign: str, step: str) -> str | None:
        return None  # Slack keeps no record we could look up

    def send(self, message: OutgoingMessage) -> SendResult:
        if not message.to.startswith(("https://", "http://")):
            raise PermanentSendError("Slack webhook address is not an http(s) URL")
        try:
            response = self.session.post(
                message.to,
                json={"text": message.body, "unfurl_links": False},
                timeout=self.timeout,
            )
        except requests.ConnectTimeout:
            raise TransientSendError("Slack webhook: connection timed out") from None
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise TransientSendError("Slack webhook: could not connect") from None
            raise AmbiguousSendError("Slack webhook: connection lost after sending") from None
        except requests.Timeout:
            raise AmbiguousSendError("Slack webhook: no answer in time") from None
        except requests.RequestException as exc:
            raise AmbiguousSendError(f"Slack webhook: {type(exc).__name__}") from None
        body = response.text[:200].strip()
        if response.status_code == 200:
            return SendResult(provider_id=f"slack:{body or 'ok'}")
        if response.status_code == 429:
            retry = response.headers.get("Retry-After", "")
            raise TransientSendError(
                "Slack webhook: rate limited (429)",
                retry_after=float(retry) if retry.isdigit() else None,
            )
        if 400 <= response.status_code < 500:
            raise PermanentSendError(f"Slack webhook refused it ({response.status_code}: {body})")
        raise AmbiguousSendError(f"Slack webhook answered {response.status_code}: {body}")
