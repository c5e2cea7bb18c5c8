"""GIN index on the one- and two-character pieces of users' e-mails (PostgreSQL) for admin search terms of one or two
characters that only an e-mail can hold ("xy", "q", "h-"): no trigram index serves a term that short, so each such
search read every customer's e-mail, in time growing with the customers (7 ms at 10,000, 93-102 ms at 100,000, most
of them for no match: docs/performance.md "Ten times the rows"). With the pieces indexed it reads the entries of its
own piece alone.

`decabill_short_grams(text)` is the set of the text's pieces of one and two characters. For a term of that length,
the e-mail holding the term and the e-mail's pieces containing it are the same test. The function is immutable (an
index expression must be) and written with a FROM, so that PostgreSQL never inlines it into a query and the
query's expression stays the index's. The users table takes few writes, so the index merges each at once
(`fastupdate = off`, as 0025). SQLite reads its (small) table.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 19:10:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0034'
down_revision: Union[str, None] = '0033'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

NAME = "ix_users_email_short_grams"
FUNCTION = "decabill_short_grams"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        CREATE OR REPLACE FUNCTION {FUNCTION}(value text) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
            SELECT coalesce(array_agg(DISTINCT substr(value, position, width)), '{{}}')
            FROM generate_series(1, length(value)) AS position, generate_series(1, 2) AS width
            WHERE position + width - 1 <= length(value)
        $$""")
    op.execute(f"CREATE INDEX IF NOT EXISTS {NAME} ON users USING gin ({FUNCTION}(lower(email)))"
               " WITH (fastupdate = off)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {NAME}")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}(text)")
