"""SendGrid Inbound Parse: an email sent to the inbound domain (a reply to a nurture email),
POSTed as multipart/form-data, parsed into one inbox record (source `sendgrid_inbound`),
and what it means in our vocabulary (`inbound_email_event`; the rescore run applies it).

The fields are SendGrid's: `headers`, `dkim`, `to`, `from`, `cc`, `text`, `html`,
`subject`, `sender_ip`, `envelope` (JSON: `to`, `from`), `charsets` (JSON: the charset of
each field), `SPF`, `spam_score`, `attachments` (a count) and `attachment-info`, one file
part per attachment; or, with "POST the raw, full MIME message", the whole message in
`email`. Attachments are counted and named, never kept.

Which message a reply answers: nurture emails carry a signed Reply-To
(`reply_address`: `reply+<touch id>-<signature>@<inbound domain>`), read back here from
the envelope recipient, `to` or `cc` (`touch_id` in the payload: only a token that
verifies sets it). Only the reply's new text counts (`new_text`: quoted history and the
signature cut off); automatic replies and bounces are kinds of their own (`automatic`).
"""

from __future__ import annotations

import codecs
import email
import email.policy
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Any

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

from leadops.core.tokens import InvalidToken, short_sign, short_verify
from leadops.models.events import EventType
from leadops.providers.inbound import SENDGRID_INBOUND, BadPayload, InboxRecord, digest
from leadops.providers.twilio.events import fold_keyword

REPLY = "reply"  # a person's answer
AUTO_REPLY = "auto_reply"  # an out-of-office or other automatic answer: stored, not a reply
BOUNCE = "bounce"  # a delivery status notification (mailer-daemon): stored, not a reply
REPLY_PURPOSE = "reply"  # the token purpose of reply addresses
REPLY_PREFIX = "reply+"

MAX_PARTS = 200  # form fields and attachments together
MAX_ATTACHMENTS_LISTED = 20
MAX_TEXT = 20_000  # characters of a reply's new text kept
MAX_HEADER = 998  # RFC 5322's line limit, for each header value kept


# -- the reply address -------------------------------------------------------------------


def reply_address(domain: str, touch_id: int, key: bytes) -> str:
    """The Reply-To of nurture touch `touch_id`: a reply to it names the touch."""
    return f"{REPLY_PREFIX}{short_sign(REPLY_PURPOSE, touch_id, key)}@{domain}"


def touch_in(addresses: Iterable[str], domain: str, key: bytes) -> tuple[int | None, str]:
    """The touch the first reply address at `domain` among `addresses` names, and whether a
    token was "valid", "invalid" (none of those present verifies) or "absent"."""
    status = "absent"
    if not domain:
        return None, status
    for address in addresses:
        local, _, at = address.strip().lower().rpartition("@")
        if at != domain or not local.startswith(REPLY_PREFIX):
            continue
        try:
            return short_verify(REPLY_PURPOSE, local.removeprefix(REPLY_PREFIX), key), "valid"
        except InvalidToken:
            status = "invalid"
    return None, status


# -- multipart/form-data -----------------------------------------------------------------


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str = ""
    data: bytearray | None = None
    size: int = 0


@dataclass(frozen=True)
class Attachment:
    part: str
    filename: str
    content_type: str
    size: int

    def item(self) -> dict[str, Any]:
        return {
            "part": self.part[:100],
            "filename": self.filename[:200],
            "type": self.content_type[:100],
            "bytes": self.size,
        }


def _read_header(part: _Part, name: str, value: str) -> None:
    """Take a part's name, file name and content type from one of its headers."""
    if name == "content-disposition":
        disposition, params = parse_options_header(value)
        if disposition != b"form-data" or b"name" not in params:
            raise BadPayload("a part's Content-Disposition must be form-data with a name")
        part.name = params[b"name"].decode("utf-8", "replace")
        if b"filename" in params:
            part.filename = params[b"filename"].decode("utf-8", "replace")
    elif name == "content-type":
        part.content_type = value.strip()


