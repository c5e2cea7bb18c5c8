"""btree index on invoices (tenant_id, lower(invoice_number)) for the admin search by an invoice-number prefix
(`INV-2026-0001`): the trigram index intersects long posting lists for such a term (`inv`, `202`, `026` are in
every number: ~3 ms at 100,000 invoices); a range on this index reads only the matching entries (issue #20)

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 19:20:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0027'
down_revision: Union[str, None] = '0026'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The expression is exactly the one InvoiceRepository's number-prefix branch compares. text_pattern_ops on
# PostgreSQL: byte-wise order (the `~>=~` / `~<~` operators the branch uses), whatever the database's collation;
# SQLite compares text byte-wise (BINARY) anyway.
NAME = "ix_invoices_tenant_number_prefix"


def upgrade() -> None:
    op_class = " text_pattern_ops" if op.get_bind().dialect.name == "postgresql" else ""
    op.execute(f"CREATE INDEX IF NOT EXISTS {NAME} ON invoices (tenant_id, lower(invoice_number){op_class})")


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {NAME}")
