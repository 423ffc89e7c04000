"""Inbox indexes in display order: (group or assignee, status, due_at IS NULL, due_at, id), so a
page of the inbox is read from the index without sorting the group's open tasks.

Revision ID: 40e0b349b510
Revises: 40d65e41c2f5
"""
from alembic import op
import sqlalchemy as sa

revision = '40e0b349b510'
down_revision = '40d65e41c2f5'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_human_tasks_assignee_open', table_name='human_tasks')
    op.drop_index('ix_human_tasks_group_open', table_name='human_tasks')
    op.create_index('ix_human_tasks_group_queue', 'human_tasks',
                    ['group_id', 'status', sa.text('(due_at IS NULL)'), 'due_at', 'id'])
    op.create_index('ix_human_tasks_assignee_queue', 'human_tasks',
                    ['assignee_id', 'status', sa.text('(due_at IS NULL)'), 'due_at', 'id'])


def downgrade():
    op.drop_index('ix_human_tasks_assignee_queue', table_name='human_tasks')
    op.drop_index('ix_human_tasks_group_queue', table_name='human_tasks')
    op.create_index('ix_human_tasks_group_open', 'human_tasks', ['group_id', 'status', 'due_at'])
    op.create_index('ix_human_tasks_assignee_open', 'human_tasks', ['assignee_id', 'status', 'due_at'])
