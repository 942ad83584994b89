"""Local fake SendGrid and Twilio servers for contract tests, fault runs and benchmarks.

Each fake is a small HTTP/1.1 server (asyncio, on a thread of its own, keep-alive) that
checks requests against the provider's official OpenAPI file (openapi-core;
leadops/testing/specs) and answers the way the real service does: SendGrid 202 with
X-Message-Id, Twilio 201 with a message resource, and the providers' own error bodies for
400, 401, 429 (with Retry-After) and 500. It can also hang (accept the message, then never
answer) or drop the connection.

Every accepted message is appended to `log` with the touch id it carries (SendGrid
custom_args, Twilio StatusCallback query), so a test can prove nothing arrived twice.

Behaviour is chosen per request, in order: a scripted answer (`script`), then the random
`faults`, then the recipient rules (bad addresses, open WhatsApp sessions, known
templates). Run one in its own process with `python -m leadops.testing.fakes sendgrid`.

Needs the dev dependency openapi-core when `validate_every` is not 0.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import re
import secrets
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from leadops.delivery.sms_text import sms_segments

SPECS_DIR = Path(__file__).resolve().parent / "specs"
SENDGRID_SPEC = "sendgrid_mail_v3.json"
TWILIO_SPEC = "twilio_api_v2010.json"
TWILIO_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MESSAGING_SERVICE = re.compile(r"MG[0-9a-fA-F]{32}")

# Scripted or random answers a fake can give instead of the normal one.
OK = "ok"
BAD_REQUEST = "bad_request"
UNAUTHORIZED = "unauthorized"
RATE_LIMITED = "rate_limited"
SERVER_ERROR = "server_error"
HANG = "hang"  # the message is accepted, then no answer ever comes
DROP = "drop"  # the connection closes before the message is processed
DROP_AFTER = "drop_after"  # the message is accepted, then the connection closes
ANSWERS = (OK, BAD_REQUEST, UNAUTHORIZED, RATE_LIMITED, SERVER_ERROR, HANG, DROP, DROP_AFTER)


@dataclass
class Faults:
    """Probability of each fault per request (the rest are answered normally)."""

    rate_limited: float = 0.0
    server_error: float = 0.0
    hang: float = 0.0
    drop: float = 0.0
    drop_after: float = 0.0
    retry_after: int = 1
    seed: int = 7

    def pick(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for answer, chance in (
            (RATE_LIMITED, self.rate_limited),
            (SERVER_ERROR, self.server_error),
            (HANG, self.hang),
            (DROP, self.drop),
            (DROP_AFTER, self.drop_after),
        ):
            if roll < chance:
                return answer
            roll -= chance
        return None


@dataclass
class Accepted:
    """One message the fake accepted (i.e. would deliver)."""

    message_id: str
    touch_id: str
    to: str
    answer: str
    body: dict[str, Any]
    at: float = field(default_factory=time.time)


@dataclass
class RawRequest:
    """One request exactly as it arrived (kept only when `record_raw` is set)."""

    client_port: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


class ContractViolation(AssertionError):
    """A request did not match the provider's OpenAPI description."""


# -- OpenAPI validation --------------------------------------------------------------------


class _OpenAPIRequest:
    """The request shape openapi-core validates (see openapi_core.protocols.Request)."""

    def __init__(self, host_url: str, path: str, method: str, headers: Any, body: bytes) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        query = parse_qs(urlsplit(path).query)
        self.host_url = host_url
        self.path = urlsplit(path).path
        self.method = method.lower()
        self.body = body
        self.content_type = (headers.get("Content-Type") or "application/octet-stream").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs]),
            header=Headers(list(headers.items())),
            cookie=ImmutableMultiDict(),
        )


@lru_cache(maxsize=4)
def _openapi(name: str) -> Any:
    from openapi_core import Config, OpenAPI

    spec = json.loads((SPECS_DIR / name).read_text())
    if name == SENDGRID_SPEC:
        # Known bug in the published file: top-level custom_args is an object in the API
        # and the SDK, but typed as a string here.
        body = spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]
        body["schema"]["properties"]["custom_args"] = {"type": "object"}
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def _server_url(name: str) -> str:
    return "https://api.sendgrid.com" if name == SENDGRID_SPEC else "https://api.twilio.com"


