"""Email through SendGrid's v3 Mail Send API, with the official `sendgrid` package.

One request per touch: one personalization carrying the lead and touch ids as
`custom_args` (they come back on every event), categories per campaign and step, and
RFC 8058 one-click unsubscribe headers. Every outcome is classified for the dispatcher:

- 2xx: accepted; the X-Message-Id header is recorded.
- 429 (Retry-After honoured), 5xx, a request that could not be written (connection
  refused, connect timeout): provably not accepted, retried.
- 401/403: our credentials are refused; the channel stops for this run.
- other 4xx: rejected for good with SendGrid's reason; an invalid recipient suppresses email.
- a timeout or dropped connection after the request left: ambiguous, never re-sent.
"""

from __future__ import annotations

import http.client
import io
import json
import threading
import urllib.error
import urllib.request
from typing import Any

from python_http_client.client import Response
from python_http_client.exceptions import HTTPError, handle_error
from sendgrid import SendGridAPIClient

from leadops.core.settings import Settings
from leadops.providers.base import (
    AmbiguousSendError,
    ChannelUnavailableError,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from leadops.providers.keepalive import KeepAliveTransport

ONE_CLICK = "List-Unsubscribe=One-Click"


def custom_args(message: OutgoingMessage) -> dict[str, str]:
    """What comes back on every event of this message: the lead and touch of a nurture
    message; for anything else its kind and record id, so no event is taken for a lead's."""
    if message.kind == "touch":
        return {"lead_id": str(message.lead_id), "touch_id": str(message.touch_id)}
    return {"kind": message.kind, "ref_id": str(message.touch_id)}


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _reasons(body: bytes | str | None) -> tuple[str, bool]:
    """SendGrid's error messages joined, and whether they blame a recipient address."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body or ""
    try:
        errors = json.loads(text).get("errors") or []
    except (ValueError, AttributeError):
        return text.strip()[:300] or "no reason given", False
    parts: list[str] = []
    bad_address = False
    for error in errors:
        message = str(error.get("message") or "")
        field = str(error.get("field") or "")
        parts.append(f"{message} ({field})" if field and field != "null" else message)
        if "personalizations" in field and ".to" in field and "email" in (field + message):
            bad_address = True
    return "; ".join(parts)[:500] or "no reason given", bad_address


class SendGridChannel:
    """Send email through SendGrid. Thread-safe: each worker thread has its own client."""

    def __init__(self, settings: Settings) -> None:
        assert settings.sendgrid_api_key is not None
        self.name = "sendgrid"
        self.concurrency = settings.sendgrid_concurrency
        self.rate_per_second: float | None = settings.sendgrid_rate_per_second
        self._api_key = settings.sendgrid_api_key
        self._host = settings.sendgrid_base_url.rstrip("/")
        self._url = f"{self._host}/v3/mail/send"
        self._timeout = settings.sendgrid_timeout_seconds
        self._sandbox = settings.sendgrid_sandbox
        self._from = {"email": settings.sender_email, "name": settings.sender_name}
        self._reply_to = settings.reply_to_email
        self._local = threading.local()

    def _client(self) -> SendGridAPIClient:
        client: SendGridAPIClient | None = getattr(self._local, "client", None)
        if client is None:
            client = SendGridAPIClient(self._api_key.get_secret_value(), host=self._host)
            client.client.timeout = self._timeout  # the SDK's default is no timeout at all
            self._local.client = client
        return client

    def _transport(self) -> KeepAliveTransport:
        transport: KeepAliveTransport | None = getattr(self._local, "transport", None)
        if transport is None:
            transport = KeepAliveTransport(self._host)
            self._local.transport = transport
        return transport

    def _headers(self) -> dict[str, str]:
        """The headers the SDK's Mail Send request carries (but Content-Length), as urllib
        would send them; worked out once from a request the SDK's own client describes."""
        headers: dict[str, str] | None = getattr(self._local, "headers", None)
        if headers is None:
            sdk_headers = dict(self._client().client.request_headers)
            sdk_headers.setdefault("Content-Type", "application/json")
            sample = urllib.request.Request(  # noqa: S310 (the transport takes http(s) only)
                self._url, data=b"{}", headers=sdk_headers, method="POST"
            )
            headers = self._transport().request_headers(sample)
            del headers["Content-Length"]
            self._local.headers = headers
        return headers

    def _post(self, body: dict[str, Any]) -> Response:
        """POST /v3/mail/send: the request the SDK builds (its URL, its headers, its JSON
        encoding), sent on this thread's kept-alive connection. The SDK itself would build
        a fresh urllib opener and connection per message, which costs more than the rest of
        the send; tests compare both requests byte for byte. Behind an environment proxy
        the SDK sends it. Raises `python_http_client.exceptions.HTTPError` on non-2xx."""
        transport = self._transport()
        if not transport.applies:
            response: Response = self._client().client.mail.send.post(request_body=body)
            return response
        data = json.dumps(body).encode("utf-8")
        headers = {**self._headers(), "Content-Length": str(len(data))}
        answer = transport.exchange("POST", self._url, headers, data, self._timeout)
        if not 200 <= answer.status < 300:
            error = urllib.error.HTTPError(
                self._url, answer.status, answer.reason, answer.headers, io.BytesIO(answer.body)
            )
            raise handle_error(error) from None
        return Response(answer)

    def request_body(self, message: OutgoingMessage) -> dict[str, Any]:
        """The Mail Send JSON for one touch."""
        recipient: dict[str, str] = {"email": message.to}
        if message.to_name:
            recipient["name"] = message.to_name
        body: dict[str, Any] = {
            "personalizations": [
                {
                    "to": [recipient],
                    "custom_args": custom_args(message),
                }
            ],
            "from": self._from,
            "subject": message.subject,
            "content": [
                {"type": "text/plain", "value": message.text},
                {"type": "text/html", "value": message.html},
            ],
            "categories": [message.campaign, f"{message.campaign}.{message.step}"],
        }
        if message.reply_to:
            body["reply_to"] = {"email": message.reply_to, "name": self._from["name"]}
        elif self._reply_to:
            body["reply_to"] = {"email": self._reply_to}
        if message.unsubscribe_url:
            body["headers"] = {
                "List-Unsubscribe": f"<{message.unsubscribe_url}>",
                "List-Unsubscribe-Post": ONE_CLICK,
            }
        if self._sandbox:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    def send(self, message: OutgoingMessage) -> SendResult:
        body = self.request_body(message)
        try:
            response = self._post(body)
        except HTTPError as exc:
            raise self._classify(exc) from exc
        except urllib.error.URLError as exc:
            # URLError comes only from connecting and writing the request (urllib and the
            # kept connection alike): a request not fully written cannot have been accepted.
            raise TransientSendError(f"SendGrid request not sent: {exc.reason}") from exc
        except (TimeoutError, http.client.HTTPException, ConnectionError, OSError) as exc:
            raise AmbiguousSendError(
                f"no answer from SendGrid after the request left ({type(exc).__name__}: {exc})"
            ) from exc
        message_id = response.headers.get("X-Message-Id") or ""
        if not message_id:
            if not self._sandbox:
                raise AmbiguousSendError(
                    f"SendGrid answered {response.status_code} without an X-Message-Id"
                )
            message_id = f"sandbox-{message.touch_id}"
        return SendResult(provider_id=f"sendgrid:{message_id}", provider_message_id=message_id)

    def _classify(self, exc: HTTPError) -> Exception:
        status = int(exc.status_code)
        reason, bad_address = _reasons(exc.body)
        if status == 429:
            return TransientSendError(
                f"SendGrid 429 rate limited: {reason}", retry_after=_retry_after(exc.headers)
            )
        if status >= 500:
            return TransientSendError(
                f"SendGrid {status}: {reason}", retry_after=_retry_after(exc.headers)
            )
        if status in (401, 403):
            return ChannelUnavailableError(f"SendGrid {status} refused our API key: {reason}")
        return PermanentSendError(f"SendGrid {status}: {reason}", suppress=bad_address)

    def find_sent(self, touch_id: int, campaign: str, step: str) -> str | None:
        """SendGrid cannot be asked whether a message was accepted, so nothing is proven."""
        return None
