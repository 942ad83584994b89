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

import http.client
import json
import logging
import os
import threading
import urllib.error
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.base.version import Version
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from leadops.core.settings import Settings
from leadops.providers.base import (
    AmbiguousSendError,
    ChannelUnavailableError,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from leadops.providers.keepalive import KeepAliveTransport, NotConnected

RATE_LIMIT_CODES = frozenset({20429, 63017, 63018})
AUTH_CODES = frozenset({20003, 20005})
# The number can't receive WhatsApp from us: invalid, not a mobile, opted out (STOP),
# not a WhatsApp user.
SUPPRESS_CODES = frozenset({21211, 21214, 21408, 21610, 21614, 63003, 63024})


class _RecordingHttpClient(TwilioHttpClient):
    """Twilio's HTTP client, keeping the headers of the last response (for Retry-After),
    and sending on one kept-alive connection per thread.

    The request is prepared exactly as TwilioHttpClient prepares it (the same requests
    Session builds the method, URL, headers and form body); only the exchange itself goes
    through leadops.providers.keepalive instead of requests' adapter and urllib3, which cost
    more CPU than the rest of a send. Where that could change what is sent or how it is
    checked (an environment proxy for the host, response hooks, content encodings other
    than gzip/deflate), every request takes the SDK's own path instead."""

    last_headers: Any = None

    def __init__(self, *, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        assert self.session is not None
        # What Session.merge_environment_settings adds for this host on every request.
        env = self.session.merge_environment_settings(base_url, self.proxy, None, None, None)
        verify = env.get("verify", True)
        accepted = {
            part.strip()
            for part in str(self.session.headers.get("Accept-Encoding", "")).split(",")
            if part.strip()
        }
        self.transport = KeepAliveTransport(
            base_url,
            cafile=verify if isinstance(verify, str) else requests.utils.DEFAULT_CA_BUNDLE_PATH,
        )
        self.kept = (
            self.transport.applies
            and verify is not False
            and not any(proxy for proxy in (env.get("proxies") or {}).values())
            and not any(self.request_hooks.get("response") or [])
            and accepted <= set(_DECODERS)
        )

    def log_request(self, kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.INFO):  # the SDK formats every line eagerly
            super().log_request(kwargs)

    def log_response(self, status_code: int, response: Any) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            super().log_response(status_code, response)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self.last_headers = None
        if not self.kept:
            response = super().request(
                method, url, params, data, headers, auth, timeout, allow_redirects
            )
            self.last_headers = response.headers
            return response
        return self._kept_request(method, url, params, data, headers, auth, timeout)

    def _kept_request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None,
        data: dict[str, object] | None,
        headers: dict[str, str] | None,
        auth: tuple[str, str] | None,
        timeout: float | None,
    ) -> Response:
        # TwilioHttpClient.request, up to the point where requests would send.
        if timeout is None:
            timeout = self.timeout
        elif timeout <= 0:
            raise ValueError(timeout)
        kwargs: dict[str, Any] = {
            "method": method.upper(),
            "url": url,
            "params": params,
            "headers": headers,
            "auth": auth,
            "hooks": self.request_hooks,
        }
        if headers and headers.get("Content-Type") in ("application/json", "application/scim+json"):
            kwargs["json"] = data
        else:
            kwargs["data"] = data
        self.log_request(kwargs)
        assert self.session is not None
        prepared = self.session.prepare_request(requests.Request(**kwargs))
        body = prepared.body.encode("utf-8") if isinstance(prepared.body, str) else prepared.body
        return self.exchange(
            prepared.method or "GET", prepared.url or url, prepared.headers, body, timeout
        )

    def exchange(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> Response:
        """Send a prepared request on the kept connection; the answer as the SDK reads it."""
        answer = self.transport.exchange(method, url, headers, body, timeout)
        self.last_headers = answer.headers
        content = answer.body
        encoding = (answer.headers.get("Content-Encoding") or "").strip().lower()
        if encoding and encoding != "identity":
            content = _DECODERS[encoding](content)
        charset = requests.utils.get_encoding_from_headers(answer.headers) or "utf-8"
        response = Response(answer.status, content.decode(charset, "replace"), answer.headers)
        self.log_response(answer.status, response)
        return response

    def prepared_form(self, request: _Captured) -> MessagesForm:
        """Messages.create as this client would send it (the SDK's `request`, prepared by
        requests as in `_kept_request`), worked out once from a captured call."""
        assert self.session is not None
        prepared = self.session.prepare_request(
            requests.Request(
                method=request.method.upper(),
                url=request.url,
                params=request.params,
                data=request.data,
                headers=request.headers,
                auth=request.auth,
                hooks=self.request_hooks,
            )
        )
        fields = tuple((str(value), name) for name, value in (request.data or {}).items())
        return MessagesForm(prepared.url or request.url, tuple(prepared.headers.items()), fields)


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:  # raw deflate, as some servers send it
        return zlib.decompress(data, -zlib.MAX_WBITS)


# The content encodings requests asks for (Accept-Encoding) that the kept path decodes.
_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "identity": lambda data: data,
    "gzip": lambda data: zlib.decompress(data, 16 + zlib.MAX_WBITS),
    "deflate": _inflate,
}


@dataclass(frozen=True)
class _Captured:
    """The arguments of one call the SDK made to its HTTP client."""

    method: str
    url: str
    params: dict[str, object] | None
    data: dict[str, object] | None
    headers: dict[str, str] | None
    auth: tuple[str, str] | None


class _Capture(Exception):
    def __init__(self, request: _Captured) -> None:
        super().__init__("captured")
        self.request = request


class _CapturingHttpClient(HttpClient):
    """Records the request the SDK would make, and makes none."""

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        raise _Capture(_Captured(method, url, params, data, headers, auth))


# Every Messages.create argument a channel passes; the captured call names the form field
# each one becomes, in the SDK's order.
_CREATE_ARGUMENTS = (
    "to",
    "from_",
    "messaging_service_sid",
    "status_callback",
    "body",
    "content_sid",
    "content_variables",
)
_CREATE_URI = "/Accounts/{sid}/Messages.json"


@dataclass(frozen=True)
class MessagesForm:
    """The Messages.create request as the SDK sends it, worked out once per channel: its
    URL, its headers in order (Content-Length filled in per message) and the form field of
    each argument, in the SDK's order."""

    url: str
    headers: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, str], ...]  # (argument, form field)

    def body(self, params: Mapping[str, str]) -> bytes:
        """The form body requests would encode for these arguments."""
        return urlencode(
            [(field, params[name]) for name, field in self.fields if name in params]
        ).encode()

    def request_headers(self, body: bytes) -> dict[str, str]:
        length = str(len(body))
        return {name: length if name == "Content-Length" else value for name, value in self.headers}


