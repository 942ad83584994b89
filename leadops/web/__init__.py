"""The leadops HTTP app: webhooks, forms, unsubscribe and acknowledge links."""
