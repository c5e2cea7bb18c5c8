"""per-customer invoice counter, `invoice_user_counts`, kept by triggers on `invoices` (insert, delete, a change of
owner or tenant, truncate) and backfilled: the admin search counts the invoices of the customers whose e-mail matches
by one primary-key read per customer instead of reading every matched invoice (a term matching every e-mail of
100,000 invoices: 10,000 counter reads against 100,000 index entries; docs/performance.md, "Broad search terms")

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 10:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0030'
down_revision: Union[str, None] = '0029'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# PostgreSQL: deferred to the commit like 0024's tenant counter, so a customer's row is locked only while a
# transaction commits. The billing day's batches bill disjoint customers, so two commits never wait on each
# other's rows. A decrement never creates a row (a row missing or at 0 both mean none).
POSTGRESQL = [
    """CREATE FUNCTION invoice_user_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            UPDATE invoice_user_counts SET invoices = invoices - 1
            WHERE tenant_id = OLD.tenant_id AND user_id = OLD.user_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO invoice_user_counts (tenant_id, user_id, invoices) VALUES (NEW.tenant_id, NEW.user_id, 1)
            ON CONFLICT (tenant_id, user_id) DO UPDATE SET invoices = invoice_user_counts.invoices + 1;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE CONSTRAINT TRIGGER invoices_user_counted AFTER INSERT OR DELETE OR UPDATE OF tenant_id, user_id
    ON invoices DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION invoice_user_counts_track()""",
    """CREATE FUNCTION invoice_user_counts_reset() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM invoice_user_counts;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER invoices_truncated_user_counts AFTER TRUNCATE ON invoices
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_user_counts_reset()""",
]
SQLITE = [
    """CREATE TRIGGER invoices_user_counted_insert AFTER INSERT ON invoices BEGIN
        INSERT INTO invoice_user_counts (tenant_id, user_id, invoices) VALUES (NEW.tenant_id, NEW.user_id, 1)
        ON CONFLICT (tenant_id, user_id) DO UPDATE SET invoices = invoices + 1;
    END""",
    """CREATE TRIGGER invoices_user_counted_delete AFTER DELETE ON invoices BEGIN
        UPDATE invoice_user_counts SET invoices = invoices - 1
        WHERE tenant_id = OLD.tenant_id AND user_id = OLD.user_id;
    END""",
    """CREATE TRIGGER invoices_user_counted_update AFTER UPDATE OF tenant_id, user_id ON invoices BEGIN
        UPDATE invoice_user_counts SET invoices = invoices - 1
        WHERE tenant_id = OLD.tenant_id AND user_id = OLD.user_id;
        INSERT INTO invoice_user_counts (tenant_id, user_id, invoices) VALUES (NEW.tenant_id, NEW.user_id, 1)
        ON CONFLICT (tenant_id, user_id) DO UPDATE SET invoices = invoices + 1;
    END""",
]


def upgrade() -> None:
    op.create_table(
        'invoice_user_counts',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('invoices', sa.Integer(), nullable=False, server_default='0'),
        sa.PrimaryKeyConstraint('tenant_id', 'user_id'),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # No invoice may be inserted between the backfill and the trigger (both commit together).
        op.execute("LOCK TABLE invoices IN SHARE MODE")
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)
    op.execute("INSERT INTO invoice_user_counts (tenant_id, user_id, invoices) "
               "SELECT tenant_id, user_id, count(*) FROM invoices GROUP BY tenant_id, user_id")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS invoices_truncated_user_counts ON invoices")
        op.execute("DROP TRIGGER IF EXISTS invoices_user_counted ON invoices")
        op.execute("DROP FUNCTION IF EXISTS invoice_user_counts_reset()")
        op.execute("DROP FUNCTION IF EXISTS invoice_user_counts_track()")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS invoices_user_counted_{trigger}")
    op.drop_table('invoice_user_counts')
