"""priority_models: models installed by `mail2case priority train`

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'priority_models',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('installed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('installed_by', sa.String(length=320), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('examples', sa.Integer(), nullable=False),
        sa.Column('site_examples', sa.Integer(), nullable=False),
        sa.Column('accuracy_before', sa.Float(), nullable=True),
        sa.Column('accuracy_after', sa.Float(), nullable=True),
        sa.Column('site_labels', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_priority_models')),
    )


def downgrade() -> None:
    op.drop_table('priority_models')
