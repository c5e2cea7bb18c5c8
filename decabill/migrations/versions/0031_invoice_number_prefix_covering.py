"""ix_invoices_tenant_number_prefix (0027) on PostgreSQL made covering: INCLUDE (invoice_number). PostgreSQL answers a
condition on an indexed expression from the index alone only when the columns it is computed from are in the index
too; with the number included, the admin search counts the invoices whose number starts with a term by an Index
Only Scan (the prefix of every number at 100,000 invoices: a sequential scan of ~80 ms -> ~20 ms; docs/performance.md,
"Broad search terms"). SQLite has no INCLUDE and keeps 0027's index.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 10:10:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0031'
down_revision: Union[str, None] = '0030'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

NAME, BUILDING = "ix_invoices_tenant_number_prefix", "ix_invoices_tenant_number_prefix_new"
EXPRESSION = "(tenant_id, lower(invoice_number) text_pattern_ops)"  # 0027's, exactly


def _replace(include: str) -> None:
    # the new index first, so the search always has one to read
    op.execute(f"CREATE INDEX {BUILDING} ON invoices {EXPRESSION}{include}")
    op.execute(f"DROP INDEX {NAME}")
    op.execute(f"ALTER INDEX {BUILDING} RENAME TO {NAME}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _replace(" INCLUDE (invoice_number)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _replace("")
