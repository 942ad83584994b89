"""crm deals: the CRM's deals, the revenue truth

Adds the table `crm_deals`: one row per deal in the CRM, created by the write-back on
escalation (a unique `leadops_key`) or read back from the CRM by intake (a unique CRM id),
linked to its lead and escalation. Nothing from before is changed. Downgrading drops the
table and the deals it held (intake reads them again from the CRM).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leadops.models


revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'crm_deals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('crm_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('leadops_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('lead_id', sa.Integer(), nullable=True),
        sa.Column('escalation_id', sa.Integer(), nullable=True),
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column('pipeline', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=True),
        sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.Column('owner_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('rep_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('opened_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('closed_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('crm_modified_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id']),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('crm', 'crm_id', name='uq_crm_deals_crm_id'),
        sa.UniqueConstraint('leadops_key', name='uq_crm_deals_leadops_key'),
    )
    op.create_index('ix_crm_deals_status_closed', 'crm_deals', ['status', 'closed_at'], unique=False)
    op.create_index(op.f('ix_crm_deals_lead_id'), 'crm_deals', ['lead_id'], unique=False)
    op.create_index(op.f('ix_crm_deals_escalation_id'), 'crm_deals', ['escalation_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_crm_deals_escalation_id'), table_name='crm_deals')
    op.drop_index(op.f('ix_crm_deals_lead_id'), table_name='crm_deals')
    op.drop_index('ix_crm_deals_status_closed', table_name='crm_deals')
    op.drop_table('crm_deals')
