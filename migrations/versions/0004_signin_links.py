"""signin_links: the board's one-time sign-in links (single use, rate-limited per address)

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('signin_links',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signin_links'))
    )
    with op.batch_alter_table('signin_links', schema=None) as batch_op:
        batch_op.create_index('ix_signin_links_address_issued', ['address', 'issued_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('signin_links', schema=None) as batch_op:
        batch_op.drop_index('ix_signin_links_address_issued')
    op.drop_table('signin_links')
