"""trigger detail and manager digests: what was true of an escalation's trigger when it
was made, and one manager message per channel for a whole SLA pass

Adds `escalations.trigger_detail` (empty for escalations from before: they are worded
from their trigger alone), the `escalation_digests` table and
`escalation_notifications.digest_id`. Manager notifications from before that were sent
keep no digest; one still pending goes out in the next digest. Downgrading drops the
digests; the manager notifications they carried keep their own status.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leadops.models


revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK_DIGEST = 'fk_escalation_notifications_digest_id'


def upgrade() -> None:
    op.create_table('escalation_digests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', leadops.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lease_until', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('escalation_digests', schema=None) as batch_op:
        batch_op.create_index('ix_escalation_digests_status', ['status', 'not_before'], unique=False)

    with op.batch_alter_table('escalation_notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('digest_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(FK_DIGEST, 'escalation_digests', ['digest_id'], ['id'])

    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trigger_detail', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))


def downgrade() -> None:
    # In place, not rebuilt: on SQLite a rebuild of escalations fails while rows of other
    # tables reference it (SQLite drops a plain column itself since 3.35).
    op.execute('ALTER TABLE escalations DROP COLUMN trigger_detail')

    with op.batch_alter_table('escalation_notifications', schema=None) as batch_op:
        batch_op.drop_constraint(FK_DIGEST, type_='foreignkey')
        batch_op.drop_column('digest_id')

    with op.batch_alter_table('escalation_digests', schema=None) as batch_op:
        batch_op.drop_index('ix_escalation_digests_status')

    op.drop_table('escalation_digests')
