"""quarantined files and lead field issues

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leadops.models


revision: str = '0009'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('quarantined_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('stored_path', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('checksum', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('resolution', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quarantined_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantined_files_checksum'), ['checksum'], unique=False)
        batch_op.create_index(batch_op.f('ix_quarantined_files_status'), ['status'], unique=False)

    op.create_table('lead_field_issues',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('field', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('source_ref', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('created_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lead_field_issues', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_field_issues_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_field_issues_resolved_at'), ['resolved_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('lead_field_issues', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_field_issues_resolved_at'))
        batch_op.drop_index(batch_op.f('ix_lead_field_issues_lead_id'))

    op.drop_table('lead_field_issues')
    with op.batch_alter_table('quarantined_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantined_files_status'))
        batch_op.drop_index(batch_op.f('ix_quarantined_files_checksum'))

    op.drop_table('quarantined_files')
