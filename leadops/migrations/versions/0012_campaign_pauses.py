"""campaign pauses: who paused and resumed a campaign, when and why

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leadops.models


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('campaign_pauses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('paused_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paused_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('pause_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('resumed_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resumed_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('resume_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('campaign_pauses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_pauses_campaign'), ['campaign'], unique=False)
        batch_op.create_index('uq_campaign_pauses_one_open', ['campaign'], unique=True, postgresql_where=sa.text('resumed_at IS NULL'), sqlite_where=sa.text('resumed_at IS NULL'))


def downgrade() -> None:
    # Touches held by a pause go back to plain pending: the previous version sends them
    # at their time (it knows no pauses).
    op.execute(
        "UPDATE touches SET hold_reason = NULL WHERE status = 'pending' "
        "AND hold_reason = 'campaign_paused'"
    )
    with op.batch_alter_table('campaign_pauses', schema=None) as batch_op:
        batch_op.drop_index('uq_campaign_pauses_one_open', postgresql_where=sa.text('resumed_at IS NULL'), sqlite_where=sa.text('resumed_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_campaign_pauses_campaign'))
    op.drop_table('campaign_pauses')
