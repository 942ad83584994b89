"""crm write-back: the contact outbox, owners matched to reps, the task of a deal

Adds the tables `crm_contacts` (per CRM contact: the leadops_* values last written, the
values queued to write with attempts, not_before and the last error, and the digest of
what intake last read) and `crm_owners` (reps matched to CRM owners by email), and the
column `crm_deals.crm_task_id`. Nothing from before is changed. Downgrading drops them;
the next write-back pass after upgrading again compares every lead with nothing written
and queues it once more (updates are idempotent, so nothing is harmed).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leadops.models


revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, leadops.models.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        'crm_contacts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('crm_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('lead_id', sa.Integer(), nullable=True),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('written', sa.JSON(), nullable=True),
        _ts('written_at'),
        sa.Column('pending', sa.JSON(), nullable=True),
        _ts('queued_at'),
        sa.Column('attempts', sa.Integer(), nullable=False),
        _ts('not_before'),
        sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('read_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        _ts('read_at'),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('crm', 'crm_id', name='uq_crm_contacts_crm_id'),
    )
    op.create_index(
        'ix_crm_contacts_status_not_before', 'crm_contacts', ['status', 'not_before']
    )
    op.create_index(op.f('ix_crm_contacts_lead_id'), 'crm_contacts', ['lead_id'])
    op.create_table(
        'crm_owners',
        sa.Column('rep_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('owner_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        _ts('matched_at', nullable=False),
        sa.PrimaryKeyConstraint('rep_key'),
    )
    op.add_column(
        'crm_deals',
        sa.Column('crm_task_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE crm_deals DROP COLUMN crm_task_id')
    else:
        op.drop_column('crm_deals', 'crm_task_id')
    op.drop_table('crm_owners')
    op.drop_index(op.f('ix_crm_contacts_lead_id'), table_name='crm_contacts')
    op.drop_index('ix_crm_contacts_status_not_before', table_name='crm_contacts')
    op.drop_table('crm_contacts')
