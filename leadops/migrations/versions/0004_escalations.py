"""escalations, their assignment audit trail and rep notifications

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leadops.models


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('escalations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('trigger', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('trigger_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('account_domain', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('rep_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('queue', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('assignment_id', sa.Integer(), nullable=True),
    sa.Column('reroutes', sa.Integer(), nullable=False),
    sa.Column('sla_due_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('closed_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('close_note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('lead_id', 'trigger', 'trigger_key', name='uq_escalations_trigger')
    )
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalations_account_domain'), ['account_domain'], unique=False)
        batch_op.create_index(batch_op.f('ix_escalations_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_escalations_rep_key'), ['rep_key'], unique=False)
        batch_op.create_index('ix_escalations_status_sla', ['status', 'sla_due_at'], unique=False)
        batch_op.create_index('uq_escalations_one_active', ['lead_id'], unique=True, sqlite_where=sa.text("status IN ('open', 'acknowledged', 'rerouted')"), postgresql_where=sa.text("status IN ('open', 'acknowledged', 'rerouted')"))

    op.create_table('escalation_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('escalation_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('rep_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('queue', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('assigned_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sla_due_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('escalation_id', 'seq', name='uq_escalation_assignments_seq')
    )
    with op.batch_alter_table('escalation_assignments', schema=None) as batch_op:
        batch_op.create_index('ix_escalation_assignments_rep_at', ['rep_key', 'assigned_at'], unique=False)

    op.create_table('escalation_notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('escalation_id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
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
    sa.ForeignKeyConstraint(['assignment_id'], ['escalation_assignments.id'], ),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('assignment_id', 'role', 'channel', name='uq_escalation_notifications_once')
    )
    with op.batch_alter_table('escalation_notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalation_notifications_escalation_id'), ['escalation_id'], unique=False)
        batch_op.create_index('ix_escalation_notifications_status', ['status', 'not_before'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('escalation_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_escalation_notifications_status')
        batch_op.drop_index(batch_op.f('ix_escalation_notifications_escalation_id'))

    op.drop_table('escalation_notifications')
    with op.batch_alter_table('escalation_assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_escalation_assignments_rep_at')

    op.drop_table('escalation_assignments')
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_index('uq_escalations_one_active', sqlite_where=sa.text("status IN ('open', 'acknowledged', 'rerouted')"), postgresql_where=sa.text("status IN ('open', 'acknowledged', 'rerouted')"))
        batch_op.drop_index('ix_escalations_status_sla')
        batch_op.drop_index(batch_op.f('ix_escalations_rep_key'))
        batch_op.drop_index(batch_op.f('ix_escalations_lead_id'))
        batch_op.drop_index(batch_op.f('ix_escalations_account_domain'))

    op.drop_table('escalations')
