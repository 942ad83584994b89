"""The file outbox: every message becomes a file a person can open.

Email is written as a standard .eml (multipart text + HTML, with List-Unsubscribe
headers), WhatsApp and SMS as .json, under <outbox>/<channel>/<campaign>/<step>/t<touch id>.<ext>.
Writing is atomic and keyed by touch id, so a message is never written twice.
"""

from __future__ import annotations

import json
import os
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

from leadops.models import Channel
from leadops.providers.base import OutgoingMessage, SendResult

# Headers are folded only past RFC 5322's 998-character line limit. With the email
# package's default of 78, a long ASCII value without spaces (the List-Unsubscribe URL)
# is rewritten as RFC 2047 encoded words, which unsubscribe parsers do not read.
EML_POLICY = policy.default.clone(max_line_length=998)


class OutboxChannel:
    def __init__(
        self, root: Path, channel: str, *, sender_name: str = "", sender_email: str = ""
    ) -> None:
        if channel not in (Channel.EMAIL, Channel.WHATSAPP, Channel.SMS):
            raise ValueError(f"unknown channel {channel!r}")
        self.name = f"outbox:{channel}"
        self.concurrency = 1
        self.rate_per_second: float | None = None
        self.channel = channel
        self.folder = root / channel
        self.sender_name = sender_name
        self.sender_email = sender_email

    def _path(self, touch_id: int, campaign: str, step: str) -> Path:
        suffix = ".eml" if self.channel == Channel.EMAIL else ".json"
        return self.folder / campaign / step / f"t{touch_id:08d}{suffix}"

    def _provider_id(self, path: Path) -> str:
        return path.relative_to(self.folder.parent).as_posix()

    def find_sent(self, touch_id: int, campaign: str, step: str) -> str | None:
        path = self._path(touch_id, campaign, step)
        return self._provider_id(path) if path.exists() else None

    def send(self, message: OutgoingMessage) -> SendResult:
        path = self._path(message.touch_id, message.campaign, message.step)
        if path.exists():
            return SendResult(provider_id=self._provider_id(path))
        content = self._eml(message) if self.channel == Channel.EMAIL else self._json(message)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(content)
        os.replace(partial, path)
        return SendResult(provider_id=self._provider_id(path))

    def _eml(self, message: OutgoingMessage) -> bytes:
        mail = EmailMessage(policy=EML_POLICY)
        mail["From"] = formataddr((self.sender_name, self.sender_email))
        mail["To"] = formataddr((message.to_name, message.to))
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(message.created_at)
        if message.reply_to:
            mail["Reply-To"] = formataddr((self.sender_name, message.reply_to))
        mail["Message-ID"] = make_msgid(idstring=f"t{message.touch_id}", domain="leadops.local")
        if message.unsubscribe_url:
            mail["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail["X-Leadops-Touch-Id"] = str(message.touch_id)
        mail["X-Leadops-Lead-Id"] = str(message.lead_id)
        mail["X-Leadops-Campaign"] = f"{message.campaign}/{message.step}"
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        return bytes(mail)

    def _json(self, message: OutgoingMessage) -> bytes:
        document = {
            "touch_id": message.touch_id,
            "lead_id": message.lead_id,
            "to": f"whatsapp:{message.to}" if self.channel == Channel.WHATSAPP else message.to,
            "campaign": message.campaign,
            "step": message.step,
            "created_at": message.created_at.isoformat(),
            "body": message.body,
            **(
                {"content_sid": message.content_sid, "content_variables": message.content_variables}
                if message.content_sid
                else {}
            ),
            **({"extra": message.extra} if message.extra else {}),
        }
        return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()
