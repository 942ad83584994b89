"""CRM write-back: lead scores, stages and escalations written to HubSpot from an outbox,
and a deal and a task for the rep on escalation. See docs/guides/crm.md."""
