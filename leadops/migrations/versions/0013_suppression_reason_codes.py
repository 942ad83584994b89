"""suppression reason codes: the provider's free text the first wave's dispatcher stored
as a suppression reason becomes a code, and every touch still pending on a suppressed
channel is skipped with its channel's code (the first wave's dispatcher left some; the
contact policy would skip any of them at dispatch anyway)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of leadops.models.vocab.SuppressionReason at this revision (a migration
# never imports code that may change after it).
CODES = (
    "unsubscribe",
    "group_unsubscribe",
    "spamreport",
    "whatsapp_opt_out",
    "bounce",
    "dropped",
    "invalid_number",
    "invalid_address",
)
# The code the dispatcher now writes when a provider refuses an address on send.
REFUSED = {"email": "invalid_address", "whatsapp": "invalid_number"}


def upgrade() -> None:
    connection = op.get_bind()
    codes = sa.bindparam("codes", expanding=True)
    for channel, code in REFUSED.items():
        at, why = f"{channel}_suppressed_at", f"{channel}_suppression_reason"
        # Free text there came only from a provider refusing the address at send time.
        connection.execute(
            sa.text(
                f"UPDATE leads SET {why} = :code WHERE {at} IS NOT NULL "
                f"AND ({why} IS NULL OR {why} NOT IN :codes)"
            ).bindparams(codes),
            {"code": code, "codes": list(CODES)},
        )
        # Skipped now, with the code, as the one suppression writer does (the copy that
        # wrote free text left them pending; the policy would skip them at dispatch).
        connection.execute(
            sa.text(
                f"UPDATE touches SET status = 'skipped', hold_reason = "
                f"(SELECT {why} FROM leads WHERE leads.id = touches.lead_id) "
                f"WHERE status = 'pending' AND channel = :channel AND lead_id IN "
                f"(SELECT id FROM leads WHERE {at} IS NOT NULL)"
            ),
            {"channel": channel},
        )


def downgrade() -> None:
    # Data only: the codes are valid suppression reasons for the revision before (an
    # opt-in there clears the same ones), and touches skipped stay skipped (that version
    # would have skipped them at dispatch: their channel is suppressed).
    pass
