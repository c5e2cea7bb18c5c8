"""a version of each tenant's admin invoice list, `invoice_counts.list_version`, changed by the database itself at the
commit of every transaction that changes what the list shows: an invoice inserted, deleted or updated in a listed
column, an owner's email, a subscription's number. A process keeps the admin pages it answered with the version they
were read at and serves one again while the version is unchanged (decabill/admin/page_cache.py).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 02:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0029'
down_revision: Union[str, None] = '0028'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# What the list shows of an invoice and what its search matches (InvoiceRepository.LISTED, invoice_number among
# them): an update that sets none of these leaves the list as it was. tests/admin/test_page_cache.py holds this
# list to LISTED.
INVOICE_COLUMNS = ("id", "tenant_id", "subscription_id", "user_id", "invoice_number", "status", "balance_due",
                   "created_at", "due_date", "credit_note_number", "tax_rule", "dunning_level", "dunning_action",
                   "dunning_applied_at")

# PostgreSQL only: the admin pages are cached there (SQLite's embedded server reads them directly).
# * Each new version is drawn from a sequence, so a version never comes back (not after a TRUNCATE, which empties
#   `invoice_counts`: a missing row reads as version 0, which no drawn value equals).
# * The row triggers are constraint triggers deferred to the commit: the tenant's row is locked only while the
#   transaction commits (a billing-day batch changing hundreds of invoices does not hold it for its whole run),
#   and the new version becomes visible together with the changes it stands for.
# * Once per tenant and transaction: the first row event of the tenant at the commit draws the version and notes
#   the tenant in a setting local to the transaction (a JSON array of the tenants changed); the other rows of the
#   tenant find it there and return.
# * Only an inserted invoice creates the tenant's row (0024's trigger counts it in the same row, whichever fires
#   first). Without a row the tenant has no invoice (0024's counter row exists from the first one on; a TRUNCATE
#   removes both), so its list is empty whatever else changes: the version stays 0 and nothing is noted.
POSTGRESQL = [
    "CREATE SEQUENCE invoice_list_versions",
    """CREATE FUNCTION invoice_list_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        tenant text := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END;
        noted jsonb := COALESCE(NULLIF(current_setting('decabill.invoice_list_changed', true), ''), '[]')::jsonb;
    BEGIN
        IF NOT noted ? tenant THEN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO invoice_counts (tenant_id, invoices, list_version)
                VALUES (tenant, 0, nextval('invoice_list_versions'))
                ON CONFLICT (tenant_id) DO UPDATE SET list_version = EXCLUDED.list_version;
            ELSE
                UPDATE invoice_counts SET list_version = nextval('invoice_list_versions') WHERE tenant_id = tenant;
            END IF;
            IF FOUND THEN
                PERFORM set_config('decabill.invoice_list_changed', (noted || to_jsonb(tenant))::text, true);
            END IF;
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE CONSTRAINT TRIGGER invoices_list_changed
    AFTER INSERT OR DELETE OR UPDATE OF {", ".join(INVOICE_COLUMNS)} ON invoices
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION invoice_list_changed()""",
    """CREATE CONSTRAINT TRIGGER users_list_changed AFTER DELETE OR UPDATE OF email ON users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION invoice_list_changed()""",
    """CREATE CONSTRAINT TRIGGER subscriptions_list_changed AFTER DELETE OR UPDATE OF number ON subscriptions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION invoice_list_changed()""",
]


def upgrade() -> None:
    op.add_column('invoice_counts', sa.Column('list_version', sa.BigInteger(), nullable=False, server_default='0'))
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS subscriptions_list_changed ON subscriptions")
        op.execute("DROP TRIGGER IF EXISTS users_list_changed ON users")
        op.execute("DROP TRIGGER IF EXISTS invoices_list_changed ON invoices")
        op.execute("DROP FUNCTION IF EXISTS invoice_list_changed()")
        op.execute("DROP SEQUENCE IF EXISTS invoice_list_versions")
    # in place on SQLite too (3.35+): a batch copy of the table would trip over 0024's triggers on its name
    op.execute("ALTER TABLE invoice_counts DROP COLUMN list_version")
