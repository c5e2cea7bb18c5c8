"""The admin search matches an invoice's owner id on `users`, not on `invoices` (PostgreSQL): a trigram index on the
text of `users.id` replaces 0020's `ix_invoices_user_id_trgm`, which held the same customer's id once per invoice.
At 100,000 invoices and 10,000 customers that index was 16 MB (the table itself 24 MB) and made inserting 100,000
invoices take ~1.5 s instead of ~0.07 s; a term of two hex digits read every invoice's owner id (docs/performance.md,
"Owner ids matched per customer"). Without pg_trgm (0020 then made no trigram index) nothing is made.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 12:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0032'
down_revision: Union[str, None] = '0031'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# the expressions InvoiceRepository's search matches with `LIKE '%…%'` (`_id_text`, lower-cased as 0020's)
BY_USER = "ix_users_id_trgm", "users USING gin (lower(CAST(id AS VARCHAR)) gin_trgm_ops)"
BY_INVOICE = "ix_invoices_user_id_trgm", "invoices USING gin (lower(CAST(user_id AS VARCHAR)) gin_trgm_ops)"


def _trigrams_available() -> bool:
    bind = op.get_bind()
    return bind.dialect.name == "postgresql" and bind.execute(
        sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first() is not None


def _replace(made: tuple[str, str], dropped: tuple[str, str]) -> None:
    if _trigrams_available():
        op.execute(f"CREATE INDEX IF NOT EXISTS {made[0]} ON {made[1]}")  # first: the search always has one
        op.execute(f"DROP INDEX IF EXISTS {dropped[0]}")


def upgrade() -> None:
    _replace(BY_USER, BY_INVOICE)


def downgrade() -> None:
    _replace(BY_INVOICE, BY_USER)
