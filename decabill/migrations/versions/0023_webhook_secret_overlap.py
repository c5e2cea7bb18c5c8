"""webhook endpoints keep their replaced signing secret for the rotation overlap (previous_secret,
previous_secret_until)

Revision ID: 0023
Revises: 0018
Create Date: 2026-12-04 19:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import decabill.db

revision: str = '0023'
down_revision: Union[str, None] = '0018'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_endpoints') as batch:
        batch.add_column(sa.Column('previous_secret', sa.Text(), nullable=True))
        batch.add_column(sa.Column('previous_secret_until', decabill.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhook_endpoints') as batch:
        batch.drop_column('previous_secret_until')
        batch.drop_column('previous_secret')
