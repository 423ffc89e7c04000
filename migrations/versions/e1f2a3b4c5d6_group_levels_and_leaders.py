"""administration: groups' organisational level, city, assignment mode and further leaders

Revision ID: e1f2a3b4c5d6
Revises: d0e1f2a3b4c5
Create Date: 2026-12-08 12:00:00

``groups.leader_id`` stays the first leader; ``group_leaders`` holds the others.
"""
from alembic import op
import sqlalchemy as sa


revision = 'e1f2a3b4c5d6'
down_revision = 'd0e1f2a3b4c5'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('groups') as batch:
        batch.add_column(sa.Column('level', sa.String(length=16), server_default='province', nullable=False))
        batch.add_column(sa.Column('city', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('assignment', sa.String(length=16), server_default='manual', nullable=False))
    op.create_table(
        'group_leaders',
        sa.Column('group_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('group_id', 'user_id'),
    )
    op.create_index(op.f('ix_group_leaders_user_id'), 'group_leaders', ['user_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_group_leaders_user_id'), table_name='group_leaders')
    op.drop_table('group_leaders')
    with op.batch_alter_table('groups') as batch:
        batch.drop_column('assignment')
        batch.drop_column('city')
        batch.drop_column('level')
