"""qualification, SMS consent and experiments: the columns three capabilities share

Adds to `leads` the grade, band, lead status (with its reason and time) and custom
properties of qualification, and SMS consent and suppression (as email and WhatsApp
have); to `enrollments` the arm (`holdout`) and to `touches` the A/B variant a touch was
composed from. Rows from before keep NULL (no grade, band or status until the next
rescore; no SMS consent, as nobody gave it; the step itself, no holdout). Downgrading drops
the columns and what they held.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leadops.models


revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEAD_COLUMNS = (
    'grade', 'band', 'lead_status', 'status_reason', 'status_at', 'properties',
    'sms_consent', 'sms_consent_at', 'sms_suppressed_at', 'sms_suppression_reason',
)


def upgrade() -> None:
    # Plain ADD COLUMN, never a table rebuild: other tables reference leads.
    op.add_column('leads', sa.Column('grade', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True))
    op.add_column('leads', sa.Column('band', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))
    op.add_column('leads', sa.Column('lead_status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
    op.add_column('leads', sa.Column('status_reason', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True))
    op.add_column('leads', sa.Column('status_at', leadops.models.UTCDateTime(timezone=True), nullable=True))
    op.add_column('leads', sa.Column('properties', sa.JSON(), nullable=True))
    op.add_column('leads', sa.Column('sms_consent', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('leads', sa.Column('sms_consent_at', leadops.models.UTCDateTime(timezone=True), nullable=True))
    op.add_column('leads', sa.Column('sms_suppressed_at', leadops.models.UTCDateTime(timezone=True), nullable=True))
    op.add_column('leads', sa.Column('sms_suppression_reason', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))

    op.add_column('enrollments', sa.Column('arm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))

    op.add_column('touches', sa.Column('variant', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    # In place, not rebuilt: on SQLite a rebuild of a table fails while rows of other
    # tables reference it (SQLite drops a plain column itself since 3.35).
    op.execute('ALTER TABLE touches DROP COLUMN variant')
    op.execute('ALTER TABLE enrollments DROP COLUMN arm')
    for column in LEAD_COLUMNS:
        op.execute(f'ALTER TABLE leads DROP COLUMN {column}')