# -- the server ----------------------------------------------------------------------------

MAX_HEAD = 64 * 1024


class Headers:
    """Request headers as they arrived, looked up without regard to case."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._index = {name.lower(): value for name, value in items}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._index.get(name.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


@dataclass
class Request:
    """One parsed request: what `respond` sees."""

    method: str
    path: str
    headers: Headers
    client_port: int


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    payload: bytes
    close: bool = False


class _Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 requests one after another (keep-alive), each read
    whole (Content-Length) and answered by the fake before the next is looked at."""

    def __init__(self, fake: FakeProvider) -> None:
        self.fake = fake
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.port = 0
        self.parked = False  # hanging: nothing more is read or answered

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.port = peer[1] if peer else 0
        self.fake._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fake._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.parked and self.transport is not None:
            if not self._next():
                return

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def _next(self) -> bool:
        """Answer the next complete request in the buffer; False when there is none."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._write(_Reply(431, {}, b"", close=True))
            return False
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        try:
            method, path, version = lines[0].split(" ")
            items = [(n.strip(), v.strip()) for n, v in (line.split(":", 1) for line in lines[1:])]
        except ValueError:
            self._write(_Reply(400, {}, b"", close=True))
            return False
        headers = Headers(items)
        if headers.get("Transfer-Encoding"):
            self._write(_Reply(411, {}, b"", close=True))  # our clients send Content-Length
            return False
        length = int(headers.get("Content-Length") or 0)
        if len(self.buffer) < end + 4 + length:
            return False
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        request = Request(method, path, headers, self.port)
        closing = version != "HTTP/1.1" or (headers.get("Connection") or "").lower() == "close"
        reply = self.fake._serve(request, body)
        if reply is None:  # dropped: the connection closes without an answer
            self.close()
            return False
        if reply.status == 0:  # hanging: accepted, never answered, closed at the end
            self.parked = True
            loop = asyncio.get_running_loop()
            loop.call_later(self.fake.hang_seconds, self.close)
            return False
        reply.close = reply.close or closing
        self._write(reply)
        return not reply.close

    def _write(self, reply: _Reply) -> None:
        if self.transport is None:
            return
        try:
            reason = HTTPStatus(reply.status).phrase
        except ValueError:
            reason = ""
        head = [f"HTTP/1.1 {reply.status} {reason}"]
        head += [f"{name}: {value}" for name, value in reply.headers.items()]
        head.append(f"Content-Length: {len(reply.payload)}")
        head.append(f"Date: {formatdate(usegmt=True)}")
        if reply.close:
            head.append("Connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.payload)
        if reply.close:
            self.close()


class FakeProvider:
    """Base of both fakes: server lifecycle, scripting, faults, validation and the log."""

    spec_name = ""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        validate_every: int = 1,
        hang_seconds: float = 30.0,
    ) -> None:
        self.faults = faults or Faults()
        self.validate_every = validate_every
        self.hang_seconds = hang_seconds
        self.log: list[Accepted] = []
        self.answers: Counter[str] = Counter()
        self.violations: list[str] = []
        self.requests = 0
        self.script: deque[str] = deque()
        # Every request as it arrived, with the client's port (one port: one connection).
        self.record_raw = False
        self.raw: list[RawRequest] = []
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None
        self._connections: set[_Connection] = set()

    # lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a thread of its own (one asyncio loop); the base URL."""
        if self.validate_every:
            _openapi(self.spec_name)  # load the spec before the first request is timed
        loop = asyncio.new_event_loop()
        self._loop = loop
        started = threading.Event()
        failure: list[BaseException] = []

        async def open_server() -> None:
            self._server = await loop.create_server(
                lambda: _Connection(self), host, port, backlog=128
            )
            self._address = self._server.sockets[0].getsockname()[:2]

        def run() -> None:
            try:
                loop.run_until_complete(open_server())
            except BaseException as exc:  # reported by start()
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-{self.spec_name}", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self.url

    @property
    def url(self) -> str:
        assert self._address is not None, "start() the fake first"
        host, port = self._address
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        def shut() -> None:
            if self._server is not None:
                self._server.close()
            for connection in list(self._connections):
                connection.close()
            loop.stop()

        loop.call_soon_threadsafe(shut)
        self._thread.join(timeout=10)
        self._loop = None

    def __enter__(self) -> FakeProvider:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # what tests look at

    def accepted_touch_ids(self) -> Counter[str]:
        with self._lock:
            return Counter(entry.touch_id for entry in self.log)

    def duplicates(self) -> dict[str, int]:
        """Touch ids accepted more than once: must always be empty."""
        return {touch: n for touch, n in self.accepted_touch_ids().items() if n > 1}

    def check_contract(self) -> None:
        if self.violations:
            raise ContractViolation("\n".join(self.violations[:10]))

    # request handling

    def _choose(self) -> str | None:
        with self._lock:
            self.requests += 1
            if self.script:
                return self.script.popleft()
            return self.faults.pick(self._rng)

    def _validate(self, request: Request, body: bytes) -> str | None:
        with self._lock:
            due = self.validate_every and (self.requests - 1) % self.validate_every == 0
        if not due:
            return None
        checked = _OpenAPIRequest(
            _server_url(self.spec_name), request.path, "post", request.headers, body
        )
        try:
            _openapi(self.spec_name).validate_request(checked)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            cause = exc.__cause__
            if cause is not None:
                detail += f" ({cause})"
            with self._lock:
                self.violations.append(f"POST {request.path}: {detail}")
            return detail
        return None

    def _serve(self, request: Request, body: bytes) -> _Reply | None:
        """The answer to one request; None drops the connection, status 0 hangs it."""
        if request.method == "GET":
            return self._control(request)
        if request.method != "POST":
            return _Reply(405, {}, b"")
        if self.record_raw:
            with self._lock:
                self.raw.append(
                    RawRequest(
                        request.client_port,
                        request.method,
                        request.path,
                        request.headers.items(),
                        body,
                    )
                )
        answer = self._choose()
        if answer == DROP:
            self._count(DROP)
            return None
        status, headers, payload, accepted = self.respond(request, body, answer)
        if accepted is not None:
            with self._lock:
                self.log.append(accepted)
        if answer == HANG:
            self._count(answer)
            return _Reply(0, {}, b"")
        if answer == DROP_AFTER:
            self._count(answer)
            return None
        self._count(answer or str(status))
        return _Reply(status, headers, payload)

    def _count(self, answer: str) -> None:
        with self._lock:
            self.answers[answer] += 1

    def _control(self, request: Request) -> _Reply:
        """GET /_fake/log and /_fake/stats, for a fake running in another process."""
        with self._lock:
            if request.path == "/_fake/log":
                data: Any = [
                    {"message_id": e.message_id, "touch_id": e.touch_id, "to": e.to}
                    for e in self.log
                ]
            elif request.path == "/_fake/stats":
                data = {
                    "requests": self.requests,
                    "accepted": len(self.log),
                    "answers": dict(self.answers),
                    "violations": self.violations[:10],
                }
            else:
                data = None
        payload = json.dumps(data).encode()
        return _Reply(
            200 if data is not None else 404, {"Content-Type": "application/json"}, payload
        )

    def respond(
        self, request: Request, body: bytes, answer: str | None
    ) -> tuple[int, dict[str, str], bytes, Accepted | None]:
        raise NotImplementedError


