"""VIP on the step row, for the inbox order (VIP first, then due) read from its index; the
Beijing day of each roaming transfer, for its statistics

Revision ID: d6e7f8a9b0c1
Revises: 7e8f9a0b1c2d
Create Date: 2026-12-06 05:10:00

``human_tasks.vip`` is written when a step opens (engine/task_rows.py); the open steps of VIP
cases recorded before get it from the desk's index (``case_index.vip``). The two inbox indexes
take it as their third column, descending, so a page of the inbox is read without sorting.

``roaming_transfers.created_day`` is the Beijing day a transfer was recorded (the roaming
statistics group and filter by it, processes/transfer_report.py); rows recorded before get it
from their ``created_at``.
"""
from datetime import UTC, timedelta, timezone

from alembic import op
import sqlalchemy as sa


revision = 'd6e7f8a9b0c1'
down_revision = '7e8f9a0b1c2d'
branch_labels = None
depends_on = None


def upgrade():
    # Indexes first: a batch (SQLite's table copy) would lose these expression indexes.
    op.drop_index('ix_human_tasks_assignee_queue', table_name='human_tasks')
    op.drop_index('ix_human_tasks_group_queue', table_name='human_tasks')
    op.add_column('human_tasks', sa.Column('vip', sa.Boolean(), server_default=sa.false(), nullable=False))
    human_tasks = sa.table('human_tasks', sa.column('vip', sa.Boolean()), sa.column('status', sa.String()),
                           sa.column('instance_id', sa.Integer()))
    case_index = sa.table('case_index', sa.column('instance_id', sa.Integer()), sa.column('vip', sa.Boolean()))
    op.execute(human_tasks.update().where(
        human_tasks.c.status == 'open',
        human_tasks.c.instance_id.in_(sa.select(case_index.c.instance_id).where(case_index.c.vip.is_(True))))
        .values(vip=True))
    op.create_index('ix_human_tasks_group_queue', 'human_tasks',
                    ['group_id', 'status', sa.text('vip DESC'), sa.text('(due_at IS NULL)'), 'due_at', 'id'])
    op.create_index('ix_human_tasks_assignee_queue', 'human_tasks',
                    ['assignee_id', 'status', sa.text('vip DESC'), sa.text('(due_at IS NULL)'), 'due_at', 'id'])
    _roaming_days()


BEIJING = timezone(timedelta(hours=8))


def _roaming_days():
    op.add_column('roaming_transfers', sa.Column('created_day', sa.Date(), nullable=True))
    transfers = sa.table('roaming_transfers', sa.column('id', sa.Integer()), sa.column('created_at', sa.DateTime()),
                         sa.column('created_day', sa.Date()))
    connection = op.get_bind()
    for row_id, created in connection.execute(sa.select(transfers.c.id, transfers.c.created_at)).all():
        moment = created if created.tzinfo else created.replace(tzinfo=UTC)  # stored in UTC
        connection.execute(transfers.update().where(transfers.c.id == row_id)
                           .values(created_day=moment.astimezone(BEIJING).date()))
    with op.batch_alter_table('roaming_transfers') as batch:
        batch.alter_column('created_day', existing_type=sa.Date(), nullable=False)
    op.create_index('ix_roaming_transfers_report', 'roaming_transfers',
                    ['created_day', 'direction', 'partner', 'status', 'late', 'acknowledged_at', 'answered_at',
                     'final_reply_due'])


def downgrade():
    op.drop_index('ix_roaming_transfers_report', table_name='roaming_transfers')
    with op.batch_alter_table('roaming_transfers') as batch:
        batch.drop_column('created_day')
    op.drop_index('ix_human_tasks_assignee_queue', table_name='human_tasks')
    op.drop_index('ix_human_tasks_group_queue', table_name='human_tasks')
    with op.batch_alter_table('human_tasks') as batch:  # before the indexes: SQLite's copy would lose them
        batch.drop_column('vip')
    op.create_index('ix_human_tasks_group_queue', 'human_tasks',
                    ['group_id', 'status', sa.text('(due_at IS NULL)'), 'due_at', 'id'])
    op.create_index('ix_human_tasks_assignee_queue', 'human_tasks',
                    ['assignee_id', 'status', sa.text('(due_at IS NULL)'), 'due_at', 'id'])
