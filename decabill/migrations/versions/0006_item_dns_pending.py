"""subscription items: dns_pending_since (the A record could not be created at Cloudflare and is still owed;
the order recovery job creates it)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 23:30:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import decabill.db


revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('subscription_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dns_pending_since', decabill.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subscription_items', schema=None) as batch_op:
        batch_op.drop_column('dns_pending_since')
