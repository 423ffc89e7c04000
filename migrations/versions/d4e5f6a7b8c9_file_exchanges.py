"""file exchanges with the national and network-management centres (FTP)

Revision ID: d4e5f6a7b8c9
Revises: c3d4e5f6a7b8
Create Date: 2026-12-06 00:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'd4e5f6a7b8c9'
down_revision = 'c3d4e5f6a7b8'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'file_exchanges',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('direction', sa.String(length=4), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('content', sa.LargeBinary(), nullable=False),
        sa.Column('uploads', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('instance_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('acknowledged_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'], ),
        sa.ForeignKeyConstraint(['job_id'], ['connector_jobs.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('file_exchanges', schema=None) as batch_op:
        batch_op.create_index('ix_file_exchanges_file', ['direction', 'name', 'sha256'], unique=True)
        batch_op.create_index('ix_file_exchanges_open', ['status', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('file_exchanges', schema=None) as batch_op:
        batch_op.drop_index('ix_file_exchanges_open')
        batch_op.drop_index('ix_file_exchanges_file')
    op.drop_table('file_exchanges')
