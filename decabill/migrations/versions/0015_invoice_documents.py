"""invoice documents: the durable render-then-mail task of each invoice the billing day issues (issue #19)

Revision ID: 0015
Revises: 0016
Create Date: 2026-12-04 15:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import decabill.db


revision: str = '0015'
down_revision: Union[str, None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('invoice_documents',
    sa.Column('invoice_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('claimed_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rendered_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('invoice_id', name='uq_invoice_documents_invoice')
    )
    with op.batch_alter_table('invoice_documents', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_documents_status', ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_documents_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('invoice_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_documents_tenant_id'))
        batch_op.drop_index('ix_invoice_documents_status')
    op.drop_table('invoice_documents')
