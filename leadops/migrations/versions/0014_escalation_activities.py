"""escalation activities: what reps do from the hand-off page (acknowledge, contact,
notes, outcomes), and on each escalation when the speed-to-lead clock started, the first
contact and how it ended

Existing escalations get `started_at` (the lead's creation for a lead that reached SQL,
the escalation's own time for a hand-raise) and one `acknowledged` activity each for an
acknowledgement already recorded. Downgrading turns `disqualified` escalations into
`closed_lost` (the previous version knows no such status).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leadops.models


revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('escalation_activities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('escalation_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=True),
    sa.Column('retry_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('request_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('at', leadops.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['escalation_assignments.id'], ),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], ),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('escalation_id', 'request_key', name='uq_escalation_activities_once')
    )
    with op.batch_alter_table('escalation_activities', schema=None) as batch_op:
        batch_op.create_index('ix_escalation_activities_escalation_at', ['escalation_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_escalation_activities_lead_id'), ['lead_id'], unique=False)

    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('started_at', leadops.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('first_contact_at', leadops.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('first_contact_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('first_contact_channel', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
        batch_op.add_column(sa.Column('outcome_reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.add_column(sa.Column('amount_cents', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('retry_at', leadops.models.UTCDateTime(timezone=True), nullable=True))

    op.execute(
        "UPDATE escalations SET started_at = CASE WHEN trigger = 'sql_threshold' "
        "THEN (SELECT leads.created_at FROM leads WHERE leads.id = escalations.lead_id) "
        "ELSE created_at END"
    )
    op.execute(
        "INSERT INTO escalation_activities "
        "(escalation_id, lead_id, assignment_id, kind, by, at) "
        "SELECT id, lead_id, assignment_id, 'acknowledged', "
        "COALESCE(acknowledged_by, 'unknown'), acknowledged_at "
        "FROM escalations WHERE acknowledged_at IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("UPDATE escalations SET status = 'closed_lost' WHERE status = 'disqualified'")
    # The activities go first: they reference escalations, which SQLite rebuilds below.
    with op.batch_alter_table('escalation_activities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_escalation_activities_lead_id'))
        batch_op.drop_index('ix_escalation_activities_escalation_at')

    op.drop_table('escalation_activities')
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
        batch_op.drop_column('amount_cents')
        batch_op.drop_column('outcome_reason')
        batch_op.drop_column('first_contact_channel')
        batch_op.drop_column('first_contact_by')
        batch_op.drop_column('first_contact_at')
        batch_op.drop_column('started_at')
