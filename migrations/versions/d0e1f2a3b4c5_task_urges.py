"""urging (催办): the urges of each step

Revision ID: d0e1f2a3b4c5
Revises: c9d0e1f2a3b4
Create Date: 2026-12-06 00:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'd0e1f2a3b4c5'
down_revision = 'c9d0e1f2a3b4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'task_urges',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('by_id', sa.Integer(), nullable=False),
        sa.Column('by_name', sa.String(length=80), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False),
        sa.Column('notified_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['by_id'], ['users.id'], ),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'], ),
        sa.ForeignKeyConstraint(['notified_id'], ['users.id'], ),
        sa.ForeignKeyConstraint(['task_id'], ['human_tasks.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('task_urges', schema=None) as batch_op:
        batch_op.create_index('ix_task_urges_task', ['task_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_urges_instance_id'), ['instance_id'], unique=False)


def downgrade():
    with op.batch_alter_table('task_urges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_urges_instance_id'))
        batch_op.drop_index('ix_task_urges_task')
    op.drop_table('task_urges')
