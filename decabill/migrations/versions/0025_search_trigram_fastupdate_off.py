"""the admin search's trigram indexes on users' emails and subscription numbers without GIN's pending list
(`fastupdate = off`): a search read every entry not yet merged into the index (milliseconds per request until a
vacuum), while those tables take few inserts. The invoice indexes keep it: the billing day inserts invoices in
bulk and merging each one at once would slow it; autovacuum empties their pending lists.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 17:15:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0025'
down_revision: Union[str, None] = '0024'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Created by migration 0020 only where pg_trgm is available: hence IF EXISTS.
INDEXES = ("ix_users_email_trgm", "ix_subscriptions_number_trgm")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no trigram indexes
    for name in INDEXES:
        op.execute(f"ALTER INDEX IF EXISTS {name} SET (fastupdate = off)")
        # what is already pending is merged now, not at the next vacuum
        op.execute(f"SELECT gin_clean_pending_list(to_regclass('{name}')) WHERE to_regclass('{name}') IS NOT NULL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"ALTER INDEX IF EXISTS {name} RESET (fastupdate)")
