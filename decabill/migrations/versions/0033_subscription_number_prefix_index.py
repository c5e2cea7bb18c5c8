"""btree index on subscriptions (number) in byte order (PostgreSQL) for the admin search by a
subscription-number prefix (`SUB-00000042`): the trigram index read 11,119 candidates for one match at 200,000
subscriptions, and their rows to recheck (13 ms); a range on this index reads only the matching entries (issue #20,
docs/performance.md "Ten times the rows").

Numbers are written in upper case (`SUB-<digits>`), so the raw column is compared with the term upper-cased. No tenant
column leads: the search reaches subscriptions from the tenant's invoices, and reads the range before joining them.
SQLite compares text byte-wise (BINARY) and serves such a range with an index on the column alone, made there too.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 17:10:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0033'
down_revision: Union[str, None] = '0032'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

NAME = "ix_subscriptions_number_prefix"


def upgrade() -> None:
    # text_pattern_ops: the `~>=~` / `~<~` operators of the search's range, whatever the database's collation
    op_class = " text_pattern_ops" if op.get_bind().dialect.name == "postgresql" else ""
    op.execute(f"CREATE INDEX IF NOT EXISTS {NAME} ON subscriptions (number{op_class})")


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {NAME}")
