"""predictive score: trained models and each lead's predictive score

Adds the tables `predictive_models` (one row per training run: label, window, training
window, coefficients as JSON, backtest metrics, mode) and `lead_predictions` (each lead's
latest probability, mode, model version and factors). Nothing from before is changed.
Downgrading drops both tables (a retrain and a rescore make them again).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leadops.models


revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'predictive_models',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('algorithm', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('window_days', sa.Integer(), nullable=False),
        sa.Column('after_days', sa.Integer(), nullable=False),
        sa.Column('train_from', leadops.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('train_to', leadops.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('leads', sa.Integer(), nullable=False),
        sa.Column('positives', sa.Integer(), nullable=False),
        sa.Column('gate_passed', sa.Boolean(), nullable=False),
        sa.Column('beats_rules', sa.Boolean(), nullable=False),
        sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column('spec', sa.JSON(), nullable=True),
        sa.Column('metrics', sa.JSON(), nullable=True),
        sa.Column('seed', sa.Integer(), nullable=False),
        sa.Column('trained_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('mode_changed_at', leadops.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('version'),
    )
    op.create_table(
        'lead_predictions',
        sa.Column('lead_id', sa.Integer(), nullable=False),
        sa.Column('model_version', sa.Integer(), nullable=False),
        sa.Column('probability', sa.Float(), nullable=False),
        sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('factors', sa.JSON(), nullable=False),
        sa.Column('scored_at', leadops.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id']),
        sa.PrimaryKeyConstraint('lead_id'),
    )


def downgrade() -> None:
    op.drop_table('lead_predictions')
    op.drop_table('predictive_models')
