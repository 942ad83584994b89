"""The leadops HTTP app: webhooks, forms, unsubscribe links and the reps' hand-off page."""
