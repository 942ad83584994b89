"""Twilio: sending WhatsApp messages and SMS, the X-Twilio-Signature, status and inbound
callbacks."""