def form_parts(body: bytes, content_type: str) -> tuple[dict[str, bytes], list[Attachment]]:
    """The fields (raw bytes) and attachments of a multipart/form-data body, parsed
    strictly: one closing boundary, at most MAX_PARTS parts, no field twice."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadPayload("body must be multipart/form-data with a boundary")
    fields: dict[str, bytes] = {}
    attachments: list[Attachment] = []
    parts: list[_Part] = []
    header = {"name": b"", "value": b""}
    ended = False

    def on_part_begin() -> None:
        if len(parts) >= MAX_PARTS:
            raise BadPayload(f"more than {MAX_PARTS} parts")
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        name = header["name"].decode("latin-1").strip().lower()
        value = header["value"].decode("utf-8", "replace")
        header["name"], header["value"] = b"", b""
        _read_header(parts[-1], name, value)

    def on_headers_finished() -> None:
        part = parts[-1]
        if not part.name:
            raise BadPayload("a part has no Content-Disposition name")
        if part.filename is None:
            part.data = bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        part.size += end - start
        if part.data is not None:
            part.data += data[start:end]

    def on_part_end() -> None:
        part = parts[-1]
        if part.data is None:
            attachments.append(
                Attachment(part.name, part.filename or "", part.content_type, part.size)
            )
        elif part.name in fields:
            raise BadPayload(f"field {part.name[:40]!r} appears twice")
        else:
            fields[part.name] = bytes(part.data)

    def on_end() -> None:
        nonlocal ended
        ended = True

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
        "on_end": on_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadPayload(f"body is not valid multipart/form-data: {exc}") from exc
    if not ended:
        raise BadPayload("body ends before the closing multipart boundary")
    return fields, attachments


def _charsets(raw: bytes | None) -> dict[str, str]:
    """SendGrid's `charsets` field: the character set of each field, known codecs only."""
    try:
        value = json.loads(raw or b"{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload(f"charsets is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadPayload("charsets must be a JSON object")
    known: dict[str, str] = {}
    for name, charset in value.items():
        try:
            if isinstance(charset, str):
                known[str(name)] = codecs.lookup(charset).name
        except LookupError:
            continue
    return known


def header(headers: Message, name: str) -> str:
    """A header's value as storable text (no NUL), at most MAX_HEADER characters."""
    value = headers.get(name)
    return "" if value is None else str(value).replace("\x00", "\ufffd")[:MAX_HEADER]


def _text(raw: bytes | None, charset: str = "utf-8", limit: int | None = None) -> str:
    """A field as text: decoded in its charset (undecodable bytes replaced, never refused:
    the email is real) and without NUL, which no database stores."""
    text = (raw or b"").decode(charset, "replace").replace("\x00", "\ufffd")
    return text if limit is None else text[:limit]


# -- what the email says -----------------------------------------------------------------

_QUOTE_HEADER = re.compile(
    r"^\s*(on|le|am|el|em|il|op)\s.{0,300}"
    r"(wrote|a écrit|schrieb|escribió|escreveu|ha scritto|schreef)\s?:\s*$",
    re.IGNORECASE,
)
_ORIGINAL = re.compile(r"^\s*(-{2,}\s*original message\s*-{2,}|_{10,})\s*$", re.IGNORECASE)
_SIGNATURE = re.compile(r"^-- ?$")
_MOBILE = re.compile(r"^\s*(sent from my |get outlook for )", re.IGNORECASE)
_HEADER_LINE = re.compile(r"^\s*(from|von|de)\s*:", re.IGNORECASE)
_SENT_LINE = re.compile(r"^\s*(sent|date|gesendet|envoyé|enviado)\s*:", re.IGNORECASE)


def new_text(text: str) -> str:
    """What the sender wrote in this email: lines quoted with ">" dropped, and everything
    from the quoted history ("On ... wrote:", an Outlook "Original Message" or From:/Sent:
    block), the signature ("-- ") or a "Sent from my phone" line on cut off."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        wrapped = line + " " + (lines[index + 1] if index + 1 < len(lines) else "")
        if (
            _SIGNATURE.match(line)
            or _ORIGINAL.match(line)
            or _MOBILE.match(line)
            or _QUOTE_HEADER.match(line)
            or _QUOTE_HEADER.match(wrapped)
            or (
                _HEADER_LINE.match(line)
                and any(_SENT_LINE.match(later) for later in lines[index + 1 : index + 4])
            )
        ):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()[:MAX_TEXT]


class _HtmlText(HTMLParser):
    """The text of an HTML body, without quoted history (blockquote), styles or scripts."""

    SKIP = frozenset({"blockquote", "style", "script", "head", "title"})
    BREAKS = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3"})
    VOID = frozenset({"br", "img", "hr", "meta", "input", "wbr", "link", "col", "source"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0  # depth inside an element being skipped

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = " ".join(value or "" for name, value in attrs if name == "class")
        if self.skipping:
            self.skipping += tag not in self.VOID
        elif tag in self.SKIP or "gmail_quote" in classes or "moz-cite-prefix" in classes:
            self.skipping = 1
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            self.skipping -= 1
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|autoreply|out of (the )?office|ooo\b"
    r"|auto:|abwesenheit|réponse automatique|respuesta autom[aá]tica|risposta automatica"
    r"|resposta autom[aá]tica|automatisch antwoord)",
    re.IGNORECASE,
)
BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster"})
AUTO_PRECEDENCE = frozenset({"auto_reply", "bulk", "junk", "list"})


def automatic(
    headers: Message, sender: str, envelope_from: str | None, subject: str
) -> tuple[str, str] | None:
    """(BOUNCE or AUTO_REPLY, why) for an email no person wrote, else None: a delivery
    status notification (mailer-daemon, an empty return path, multipart/report), or an
    automatic answer (RFC 3834 Auto-Submitted, X-Autoreply, Precedence, an out-of-office
    subject)."""
    if sender.partition("@")[0] in BOUNCE_SENDERS:
        return BOUNCE, f"from {sender.partition('@')[0]}"
    if envelope_from is not None and envelope_from.strip() in ("", "<>"):
        return BOUNCE, "empty return path"
    content_type = header(headers, "Content-Type").lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        return BOUNCE, "delivery status report"
    submitted = header(headers, "Auto-Submitted").strip().lower()
    if submitted and submitted != "no":
        return AUTO_REPLY, f"Auto-Submitted: {submitted[:40]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if headers.get(name) is not None:
            return AUTO_REPLY, name
    precedence = header(headers, "Precedence").strip().lower()
    if precedence in AUTO_PRECEDENCE:
        return AUTO_REPLY, f"Precedence: {precedence}"
    if _AUTO_SUBJECT.match(subject):
        return AUTO_REPLY, "out-of-office subject"
    return None


def sender_authenticated(sender: str, envelope_from: str, spf: str, dkim: str) -> bool:
    """Whether SendGrid's checks vouch for the sender's domain: SPF passed for a return
    path in that domain, or a DKIM signature of that domain passed."""
    domain = sender.rpartition("@")[2]
    if not domain:
        return False
    if spf.strip().lower() == "pass" and envelope_from.lower().rpartition("@")[2] == domain:
        return True
    return re.search(r"@" + re.escape(domain) + r"\s*:\s*pass\b", dkim.lower()) is not None


_REPLY_PREFIXES = re.compile(r"^\s*((re|aw|sv|antw|wg|fwd?|tr)\s*:\s*)+", re.IGNORECASE)


def inbound_email_event(
    kind: str, payload: Mapping[str, Any], opt_out: Collection[str]
) -> EventType:
    """A reply is an opt-out when its first line (or, with no text, its subject without
    "Re:") is exactly one of the opt-out keywords (folded with `fold_keyword`); any other
    reply is a reply; automatic replies and bounces mean nothing to apply."""
    if kind != REPLY:
        return EventType.OTHER
    text = str(payload.get("text") or "")
    first = next((line for line in text.splitlines() if line.strip()), "")
    words = first or _REPLY_PREFIXES.sub("", str(payload.get("subject") or ""))
    return EventType.OPTED_OUT if fold_keyword(words) in opt_out else EventType.REPLIED


# -- the record --------------------------------------------------------------------------


def _headers(fields: Mapping[str, bytes], raw: EmailMessage | None) -> Message:
    if raw is not None:
        return raw
    return HeaderParser().parsestr(_text(fields.get("headers")))


def _raw_message(raw: bytes) -> tuple[EmailMessage, str, str, list[Attachment]]:
    """The whole MIME message of a raw-mode post: headers, text, HTML and attachments."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    texts = {"plain": "", "html": ""}
    for subtype in texts:
        part = message.get_body(preferencelist=(subtype,))
        if part is not None:
            try:
                texts[subtype] = str(part.get_content())
            except (LookupError, ValueError, UnicodeError):
                payload = part.get_payload(decode=True)
                texts[subtype] = _text(payload if isinstance(payload, bytes) else b"")
    attachments = []
    for index, part in enumerate(message.iter_attachments(), start=1):
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        attachments.append(
            Attachment(
                f"attachment{index}", part.get_filename() or "", part.get_content_type(), size
            )
        )
    return message, texts["plain"].replace("\x00", "\ufffd"), texts["html"], attachments


def _envelope(raw: bytes | None) -> tuple[list[str], str | None]:
    """SendGrid's `envelope` field: the SMTP recipients and return path."""
    if not raw:
        raise BadPayload("envelope is missing")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload(f"envelope is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadPayload("envelope must be a JSON object")
    to = value.get("to", [])
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not all(isinstance(a, str) and len(a) <= 320 for a in to):
        raise BadPayload("envelope.to must be a list of addresses")
    sender = value.get("from")
    if sender is not None and (not isinstance(sender, str) or len(sender) > 320):
        raise BadPayload("envelope.from must be an address")
    return to[:50], sender


def _message_id(value: object) -> str:
    return str(value or "").strip().strip("<>").strip()[:MAX_HEADER]


def inbound_email_record(body: bytes, content_type: str, *, domain: str, key: bytes) -> InboxRecord:
    """Parse one Inbound Parse post into an inbox record. `domain` is the inbound domain
    (LEADOPS_INBOUND_EMAIL_DOMAIN) and `key` the signing key of its reply tokens."""
    fields, attachments = form_parts(body, content_type)
    charsets = _charsets(fields.get("charsets"))

    def field(name: str, limit: int | None = MAX_HEADER) -> str:
        return _text(fields.get(name), charsets.get(name, "utf-8"), limit)

    raw = None
    text, html = field("text", None), field("html", None)
    if "email" in fields:
        raw, text, html, attachments = _raw_message(fields["email"])
    headers = _headers(fields, raw)
    recipients, envelope_from = _envelope(fields.get("envelope"))
    sender_field = field("from") or header(headers, "From")
    sender = parseaddr(sender_field)[1].strip().lower()
    if not sender:
        raise BadPayload("from names no sender address")
    to_field, cc_field = field("to"), field("cc")
    for name, value in (("To", to_field), ("Cc", cc_field)):
        value = value or header(headers, name)
        recipients += [address for _, address in getaddresses([value]) if address][:50]
    touch_id, token = touch_in(recipients, domain, key)
    subject = field("subject") or header(headers, "Subject")
    found = automatic(headers, sender, envelope_from, subject)
    kind, why = found if found is not None else (REPLY, "")
    written = new_text(text or html_text(html))
    message_id = _message_id(header(headers, "Message-ID"))
    spf, dkim = field("SPF", 200), field("dkim", 500)
    payload: dict[str, Any] = {
        "from": sender_field,
        "sender": sender[:320],
        "recipients": [address[:320] for address in recipients[:20]],
        "subject": subject,
        "text": written,
        "touch_id": touch_id,
        "token": token,
        "sender_authenticated": sender_authenticated(sender, envelope_from or "", spf, dkim),
        "automatic": why,
        "message_id": message_id,
        "in_reply_to": _message_id(header(headers, "In-Reply-To")),
        "spf": spf,
        "dkim": dkim,
        "spam_score": field("spam_score", 20),
        "attachments": [a.item() for a in attachments[:MAX_ATTACHMENTS_LISTED]],
        "attachment_count": len(attachments),
    }
    if message_id and len(message_id) <= 190:
        dedupe = f"sgin:{message_id}"
    else:
        dedupe = "sgin:h:" + digest(message_id, sender, recipients, subject, written)
    return InboxRecord(SENDGRID_INBOUND, kind, dedupe, payload)
