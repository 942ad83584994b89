"""The database tables (SQLModel) and their vocabulary, one module per concept:

- `vocab`: enums and status sets (stages, channels, statuses), no ORM;
- `types`: `UTCDateTime` and the timestamp column helper;
- `leads`, `nurture`, `intake`, `engagement`, `sales`, `crm`, `ops`: the tables, with their Core
  table handles (`LEADS`, `TOUCHES`...).

This package re-exports all of them, so `from leadops.models import X` works for every
table, handle and enum, and importing it registers every table in `SQLModel.metadata`
(Alembic's target; see leadops/migrations/env.py). Every timestamp is stored as UTC and
read back timezone-aware.
"""

from __future__ import annotations

# isort: off
# In this order: the tables register in SQLModel.metadata as leads, nurture, intake,
# engagement, sales, crm, ops (leads first, as before the split).
from leadops.models.vocab import (
    ACTIVE_ESCALATION_STATUSES,
    AWAITING_ACK_STATUSES,
    FINAL_TOUCH_STATUSES,
    FUNNEL_ORDER,
    SENT_TOUCH_STATUSES,
    ActivityKind,
    Channel,
    ContactChannel,
    DealStatus,
    DeadLetterItem,
    DeadLetterStatus,
    DisqualifyReason,
    EnrollmentStatus,
    EscalationStatus,
    FormSubmissionStatus,
    InboxStatus,
    LifecycleStage,
    LostReason,
    NotificationStatus,
    NotReadyReason,
    QuarantineStatus,
    ScoreKind,
    TouchStatus,
)
from leadops.models.types import (
    UTCDateTime,
    ts,
)
from leadops.models.leads import (
    LEADS,
    Lead,
)
from leadops.models.nurture import (
    CAMPAIGN_PAUSES,
    CAMPAIGN_VERSIONS,
    ENROLLMENTS,
    TOUCH_AUDIT,
    TOUCHES,
    CampaignPause,
    CampaignVersion,
    Enrollment,
    Touch,
    TouchAudit,
)
from leadops.models.intake import (
    FORM_SUBMISSIONS,
    IMPORTED_FILES,
    INTAKE_CURSORS,
    LEAD_FIELD_ISSUES,
    LEAD_SOURCE_RECORDS,
    QUARANTINE,
    QUARANTINED_FILES,
    FormSubmission,
    ImportedFile,
    IntakeCursor,
    LeadFieldIssue,
    LeadSourceRecord,
    QuarantinedFile,
    QuarantinedRecord,
)
from leadops.models.engagement import (
    INBOX,
    SCORE_LEDGER,
    STAGE_CHANGES,
    WEBHOOK_REJECTIONS,
    InboxEvent,
    ScoreEntry,
    StageChange,
    WebhookRejection,
)
from leadops.models.sales import (
    ESCALATION_ACTIVITIES,
    ESCALATION_ASSIGNMENTS,
    ESCALATION_DIGESTS,
    ESCALATION_NOTIFICATIONS,
    ESCALATIONS,
    Escalation,
    EscalationActivity,
    EscalationAssignment,
    EscalationDigest,
    EscalationNotification,
)
from leadops.models.crm import (
    CRM_CONTACTS,
    CRM_DEALS,
    CRM_OWNERS,
    CrmContact,
    CrmDeal,
    CrmOwner,
)
from leadops.models.ops import (
    DEAD_LETTERS,
    PASS_MARKS,
    DeadLetter,
    PassMark,
)
# isort: on

__all__ = [
    "ACTIVE_ESCALATION_STATUSES",
    "AWAITING_ACK_STATUSES",
    "CAMPAIGN_PAUSES",
    "CAMPAIGN_VERSIONS",
    "CRM_CONTACTS",
    "CRM_DEALS",
    "CRM_OWNERS",
    "DEAD_LETTERS",
    "ENROLLMENTS",
    "ESCALATIONS",
    "ESCALATION_ACTIVITIES",
    "ESCALATION_ASSIGNMENTS",
    "ESCALATION_DIGESTS",
    "ESCALATION_NOTIFICATIONS",
    "FINAL_TOUCH_STATUSES",
    "FORM_SUBMISSIONS",
    "FUNNEL_ORDER",
    "IMPORTED_FILES",
    "INBOX",
    "INTAKE_CURSORS",
    "LEADS",
    "LEAD_FIELD_ISSUES",
    "LEAD_SOURCE_RECORDS",
    "PASS_MARKS",
    "QUARANTINE",
    "QUARANTINED_FILES",
    "SCORE_LEDGER",
    "SENT_TOUCH_STATUSES",
    "STAGE_CHANGES",
    "TOUCHES",
    "TOUCH_AUDIT",
    "WEBHOOK_REJECTIONS",
    "ActivityKind",
    "CampaignPause",
    "CampaignVersion",
    "Channel",
    "ContactChannel",
    "CrmContact",
    "CrmDeal",
    "CrmOwner",
    "DeadLetter",
    "DeadLetterItem",
    "DeadLetterStatus",
    "DealStatus",
    "DisqualifyReason",
    "Enrollment",
    "EnrollmentStatus",
    "Escalation",
    "EscalationActivity",
    "EscalationAssignment",
    "EscalationDigest",
    "EscalationNotification",
    "EscalationStatus",
    "FormSubmission",
    "FormSubmissionStatus",
    "ImportedFile",
    "InboxEvent",
    "InboxStatus",
    "IntakeCursor",
    "Lead",
    "LeadFieldIssue",
    "LeadSourceRecord",
    "LifecycleStage",
    "LostReason",
    "NotReadyReason",
    "NotificationStatus",
    "PassMark",
    "QuarantineStatus",
    "QuarantinedFile",
    "QuarantinedRecord",
    "ScoreEntry",
    "ScoreKind",
    "StageChange",
    "Touch",
    "TouchAudit",
    "TouchStatus",
    "UTCDateTime",
    "WebhookRejection",
    "ts",
]
