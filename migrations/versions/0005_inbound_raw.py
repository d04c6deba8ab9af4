"""inbound_raw: the raw mail in a table of its own, apart from the status columns

SQLite rewrites a whole row on UPDATE, and the process stage updates an inbound row's
status, attempts and claimed_at when it claims the message and again when it settles
it: with the mail in the same row, every message was written to the WAL three times.

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inbound_raw',
    sa.Column('inbound_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound.id'], name=op.f('fk_inbound_raw_inbound_id_inbound')),
    sa.PrimaryKeyConstraint('inbound_id', name=op.f('pk_inbound_raw'))
    )
    op.execute('INSERT INTO inbound_raw (inbound_id, raw) SELECT id, raw FROM inbound')
    # SQLite (3.35 and later) drops a plain column in place; no table copy, so the rows
    # that now refer to inbound are not disturbed.
    op.drop_column('inbound', 'raw')


def downgrade() -> None:
    empty = "X''" if op.get_bind().dialect.name == 'sqlite' else "''::bytea"
    op.add_column('inbound', sa.Column('raw', sa.LargeBinary(), nullable=False, server_default=sa.text(empty)))
    op.execute('UPDATE inbound SET raw = (SELECT raw FROM inbound_raw WHERE inbound_raw.inbound_id = inbound.id)')
    op.drop_table('inbound_raw')
