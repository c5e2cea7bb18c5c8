"""mail delivery lease: the sender's claim token and lease, and when its SMTP transaction started (issue #15)

Revision ID: 0014
Revises: 0017 (given as 0011; re-chained after merging main, whose head is 0020)
Create Date: 2026-12-04 14:55:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import decabill.db


revision: str = '0014'
down_revision: Union[str, None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('mail_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_token', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('lease_until', decabill.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('smtp_started_at', decabill.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mail_deliveries', schema=None) as batch_op:
        batch_op.drop_column('smtp_started_at')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('claim_token')
