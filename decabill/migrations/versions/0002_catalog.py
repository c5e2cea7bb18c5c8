"""catalog: service types, service plans, availability snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:13:04.572983
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import decabill.db
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('service_types',
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('config_schema', _json(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'key', name='uq_service_types_tenant_key')
    )
    op.create_index(op.f('ix_service_types_created_at'), 'service_types', ['created_at'], unique=False)
    op.create_index(op.f('ix_service_types_tenant_id'), 'service_types', ['tenant_id'], unique=False)

    op.create_table('service_plans',
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('service_type_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('billing_interval_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('billing_interval_value', sa.Integer(), nullable=False),
    sa.Column('billing_day_of_month', sa.Integer(), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('min_commitment_days', sa.Integer(), nullable=False),
    sa.Column('notice_days', sa.Integer(), nullable=False),
    sa.Column('base_price', decabill.db.ExactDecimal(4), nullable=True),
    sa.Column('margin_percent', decabill.db.ExactDecimal(4), nullable=True),
    sa.Column('margin_fixed', decabill.db.ExactDecimal(4), nullable=True),
    sa.Column('provider_config_defaults', _json(), nullable=False),
    sa.Column('ordering_highlights', _json(), nullable=False),
    sa.Column('allow_customer_location_selection', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['service_type_id'], ['service_types.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_service_plans_created_at'), 'service_plans', ['created_at'], unique=False)
    op.create_index(op.f('ix_service_plans_tenant_id'), 'service_plans', ['tenant_id'], unique=False)
    op.create_index('ix_service_plans_tenant_type', 'service_plans', ['tenant_id', 'service_type_id'], unique=False)

    op.create_table('availability_snapshots',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('service_type_id', sa.Uuid(), nullable=True),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('server_type', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('is_available', sa.Boolean(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('raw_response', _json(), nullable=False),
    sa.Column('captured_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_availability_snapshots_captured_at'), 'availability_snapshots', ['captured_at'], unique=False)
    op.create_index(op.f('ix_availability_snapshots_tenant_id'), 'availability_snapshots', ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_availability_snapshots_tenant_id'), table_name='availability_snapshots')
    op.drop_index(op.f('ix_availability_snapshots_captured_at'), table_name='availability_snapshots')
    op.drop_table('availability_snapshots')
    op.drop_index('ix_service_plans_tenant_type', table_name='service_plans')
    op.drop_index(op.f('ix_service_plans_tenant_id'), table_name='service_plans')
    op.drop_index(op.f('ix_service_plans_created_at'), table_name='service_plans')
    op.drop_table('service_plans')
    op.drop_index(op.f('ix_service_types_tenant_id'), table_name='service_types')
    op.drop_index(op.f('ix_service_types_created_at'), table_name='service_types')
    op.drop_table('service_types')