def _json(status: int, data: Any, **headers: str) -> tuple[int, dict[str, str], bytes, None]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(data).encode(), None


class FakeSendGrid(FakeProvider):
    """POST /v3/mail/send like SendGrid: 202 + X-Message-Id, or SendGrid's error bodies."""

    spec_name = SENDGRID_SPEC

    def __init__(self, api_key: str = "SG.fake-key", **options: Any) -> None:
        super().__init__(**options)
        self.api_key = api_key
        self.bad_addresses: set[str] = set()

    def respond(
        self, request: Request, body: bytes, answer: str | None
    ) -> tuple[int, dict[str, str], bytes, Accepted | None]:
        def errors(status: int, message: str, field_: str | None = None, **extra: str) -> Any:
            return _json(status, {"errors": [{"message": message, "field": field_}]}, **extra)

        if urlsplit(request.path).path != "/v3/mail/send":
            return errors(404, "resource not found")
        if answer == UNAUTHORIZED or request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return errors(401, "The provided authorization grant is invalid, expired, or revoked")
        if answer == RATE_LIMITED:
            return errors(
                429, "too many requests", None, **{"Retry-After": str(self.faults.retry_after)}
            )
        if answer == SERVER_ERROR:
            return errors(500, "internal server error")
        problem = self._validate(request, body)
        if problem is not None or answer == BAD_REQUEST:
            return errors(400, problem or "invalid request")
        mail = json.loads(body)
        live = self._live_rules(mail)
        if live is not None:
            return errors(400, live[0], live[1])
        sandbox = mail.get("mail_settings", {}).get("sandbox_mode", {}).get("enable") is True
        if sandbox:
            return 200, {}, b"", None
        message_id = secrets.token_urlsafe(16)
        personalization = mail["personalizations"][0]
        accepted = Accepted(
            message_id=message_id,
            touch_id=str(personalization.get("custom_args", {}).get("touch_id", "")),
            to=personalization["to"][0]["email"],
            answer=answer or OK,
            body=mail,
        )
        return 202, {"X-Message-Id": message_id}, b"", accepted

    def _live_rules(self, mail: dict[str, Any]) -> tuple[str, str] | None:
        """What the live API checks beyond the OpenAPI file."""
        if "template_id" not in mail:
            if not mail.get("subject"):
                return "The subject is required.", "subject"
            content = mail.get("content") or []
            if not content:
                return "Unless a valid template_id is provided, content is required.", "content"
            if content[0].get("type") != "text/plain":
                return "The text/plain content type must be first.", "content"
        for p, personalization in enumerate(mail["personalizations"]):
            for r, recipient in enumerate(personalization.get("to", [])):
                email = recipient.get("email", "")
                if email in self.bad_addresses or "@" not in email:
                    return "Does not contain a valid address.", f"personalizations.{p}.to.{r}.email"
            for key, value in personalization.get("custom_args", {}).items():
                if not isinstance(value, str):
                    return f"custom_args value for {key} must be a string", "custom_args"
        return None


