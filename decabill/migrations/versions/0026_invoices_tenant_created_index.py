"""index on invoices (tenant_id, created_at, id) for the admin invoice page of one tenant, newest first: the
prepared statement's generic plan walked ix_invoices_created_at backwards and filtered the tenant, so a small
tenant among large ones read every invoice (158 ms for an empty tenant next to 100,000 invoices, issue #20)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 17:35:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0026'
down_revision: Union[str, None] = '0025'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_tenant_created', ['tenant_id', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_tenant_created')
