"""Engagement: the webhook inbox, what each event means for a lead, the score ledger and
the stage machine, and the rescore run that applies them."""