class FakeTwilio(FakeProvider):
    """POST /2010-04-01/Accounts/{Sid}/Messages.json like Twilio: 201 + message, or errors.

    SMS goes to a plain E.164 To (no `whatsapp:` prefix) from a number or a Messaging
    Service, and is refused with 21610 once the number replied STOP (`opted_out`).
    Free text (Body) to a WhatsApp number without an open session is accepted, then fails with
    63016 like the real service (recorded in `late_failures`); an unknown ContentSid is
    refused with 21655 when `templates` is set.
    """

    spec_name = TWILIO_SPEC

    def __init__(
        self,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "fake-auth-token",  # noqa: S107 (the fake's own credential)
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.bad_numbers: set[str] = set()
        self.opted_out: set[str] = set()  # SMS numbers that replied STOP (21610)
        self.open_sessions: set[str] = set()
        self.templates: set[str] | None = None
        self.late_failures: list[tuple[str, int]] = []

    @staticmethod
    def error(status: int, code: int, message: str, **headers: str) -> Any:
        return _json(
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            **headers,
        )

    def _refuse_addresses(self, form: dict[str, str], number: str) -> Any:
        """Twilio's error for a To / From it would not send between, or None.

        WhatsApp: both `whatsapp:` addresses. SMS: an E.164 To (21610 once it replied STOP,
        `opted_out`) from an E.164 number or a Messaging Service (MessagingServiceSid)."""
        to, sender = form.get("To", ""), form.get("From", "")
        if not E164.match(number) or number in self.bad_numbers:
            return self.error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if to.startswith("whatsapp:"):
            if not sender.startswith("whatsapp:"):
                return self.error(
                    400, 63007, "Twilio could not find a Channel with the From address"
                )
            return None
        if sender.startswith("whatsapp:"):
            return self.error(400, 21910, "Invalid From and To pair")
        service = form.get("MessagingServiceSid", "")
        if not (E164.match(sender) or MESSAGING_SERVICE.fullmatch(service)):
            return self.error(400, 21606, "The From phone number is not a valid SMS sender")
        if number in self.opted_out:
            return self.error(400, 21610, "Attempt to send to unsubscribed recipient")
        if not form.get("Body"):
            return self.error(400, 21602, "Message body is required.")
        return None

    def respond(
        self, request: Request, body: bytes, answer: str | None
    ) -> tuple[int, dict[str, str], bytes, Accepted | None]:
        match = TWILIO_MESSAGES.match(urlsplit(request.path).path)
        if match is None:
            return self.error(404, 20404, "The requested resource was not found")
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        if (
            answer == UNAUTHORIZED
            or match.group(1) != self.account_sid
            or request.headers.get("Authorization") != expected
        ):
            return self.error(401, 20003, "Authenticate")
        if answer == RATE_LIMITED:
            return self.error(
                429, 20429, "Too Many Requests", **{"Retry-After": str(self.faults.retry_after)}
            )
        if answer == SERVER_ERROR:
            return self.error(500, 20500, "Internal Server Error")
        problem = self._validate(request, body)
        if problem is not None or answer == BAD_REQUEST:
            return self.error(400, 21602, problem or "Message body is required.")
        form = {key: values[-1] for key, values in parse_qs(body.decode()).items()}
        to, sender = form.get("To", ""), form.get("From", "")
        number = to.removeprefix("whatsapp:")
        refused = self._refuse_addresses(form, number)
        if refused is not None:
            return refused
        content_sid = form.get("ContentSid")
        if content_sid and self.templates is not None and content_sid not in self.templates:
            return self.error(400, 21655, "The ContentSid is Invalid")
        if content_sid and "ContentVariables" in form:
            try:
                variables = json.loads(form["ContentVariables"])
            except ValueError:
                variables = None
            if not isinstance(variables, dict):
                return self.error(400, 21656, "The ContentVariables Parameter is invalid")
        if not content_sid and not form.get("Body"):
            return self.error(400, 21602, "Message body is required.")
        sid = "SM" + secrets.token_hex(16)
        sms = not to.startswith("whatsapp:")
        if not content_sid and not sms and number not in self.open_sessions:
            with self._lock:
                self.late_failures.append((sid, 63016))
        callback = form.get("StatusCallback", "")
        touch_id = parse_qs(urlsplit(callback).query).get("touch_id", [""])[0]
        now = formatdate(usegmt=True)
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(sms_segments(form.get("Body", "")).segments if sms else 1),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        accepted = Accepted(
            message_id=sid, touch_id=touch_id, to=to, answer=answer or OK, body=form
        )
        status, headers, payload, _ = _json(201, resource)
        return status, headers, payload, accepted


def main(argv: list[str] | None = None) -> None:
    """Serve one fake until killed; prints its URL on the first line of stdout."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("provider", choices=["sendgrid", "twilio"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--validate-every", type=int, default=1, help="0: never")
    for name in ("rate_limited", "server_error", "hang", "drop", "drop_after"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=0.0)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    faults = Faults(
        rate_limited=args.rate_limited,
        server_error=args.server_error,
        hang=args.hang,
        drop=args.drop,
        drop_after=args.drop_after,
        retry_after=args.retry_after,
    )
    cls = FakeSendGrid if args.provider == "sendgrid" else FakeTwilio
    fake = cls(faults=faults, validate_every=args.validate_every, hang_seconds=args.hang_seconds)
    print(fake.start(port=args.port), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
