"""invoicing: invoices, invoice lines, usage records, the invoice audit log, mail deliveries; the foreign key
from open positions to the invoice that billed them

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:49:25.496250
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import decabill.db
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN_POSITION_INVOICE_FK = 'fk_open_positions_invoice_id_invoices'


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('invoice_audit_logs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('invoice_id', sa.Uuid(), nullable=True),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('process', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('level', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('actor_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('actor_user_id', sa.Uuid(), nullable=True),
    sa.Column('status_before', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('status_after', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('context', _json(), nullable=False),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('invoice_audit_logs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_audit_logs_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_invoice_audit_logs_tenant_invoice', ['tenant_id', 'invoice_id', 'created_at'], unique=False)

    op.create_table('mail_deliveries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('invoice_id', sa.Uuid(), nullable=True),
    sa.Column('subscription_id', sa.Uuid(), nullable=True),
    sa.Column('event_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('claimed_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'key', name='uq_mail_deliveries_tenant_key')
    )
    with op.batch_alter_table('mail_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_mail_deliveries_status', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_mail_deliveries_subscription_kind', ['tenant_id', 'subscription_id', 'kind', 'event_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_deliveries_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('invoices',
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('subscription_id', sa.Uuid(), nullable=True),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('invoice_number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('subtotal_net', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('tax_total', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('total_gross', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('amount_paid', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('balance_due', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('period_start', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('period_end', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('issued_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('paid_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('voided_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('void_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('credit_note_number', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.Column('seller', _json(), nullable=True),
    sa.Column('buyer', _json(), nullable=True),
    sa.Column('order_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('pdf_storage_key', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
    sa.Column('credit_note_storage_key', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
    sa.Column('payment_processor', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
    sa.Column('external_payment_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'invoice_number', name='uq_invoices_tenant_number')
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoices_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoices_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_invoices_tenant_status_due', ['tenant_id', 'status', 'due_date'], unique=False)
        batch_op.create_index('ix_invoices_tenant_subscription', ['tenant_id', 'subscription_id', 'created_at'], unique=False)
        batch_op.create_index('ix_invoices_tenant_user', ['tenant_id', 'user_id', 'created_at'], unique=False)

    op.create_table('usage_records',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('subscription_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('period_start', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('period_end', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('usage_source', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('usage_payload', _json(), nullable=False),
    sa.Column('amount', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('invoice_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usage_records_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_records_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_usage_records_tenant_subscription', ['tenant_id', 'subscription_id', 'created_at'], unique=False)
        batch_op.create_index('ix_usage_records_tenant_user_unbilled', ['tenant_id', 'user_id', 'invoice_id'], unique=False)

    op.create_table('invoice_lines',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('invoice_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('quantity', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('unit_price_net', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('tax_category', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('tax_rate', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('line_net', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('line_tax', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('line_gross', decabill.db.ExactDecimal(), nullable=False),
    sa.Column('subscription_id', sa.Uuid(), nullable=True),
    sa.Column('open_position_id', sa.Uuid(), nullable=True),
    sa.Column('usage_record_id', sa.Uuid(), nullable=True),
    sa.Column('period_start', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('period_end', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['open_position_id'], ['open_positions.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['usage_record_id'], ['usage_records.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('invoice_id', 'position', name='uq_invoice_lines_invoice_position'),
    sa.UniqueConstraint('open_position_id', name='uq_invoice_lines_open_position'),
    sa.UniqueConstraint('usage_record_id', name='uq_invoice_lines_usage_record')
    )
    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_lines_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_lines_subscription_id'), ['subscription_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_lines_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('open_positions', schema=None) as batch_op:
        batch_op.create_foreign_key(OPEN_POSITION_INVOICE_FK, 'invoices', ['invoice_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('open_positions', schema=None) as batch_op:
        batch_op.drop_constraint(OPEN_POSITION_INVOICE_FK, type_='foreignkey')

    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_lines_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_lines_subscription_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_lines_invoice_id'))

    op.drop_table('invoice_lines')
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_tenant_user_unbilled')
        batch_op.drop_index('ix_usage_records_tenant_subscription')
        batch_op.drop_index(batch_op.f('ix_usage_records_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_usage_records_created_at'))

    op.drop_table('usage_records')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_tenant_user')
        batch_op.drop_index('ix_invoices_tenant_subscription')
        batch_op.drop_index('ix_invoices_tenant_status_due')
        batch_op.drop_index(batch_op.f('ix_invoices_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_invoices_created_at'))

    op.drop_table('invoices')
    with op.batch_alter_table('mail_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mail_deliveries_tenant_id'))
        batch_op.drop_index('ix_mail_deliveries_subscription_kind')
        batch_op.drop_index('ix_mail_deliveries_status')

    op.drop_table('mail_deliveries')
    with op.batch_alter_table('invoice_audit_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_audit_logs_tenant_invoice')
        batch_op.drop_index(batch_op.f('ix_invoice_audit_logs_tenant_id'))

    op.drop_table('invoice_audit_logs')
