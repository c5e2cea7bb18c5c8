"""payment settlements: one row per payment applied to an invoice, UNIQUE (processor, payment_key), so that
several distinct webhook events about one payment settle it once

Revision ID: 0012
Revises: 0013
Create Date: 2026-12-04 14:45:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import decabill.db


revision: str = '0012'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('payment_settlements',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('processor', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('payment_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('invoice_id', sa.Uuid(), nullable=True),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('amount', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('settled_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('processor', 'payment_key', name='uq_payment_settlements_processor_payment')
    )
    with op.batch_alter_table('payment_settlements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_settlements_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_payment_settlements_tenant_invoice', ['tenant_id', 'invoice_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('payment_settlements', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_settlements_tenant_invoice')
        batch_op.drop_index(batch_op.f('ix_payment_settlements_tenant_id'))
    op.drop_table('payment_settlements')
