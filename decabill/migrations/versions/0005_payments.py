"""payments: payment attempts (one per checkout session, idempotency key derived from the attempt) and
received webhook events (UNIQUE processor + event id)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 18:57:51.528285
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import decabill.db


revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('payment_webhook_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('processor', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('result', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('invoice_id', sa.Uuid(), nullable=True),
    sa.Column('attempt_id', sa.Uuid(), nullable=True),
    sa.Column('received_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('processor', 'event_id', name='uq_payment_webhook_events_processor_event')
    )
    with op.batch_alter_table('payment_webhook_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_webhook_events_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_payment_webhook_events_tenant_invoice', ['tenant_id', 'invoice_id'], unique=False)

    op.create_table('payment_attempts',
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('invoice_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('processor', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('amount', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('amount_paid', decabill.db.ExactDecimal(), nullable=True),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('request_fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('checkout_url', sa.Text(), nullable=True),
    sa.Column('expires_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failure_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key', name='uq_payment_attempts_idempotency_key'),
    sa.UniqueConstraint('processor', 'external_id', name='uq_payment_attempts_processor_external')
    )
    with op.batch_alter_table('payment_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_attempts_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_attempts_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_payment_attempts_tenant_invoice', ['tenant_id', 'invoice_id', 'status', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('payment_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_attempts_tenant_invoice')
        batch_op.drop_index(batch_op.f('ix_payment_attempts_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_payment_attempts_created_at'))

    op.drop_table('payment_attempts')
    with op.batch_alter_table('payment_webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_webhook_events_tenant_invoice')
        batch_op.drop_index(batch_op.f('ix_payment_webhook_events_tenant_id'))

    op.drop_table('payment_webhook_events')
