"""WhatsApp through Twilio's Messages API, with the official `twilio` package.

Inside the lead's 24-hour session window (opened by their last inbound message) the
rendered free text is sent as Body; outside it only an approved template may go out, so
the step's ContentSid and ContentVariables are sent instead. Each message asks for status
callbacks at {public_url}/webhooks/twilio/status?touch_id=<touch id>. Outcomes:

- 201: accepted; the message SID is recorded.
- 429 / 20429, 503, connection refused or connect timeout: provably not accepted, retried.
- 401 / 20003: our credentials are refused; the channel stops for this run.
- other 4xx (21211 invalid To, 63016 outside the window...): failed with Twilio's reason;
  codes meaning the number cannot receive suppress WhatsApp for the lead.
- other 5xx, a read timeout or a dropped connection: ambiguous, never re-sent.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any
from urllib.parse import urlencode

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from leadops.channels.base import (
    AmbiguousSendError,
    ChannelUnavailableError,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from leadops.settings import Settings

RATE_LIMIT_CODES = frozenset({20429, 63017, 63018})
AUTH_CODES = frozenset({20003, 20005})
# The number can't receive WhatsApp from us: invalid, not a mobile, opted out (STOP),
# not a WhatsApp user.
SUPPRESS_CODES = frozenset({21211, 21214, 21408, 21610, 21614, 63003, 63024})


class _RecordingHttpClient(TwilioHttpClient):
    """Twilio's HTTP client, keeping the headers of the last response (for Retry-After)."""

    last_headers: Any = None

    def log_request(self, kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.INFO):  # the SDK formats every line eagerly
            super().log_request(kwargs)

    def log_response(self, status_code: int, response: Any) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            super().log_response(status_code, response)

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self.last_headers = None
        response = super().request(*args, **kwargs)
        self.last_headers = response.headers
        return response


def status_callback_url(public_url: str, touch_id: int) -> str:
    """Where Twilio reports this message's status; the touch id maps it back."""
    return f"{public_url.rstrip('/')}/webhooks/twilio/status?{urlencode({'touch_id': touch_id})}"


def whatsapp_address(number: str) -> str:
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


class TwilioWhatsAppChannel:
    """Send WhatsApp messages through Twilio. Each worker thread has its own client."""

    def __init__(self, settings: Settings) -> None:
        assert settings.twilio_auth_token is not None
        self.name = "twilio"
        self.concurrency = settings.twilio_concurrency
        self.rate_per_second: float | None = settings.twilio_rate_per_second
        self._sid = settings.twilio_account_sid
        self._token = settings.twilio_auth_token
        self._from = whatsapp_address(settings.twilio_whatsapp_from)
        self._base_url = settings.twilio_base_url.rstrip("/")
        self._timeout = settings.twilio_timeout_seconds
        self._public_url = settings.public_url
        self._local = threading.local()
        # These environment variables would silently rewrite the host we were given.
        for name in ("TWILIO_REGION", "TWILIO_EDGE"):
            if os.environ.get(name):
                raise ValueError(f"unset {name}: use LEADOPS_TWILIO_BASE_URL to choose the host")
        self._client()[0].messages  # noqa: B018 (loads the SDK's API modules now, not mid-send)

    def _client(self) -> tuple[Client, _RecordingHttpClient]:
        pair: tuple[Client, _RecordingHttpClient] | None = getattr(self._local, "pair", None)
        if pair is None:
            http = _RecordingHttpClient(timeout=self._timeout)
            client = Client(self._sid, self._token.get_secret_value(), http_client=http)
            client.api.base_url = self._base_url
            pair = (client, http)
            self._local.pair = pair
        return pair

    def request_params(self, message: OutgoingMessage) -> dict[str, str]:
        """The Messages.create arguments for one touch (free text or approved template)."""
        params = {"to": whatsapp_address(message.to), "from_": self._from}
        if message.kind == "touch":  # status callbacks update nurture touches only
            params["status_callback"] = status_callback_url(self._public_url, message.touch_id)
        if message.session_open and message.body:
            params["body"] = message.body
        elif message.content_sid:
            params["content_sid"] = message.content_sid
            if message.content_variables:
                params["content_variables"] = json.dumps(message.content_variables)
        else:
            raise PermanentSendError(
                f"{message.campaign}/{message.step}: the lead's 24-hour WhatsApp window is "
                "closed and the step has no approved template (whatsapp.content_sid)"
            )
        return params

    def send(self, message: OutgoingMessage) -> SendResult:
        params = self.request_params(message)
        client, http = self._client()
        try:
            created = client.messages.create(**params)
        except TwilioRestException as exc:
            raise self._classify(exc, http.last_headers) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise TransientSendError(f"Twilio unreachable (connect timeout): {exc}") from exc
        except requests.exceptions.ConnectionError as exc:
            if _refused(exc):
                raise TransientSendError(f"Twilio unreachable: {exc}") from exc
            raise AmbiguousSendError(
                f"Twilio connection dropped after the request left: {exc}"
            ) from exc
        except (requests.exceptions.Timeout, requests.exceptions.RequestException) as exc:
            raise AmbiguousSendError(
                f"no answer from Twilio after the request left ({type(exc).__name__}: {exc})"
            ) from exc
        sid = str(created.sid or "")
        if not sid:
            raise AmbiguousSendError("Twilio accepted the message without a SID")
        return SendResult(provider_id=f"twilio:{sid}", provider_message_id=sid)

    def _classify(self, exc: TwilioRestException, headers: Any) -> Exception:
        status, code = int(exc.status), exc.code
        reason = f"Twilio {status}" + (f" error {code}" if code else "") + f": {exc.msg}"
        if status == 429 or code in RATE_LIMIT_CODES:
            retry_after = None
            if headers is not None and headers.get("Retry-After") is not None:
                try:
                    retry_after = float(headers["Retry-After"])
                except ValueError:
                    retry_after = None
            return TransientSendError(reason, retry_after=retry_after)
        if status in (401, 403) or code in AUTH_CODES:
            return ChannelUnavailableError(reason)
        if status == 503:
            return TransientSendError(reason)
        if status >= 500:
            return AmbiguousSendError(reason)
        return PermanentSendError(reason, suppress=code in SUPPRESS_CODES)

    def find_sent(self, touch_id: int, campaign: str, step: str) -> str | None:
        """Twilio cannot be asked by touch id, so nothing is proven."""
        return None


def _refused(exc: requests.exceptions.ConnectionError) -> bool:
    """Whether no connection was ever made (nothing was sent), not dropped mid-exchange."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError | NewConnectionError):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        args = [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        current = args[0] if args else (current.__cause__ or current.__context__)
    return False
