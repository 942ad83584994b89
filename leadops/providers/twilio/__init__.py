"""Twilio: sending WhatsApp messages, the X-Twilio-Signature, status and inbound callbacks."""
