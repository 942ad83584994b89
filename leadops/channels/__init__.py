"""Delivery channels: the file outbox (default), SendGrid email and Twilio WhatsApp."""
