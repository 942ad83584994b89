"""SMS through Twilio's Messages API: the same request, client and error handling as
WhatsApp (leadops.providers.twilio.send), with plain E.164 addresses and always a Body.

The sender is the Messaging Service (LEADOPS_TWILIO_MESSAGING_SERVICE_SID, which holds the
numbers and Advanced Opt-Out) or else one number (LEADOPS_TWILIO_SMS_FROM). Refusals that
say the number cannot receive suppress SMS for the lead with a reason code: 21610 (the
recipient replied STOP) as `sms_opt_out`, the invalid or unreachable numbers as
`invalid_number`.
"""

from __future__ import annotations

from typing import Any

from twilio.base.exceptions import TwilioRestException

from leadops.core.settings import Settings
from leadops.models.vocab import SuppressionReason
from leadops.providers.base import OutgoingMessage, PermanentSendError
from leadops.providers.twilio.events import SMS_UNSUBSCRIBED_CODE
from leadops.providers.twilio.send import TwilioWhatsAppChannel, status_callback_url

# Invalid To, cannot be reached, not a mobile number, a landline or unknown destination.
INVALID_NUMBER_CODES = frozenset({21211, 21214, 21614, 30005, 30006})


class TwilioSmsChannel(TwilioWhatsAppChannel):
    """Send SMS through Twilio. Each worker thread has its own client."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.name = "twilio:sms"
        self._service = settings.twilio_messaging_service_sid
        self._sms_from = settings.twilio_sms_from

    def request_params(self, message: OutgoingMessage) -> dict[str, str]:
        """The Messages.create arguments for one SMS."""
        if not message.body:
            raise PermanentSendError(f"{message.campaign}/{message.step}: the SMS is empty")
        params = {"to": message.to, "body": message.body}
        if self._service:
            params["messaging_service_sid"] = self._service
        else:
            params["from_"] = self._sms_from
        if message.kind == "touch":
            params["status_callback"] = status_callback_url(self._public_url, message.touch_id)
        return params

    def _classify(self, exc: TwilioRestException, headers: Any) -> Exception:
        found = super()._classify(exc, headers)
        if not isinstance(found, PermanentSendError):
            return found
        if exc.code == SMS_UNSUBSCRIBED_CODE:
            return PermanentSendError(
                str(found), suppress=True, reason=SuppressionReason.SMS_OPT_OUT
            )
        if exc.code in INVALID_NUMBER_CODES:
            return PermanentSendError(
                str(found), suppress=True, reason=SuppressionReason.INVALID_NUMBER
            )
        return PermanentSendError(str(found))
