"""subscriptions: customer profiles, subscriptions, items, reserved hostnames, backorders, open positions,
job leases and number sequences

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:32:42.583506
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import decabill.db
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('job_leases',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('expires_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_job_leases_tenant_name')
    )
    op.create_index(op.f('ix_job_leases_tenant_id'), 'job_leases', ['tenant_id'], unique=False)

    op.create_table('number_sequences',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('last_value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_number_sequences_tenant_name')
    )
    op.create_index(op.f('ix_number_sequences_tenant_id'), 'number_sequences', ['tenant_id'], unique=False)

    op.create_table('customer_profiles',
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('first_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('last_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('company', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('address_line1', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('address_line2', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('postal_code', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
    sa.Column('city', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
    sa.Column('stripe_customer_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', name='uq_customer_profiles_user')
    )
    op.create_index(op.f('ix_customer_profiles_created_at'), 'customer_profiles', ['created_at'], unique=False)
    op.create_index(op.f('ix_customer_profiles_tenant_id'), 'customer_profiles', ['tenant_id'], unique=False)

    op.create_table('subscriptions',
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('plan_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('current_period_start', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('current_period_end', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_billing_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancel_effective_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resumed_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('activated_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('period_price', decabill.db.ExactDecimal(4), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['service_plans.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'number', name='uq_subscriptions_tenant_number')
    )
    op.create_index(op.f('ix_subscriptions_created_at'), 'subscriptions', ['created_at'], unique=False)
    op.create_index(op.f('ix_subscriptions_tenant_id'), 'subscriptions', ['tenant_id'], unique=False)
    op.create_index('ix_subscriptions_tenant_status_billing', 'subscriptions', ['tenant_id', 'status', 'next_billing_at'], unique=False)
    op.create_index('ix_subscriptions_tenant_status_cancel', 'subscriptions', ['tenant_id', 'status', 'cancel_effective_at'], unique=False)
    op.create_index('ix_subscriptions_tenant_user', 'subscriptions', ['tenant_id', 'user_id', 'created_at'], unique=False)

    op.create_table('backorders',
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('subscription_id', sa.Uuid(), nullable=False),
    sa.Column('service_type_id', sa.Uuid(), nullable=False),
    sa.Column('plan_id', sa.Uuid(), nullable=False),
    sa.Column('requested_config_snapshot', sa.Text(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('failure_reason', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('provider_errors', _json(), nullable=False),
    sa.Column('preferred_alternatives', _json(), nullable=False),
    sa.Column('retry_after', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['service_plans.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['service_type_id'], ['service_types.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscription_id', name='uq_backorders_subscription')
    )
    op.create_index(op.f('ix_backorders_created_at'), 'backorders', ['created_at'], unique=False)
    op.create_index(op.f('ix_backorders_tenant_id'), 'backorders', ['tenant_id'], unique=False)
    op.create_index('ix_backorders_tenant_status_retry', 'backorders', ['tenant_id', 'status', 'retry_after'], unique=False)
    op.create_index('ix_backorders_tenant_user', 'backorders', ['tenant_id', 'user_id', 'created_at'], unique=False)

    op.create_table('open_positions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('subscription_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('period_start', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('period_end', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('amount', decabill.db.ExactDecimal(4), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('invoice_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscription_id', 'period_start', name='uq_open_positions_subscription_period')
    )
    op.create_index(op.f('ix_open_positions_created_at'), 'open_positions', ['created_at'], unique=False)
    op.create_index(op.f('ix_open_positions_tenant_id'), 'open_positions', ['tenant_id'], unique=False)
    op.create_index('ix_open_positions_tenant_user_unbilled', 'open_positions', ['tenant_id', 'user_id', 'invoice_id'], unique=False)

    op.create_table('subscription_items',
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('subscription_id', sa.Uuid(), nullable=False),
    sa.Column('service_type_id', sa.Uuid(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('service', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('server_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('config_snapshot', sa.Text(), nullable=True),
    sa.Column('provisioning_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('provider_reference', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('hostname', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('server_info_snapshot', _json(), nullable=True),
    sa.Column('ssh_private_key', sa.Text(), nullable=True),
    sa.Column('ssh_public_key', sa.Text(), nullable=True),
    sa.Column('ssh_host_public_key', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['service_type_id'], ['service_types.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_subscription_items_created_at'), 'subscription_items', ['created_at'], unique=False)
    op.create_index(op.f('ix_subscription_items_service_type_id'), 'subscription_items', ['service_type_id'], unique=False)
    op.create_index(op.f('ix_subscription_items_subscription_id'), 'subscription_items', ['subscription_id'], unique=False)
    op.create_index(op.f('ix_subscription_items_tenant_id'), 'subscription_items', ['tenant_id'], unique=False)

    op.create_table('reserved_hostnames',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('hostname', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('subscription_item_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscription_item_id'], ['subscription_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('hostname', name='uq_reserved_hostnames_hostname'),
    sa.UniqueConstraint('subscription_item_id', name='uq_reserved_hostnames_item')
    )
    op.create_index(op.f('ix_reserved_hostnames_tenant_id'), 'reserved_hostnames', ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_reserved_hostnames_tenant_id'), table_name='reserved_hostnames')
    op.drop_table('reserved_hostnames')
    op.drop_index(op.f('ix_subscription_items_tenant_id'), table_name='subscription_items')
    op.drop_index(op.f('ix_subscription_items_subscription_id'), table_name='subscription_items')
    op.drop_index(op.f('ix_subscription_items_service_type_id'), table_name='subscription_items')
    op.drop_index(op.f('ix_subscription_items_created_at'), table_name='subscription_items')
    op.drop_table('subscription_items')
    op.drop_index('ix_open_positions_tenant_user_unbilled', table_name='open_positions')
    op.drop_index(op.f('ix_open_positions_tenant_id'), table_name='open_positions')
    op.drop_index(op.f('ix_open_positions_created_at'), table_name='open_positions')
    op.drop_table('open_positions')
    op.drop_index('ix_backorders_tenant_user', table_name='backorders')
    op.drop_index('ix_backorders_tenant_status_retry', table_name='backorders')
    op.drop_index(op.f('ix_backorders_tenant_id'), table_name='backorders')
    op.drop_index(op.f('ix_backorders_created_at'), table_name='backorders')
    op.drop_table('backorders')
    op.drop_index('ix_subscriptions_tenant_user', table_name='subscriptions')
    op.drop_index('ix_subscriptions_tenant_status_cancel', table_name='subscriptions')
    op.drop_index('ix_subscriptions_tenant_status_billing', table_name='subscriptions')
    op.drop_index(op.f('ix_subscriptions_tenant_id'), table_name='subscriptions')
    op.drop_index(op.f('ix_subscriptions_created_at'), table_name='subscriptions')
    op.drop_table('subscriptions')
    op.drop_index(op.f('ix_customer_profiles_tenant_id'), table_name='customer_profiles')
    op.drop_index(op.f('ix_customer_profiles_created_at'), table_name='customer_profiles')
    op.drop_table('customer_profiles')
    op.drop_index(op.f('ix_number_sequences_tenant_id'), table_name='number_sequences')
    op.drop_table('number_sequences')
    op.drop_index(op.f('ix_job_leases_tenant_id'), table_name='job_leases')
    op.drop_table('job_leases')
