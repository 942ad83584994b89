"""SendGrid: sending email, the Event Webhook's signature and its events."""
