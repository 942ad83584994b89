"""pass marks (incremental passes) and the indexes of the incremental no-opens pass

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leadops.models


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('pass_marks',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', leadops.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_id', sa.Integer(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('score_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_score_ledger_rule_event_at', ['rule', 'event_at'], unique=False)

    with op.batch_alter_table('touches', schema=None) as batch_op:
        batch_op.create_index('ix_touches_sent_at', ['sent_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('touches', schema=None) as batch_op:
        batch_op.drop_index('ix_touches_sent_at')

    with op.batch_alter_table('score_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_score_ledger_rule_event_at')

    op.drop_table('pass_marks')
