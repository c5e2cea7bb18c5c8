"""trigram indexes for the admin invoice search on PostgreSQL (invoice number, subscription number, email,
invoice id, user id), so `GET /admin/billing/invoices?search=` does not read every invoice of the tenant

Revision ID: 0020
Revises: 0011
Create Date: 2026-12-04 14:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0020'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The expressions are exactly those InvoiceRepository.search_page matches with `LIKE '%…%'`.
INDEXES = {
    "ix_invoices_number_trgm": "invoices USING gin (lower(invoice_number) gin_trgm_ops)",
    "ix_invoices_id_trgm": "invoices USING gin (lower(CAST(id AS VARCHAR)) gin_trgm_ops)",
    "ix_invoices_user_id_trgm": "invoices USING gin (lower(CAST(user_id AS VARCHAR)) gin_trgm_ops)",
    "ix_subscriptions_number_trgm": "subscriptions USING gin (lower(number) gin_trgm_ops)",
    "ix_users_email_trgm": "users USING gin (lower(email) gin_trgm_ops)",
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite (the embedded default) scans; its tables are small
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it. Where it is not
    # available the search still works, only without these indexes.
    with bind.begin_nested() as savepoint:
        try:
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except sa.exc.DBAPIError:
            savepoint.rollback()
            return
    for name, target in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