def captured_create(account_sid: str, token: str, base_url: str) -> _Captured:
    """The HTTP call the SDK's Messages.create makes with every argument we use (each set
    to its own name)."""
    capture = _CapturingHttpClient(logging.getLogger("twilio.http_client"), is_async=False)
    client = Client(account_sid, token, http_client=capture)
    client.api.base_url = base_url
    try:
        client.messages.create(**{name: name for name in _CREATE_ARGUMENTS})
    except _Capture as captured:
        return captured.request
    raise AssertionError("the SDK made no request")


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
        self._uri = _CREATE_URI.format(sid=self._sid)
        self._form = self._client()[1].prepared_form(
            captured_create(self._sid, self._token.get_secret_value(), self._base_url)
        )

    def _client(self) -> tuple[Client, _RecordingHttpClient]:
        pair: tuple[Client, _RecordingHttpClient] | None = getattr(self._local, "pair", None)
        if pair is None:
            http = _RecordingHttpClient(base_url=self._base_url, timeout=self._timeout)
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
        client, recorder = self._client()
        try:
            sid = self._create(client, recorder, params)
        except TwilioRestException as exc:
            raise self._classify(exc, recorder.last_headers) from exc
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
        # The kept connection (requests' exceptions above are OSErrors too, so these follow)
        except NotConnected as exc:
            raise TransientSendError(f"Twilio unreachable: {exc.reason}") from exc
        except urllib.error.URLError as exc:  # the request could not be fully written
            raise TransientSendError(f"Twilio request not sent: {exc.reason}") from exc
        except (ConnectionError, http.client.HTTPException) as exc:
            raise AmbiguousSendError(
                f"Twilio connection dropped after the request left ({type(exc).__name__}: {exc})"
            ) from exc
        except OSError as exc:  # a read timeout, among others
            raise AmbiguousSendError(
                f"no answer from Twilio after the request left ({type(exc).__name__}: {exc})"
            ) from exc
        if not sid:
            raise AmbiguousSendError("Twilio accepted the message without a SID")
        return SendResult(provider_id=f"twilio:{sid}", provider_message_id=sid)

    def _create(
        self, client: Client, recorder: _RecordingHttpClient, params: dict[str, str]
    ) -> str:
        """Messages.create, the new message's SID. On the kept connection the request is
        the SDK's, built from the form worked out once (MessagesForm) instead of by the SDK
        and requests on every message; tests compare both byte for byte. Where the kept
        connection does not apply, the SDK sends it."""
        if not recorder.kept:
            return str(client.messages.create(**params).sid or "")
        form = self._form
        body = form.body(params)
        headers = form.request_headers(body)
        if recorder.logger.isEnabledFor(logging.INFO):
            recorder.log_request(
                {"method": "POST", "url": form.url, "params": None, "headers": headers}
            )
        response = recorder.exchange("POST", form.url, headers, body, self._timeout)
        if not 200 <= response.status_code < 300:
            raise Version.exception("POST", self._uri, response, "Unable to create record")
        payload = json.loads(response.text) if response.text else {}
        return str(payload.get("sid") or "")

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
