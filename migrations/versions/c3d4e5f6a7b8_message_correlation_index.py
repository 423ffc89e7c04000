"""message correlation index: the messages each running case waits for, by correlation value

Revision ID: c3d4e5f6a7b8
Revises: b7a1c2d3e4f5
Create Date: 2026-12-05 23:40:00

Running cases are indexed at their next step, or by the tick's catch-up (``waiting_on`` NULL).
"""
from alembic import op
import sqlalchemy as sa


revision = 'c3d4e5f6a7b8'
down_revision = 'b7a1c2d3e4f5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'message_waits',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('correlation', sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('message_waits', schema=None) as batch_op:
        batch_op.create_index('ix_message_waits_route', ['name', 'correlation', 'instance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_waits_instance_id'), ['instance_id'], unique=False)
    with op.batch_alter_table('process_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waiting_on', sa.String(length=240), nullable=True))


def downgrade():
    with op.batch_alter_table('process_instances', schema=None) as batch_op:
        batch_op.drop_column('waiting_on')
    with op.batch_alter_table('message_waits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_waits_instance_id'))
        batch_op.drop_index('ix_message_waits_route')
    op.drop_table('message_waits')
