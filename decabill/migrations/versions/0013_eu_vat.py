"""EU VAT: VAT ID and its VIES check on customer profiles; the tax rule, country and snapshot of invoices; the
EN 16931 category of invoice lines (existing lines are standard rated, `S`)

Revision ID: 0013
Revises: 0015
Create Date: 2026-12-04 14:45:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
import decabill.db
import sqlmodel


revision: str = '0013'
down_revision: Union[str, None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('customer_profiles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vat_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('vat_id_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('vat_id_checked_at', decabill.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('vat_id_consultation_number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('vat_id_recheck_at', decabill.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('vat_id_check_attempts', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tax_rule', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
        batch_op.add_column(sa.Column('tax_country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True))
        batch_op.add_column(sa.Column('tax_snapshot', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                                      nullable=True))
    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vat_category_code', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False, server_default='S'))
        batch_op.add_column(sa.Column('vat_category_explicit', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.drop_column('vat_category_explicit')
        batch_op.drop_column('vat_category_code')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('tax_snapshot')
        batch_op.drop_column('tax_country')
        batch_op.drop_column('tax_rule')
    with op.batch_alter_table('customer_profiles', schema=None) as batch_op:
        batch_op.drop_column('vat_id_check_attempts')
        batch_op.drop_column('vat_id_recheck_at')
        batch_op.drop_column('vat_id_consultation_number')
        batch_op.drop_column('vat_id_checked_at')
        batch_op.drop_column('vat_id_status')
        batch_op.drop_column('vat_id')
