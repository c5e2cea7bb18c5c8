"""dunning: the tenant's policy (dunning_policies), the steps applied per invoice (dunning_steps, unique per
invoice and step), paused customers (dunning_pauses), suspended customers (customer_suspensions), unbilled
suspended spans (suspension_periods); invoices.dunning_level/_action/_applied_at, subscriptions.suspended_at,
subscription_items.stopped_for_suspension_at

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-04 14:27:07.741547
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import decabill.db
from sqlalchemy.dialects import postgresql

revision: str = '0018'
down_revision: Union[str, None] = '0014'  # chained after main's 0020 at the merge (issued as 0011)
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('dunning_policies',
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('steps', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('bill_while_suspended', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', name='uq_dunning_policies_tenant')
    )
    with op.batch_alter_table('dunning_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dunning_policies_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_dunning_policies_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('customer_suspensions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('invoice_id', sa.Uuid(), nullable=True),
    sa.Column('invoice_number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('billable', sa.Boolean(), nullable=False),
    sa.Column('suspended_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', name='uq_customer_suspensions_user')
    )
    with op.batch_alter_table('customer_suspensions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_suspensions_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('dunning_pauses',
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('paused_until', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', name='uq_dunning_pauses_user')
    )
    with op.batch_alter_table('dunning_pauses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dunning_pauses_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_dunning_pauses_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('suspension_periods',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('subscription_id', sa.Uuid(), nullable=False),
    sa.Column('started_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('suspension_periods', schema=None) as batch_op:
        batch_op.create_index('ix_suspension_periods_subscription', ['subscription_id', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_suspension_periods_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('dunning_steps',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('invoice_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('applied_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('invoice_id', 'days', 'action', name='uq_dunning_steps_invoice_step')
    )
    with op.batch_alter_table('dunning_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dunning_steps_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_dunning_steps_tenant_user', ['tenant_id', 'user_id'], unique=False)

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dunning_level', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('dunning_action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('dunning_applied_at', decabill.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('subscription_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stopped_for_suspension_at', decabill.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suspended_at', decabill.db.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('suspended_at')

    with op.batch_alter_table('subscription_items', schema=None) as batch_op:
        batch_op.drop_column('stopped_for_suspension_at')

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('dunning_applied_at')
        batch_op.drop_column('dunning_action')
        batch_op.drop_column('dunning_level')

    with op.batch_alter_table('dunning_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_dunning_steps_tenant_user')
        batch_op.drop_index(batch_op.f('ix_dunning_steps_tenant_id'))

    op.drop_table('dunning_steps')
    with op.batch_alter_table('suspension_periods', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suspension_periods_tenant_id'))
        batch_op.drop_index('ix_suspension_periods_subscription')

    op.drop_table('suspension_periods')
    with op.batch_alter_table('dunning_pauses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dunning_pauses_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_dunning_pauses_created_at'))

    op.drop_table('dunning_pauses')
    with op.batch_alter_table('customer_suspensions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_suspensions_tenant_id'))

    op.drop_table('customer_suspensions')
    with op.batch_alter_table('dunning_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dunning_policies_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_dunning_policies_created_at'))

    op.drop_table('dunning_policies')
