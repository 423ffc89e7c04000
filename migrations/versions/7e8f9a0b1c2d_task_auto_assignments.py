"""work orders: steps handed out by their group's rule (系统分配), upgraded complaints (越级投诉)

Revision ID: 7e8f9a0b1c2d
Revises: c4d5e6f7a8b9
Create Date: 2026-12-06 02:00:00

One row per automatically assigned step (engine/assignment.py); the newest per group is the
round robin's position. One row per upgraded complaint with its source and supervising manager
(slas/upgrades.py).
"""
from alembic import op
import sqlalchemy as sa


revision = '7e8f9a0b1c2d'
down_revision = 'c4d5e6f7a8b9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'task_auto_assignments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=False),
        sa.Column('group_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('assigned_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['group_id'], ['groups.id']),
        sa.ForeignKeyConstraint(['task_id'], ['human_tasks.id']),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('task_id'),
    )
    op.create_index('ix_task_auto_assignments_group', 'task_auto_assignments', ['group_id', 'id'], unique=False)
    op.create_table(
        'upgraded_cases',
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False),
        sa.Column('flagged_by', sa.Integer(), nullable=True),
        sa.Column('flagged_at', sa.DateTime(), nullable=False),
        sa.Column('supervisor_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['flagged_by'], ['users.id']),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id']),
        sa.ForeignKeyConstraint(['supervisor_id'], ['users.id']),
        sa.PrimaryKeyConstraint('instance_id'),
    )
    op.create_index(op.f('ix_upgraded_cases_supervisor_id'), 'upgraded_cases', ['supervisor_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_upgraded_cases_supervisor_id'), table_name='upgraded_cases')
    op.drop_table('upgraded_cases')
    op.drop_index('ix_task_auto_assignments_group', table_name='task_auto_assignments')
    op.drop_table('task_auto_assignments')
