"""Sales: route sales-ready leads to reps (routing), record escalations (escalation), notify
(notify), chase the SLA (sla), acknowledge and close (acks), scan for SQL leads (scan) and
take the rescore run's hand-raises (handoff); the runtime they share is in runtime."""
