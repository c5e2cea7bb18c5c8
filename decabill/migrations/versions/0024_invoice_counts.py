"""per-tenant invoice counter kept by triggers on `invoices` (insert, delete, truncate), backfilled, so the admin
invoice list's unfiltered total is one primary-key read instead of a count over every invoice of the tenant

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 21:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0024'
down_revision: Union[str, None] = '0023'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# PostgreSQL: the row trigger is a constraint trigger deferred to the commit, so a transaction holds the
# tenant's counter row locked only while it commits — a billing-day batch inserting hundreds of invoices does
# not make the other batches wait for its whole transaction. A TRUNCATE of `invoices` empties the counters.
POSTGRESQL = [
    """CREATE FUNCTION invoice_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO invoice_counts (tenant_id, invoices) VALUES (NEW.tenant_id, 1)
            ON CONFLICT (tenant_id) DO UPDATE SET invoices = invoice_counts.invoices + 1;
        ELSE
            UPDATE invoice_counts SET invoices = invoices - 1 WHERE tenant_id = OLD.tenant_id;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE CONSTRAINT TRIGGER invoices_counted AFTER INSERT OR DELETE ON invoices
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION invoice_counts_track()""",
    """CREATE FUNCTION invoice_counts_reset() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM invoice_counts;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER invoices_truncated AFTER TRUNCATE ON invoices
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_counts_reset()""",
]
# SQLite serialises writers anyway: plain row triggers (it has no TRUNCATE; DELETE fires the delete trigger).
SQLITE = [
    """CREATE TRIGGER invoices_counted_insert AFTER INSERT ON invoices BEGIN
        INSERT INTO invoice_counts (tenant_id, invoices) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET invoices = invoices + 1;
    END""",
    """CREATE TRIGGER invoices_counted_delete AFTER DELETE ON invoices BEGIN
        UPDATE invoice_counts SET invoices = invoices - 1 WHERE tenant_id = OLD.tenant_id;
    END""",
]


def upgrade() -> None:
    op.create_table(
        'invoice_counts',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('invoices', sa.Integer(), nullable=False, server_default='0'),
        sa.PrimaryKeyConstraint('tenant_id'),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # No invoice may be inserted between the backfill and the trigger (both commit together).
        op.execute("LOCK TABLE invoices IN SHARE MODE")
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)
    op.execute("INSERT INTO invoice_counts (tenant_id, invoices) SELECT tenant_id, count(*) FROM invoices GROUP BY tenant_id")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS invoices_truncated ON invoices")
        op.execute("DROP TRIGGER IF EXISTS invoices_counted ON invoices")
        op.execute("DROP FUNCTION IF EXISTS invoice_counts_reset()")
        op.execute("DROP FUNCTION IF EXISTS invoice_counts_track()")
    else:
        op.execute("DROP TRIGGER IF EXISTS invoices_counted_insert")
        op.execute("DROP TRIGGER IF EXISTS invoices_counted_delete")
    op.drop_table('invoice_counts')
