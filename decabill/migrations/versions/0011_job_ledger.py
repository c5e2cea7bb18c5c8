"""job ledger: units that are running or failed their last run (job_unit_runs) and the last run of each
periodic coordinator (periodic_job_runs), for `decabill jobs` and the job metrics

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-04 07:59:06.559364
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import decabill.db


revision: str = '0011'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('job_unit_runs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('task_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('args_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('started_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error_type', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_name', 'args_key', name='uq_job_unit_runs_task_args')
    )
    with op.batch_alter_table('job_unit_runs', schema=None) as batch_op:
        batch_op.create_index('ix_job_unit_runs_status', ['status', 'task_name'], unique=False)

    op.create_table('periodic_job_runs',
    sa.Column('task_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('started_at', decabill.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', decabill.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('units_sent', sa.Integer(), nullable=True),
    sa.Column('error_type', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('task_name')
    )


def downgrade() -> None:
    op.drop_table('periodic_job_runs')
    with op.batch_alter_table('job_unit_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_job_unit_runs_status')

    op.drop_table('job_unit_runs')
