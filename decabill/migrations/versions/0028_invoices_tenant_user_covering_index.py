"""index on invoices (tenant_id, user_id, created_at, id) in place of ix_invoices_tenant_user (tenant_id, user_id,
created_at): the admin search's e-mail branch reads the ids (and created_at) of the matched users' invoices from the
index alone (an Index Only Scan instead of one heap fetch per invoice: 1,508 -> 343 shared buffers for 1,176
invoices of 111 users at 100,000 invoices). It serves every read the old index served, and gives the order
`(created_at, id)`, either way, as a whole (docs/performance.md, "The invoices of a user from the index alone")

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 11:00:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0028'
down_revision: Union[str, None] = '0027'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD, NEW = "ix_invoices_tenant_user", "ix_invoices_tenant_user_created"


def upgrade() -> None:
    # the new index first: the user's invoices always have one to be read by
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(NEW, ['tenant_id', 'user_id', 'created_at', 'id'], unique=False)
        batch_op.drop_index(OLD)


def downgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(OLD, ['tenant_id', 'user_id', 'created_at'], unique=False)
        batch_op.drop_index(NEW)
