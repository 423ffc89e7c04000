"""roaming transfers: electronic dispatches and receipts between provinces (漫游投诉转递)

Revision ID: a7b8c9d0e1f2
Revises: f6a7b8c9d0e1
Create Date: 2026-12-09 10:00:00

One row per dispatch sent (out) or received (in), unique by direction, dispatching company and
serial number, with the receipt.
"""
from alembic import op
import sqlalchemy as sa


revision = 'a7b8c9d0e1f2'
down_revision = 'f6a7b8c9d0e1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'roaming_transfers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('direction', sa.String(length=4), nullable=False),
        sa.Column('company_code', sa.String(length=16), nullable=False),
        sa.Column('serial_no', sa.String(length=64), nullable=False),
        sa.Column('partner', sa.String(length=16), nullable=False),
        sa.Column('to_company', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=True),
        sa.Column('customer_phone', sa.String(length=32), nullable=False),
        sa.Column('first_reply_due', sa.DateTime(), nullable=False),
        sa.Column('final_reply_due', sa.DateTime(), nullable=False),
        sa.Column('dispatch', sa.JSON(), nullable=False),
        sa.Column('receipt', sa.JSON(), nullable=True),
        sa.Column('late', sa.Boolean(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('acknowledged_at', sa.DateTime(), nullable=True),
        sa.Column('answered_at', sa.DateTime(), nullable=True),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'], ),
        sa.ForeignKeyConstraint(['job_id'], ['connector_jobs.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('roaming_transfers', schema=None) as batch_op:
        batch_op.create_index('ix_roaming_transfers_key', ['direction', 'company_code', 'serial_no'], unique=True)
        batch_op.create_index('ix_roaming_transfers_open', ['status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_roaming_transfers_instance_id'), ['instance_id'], unique=False)


def downgrade():
    with op.batch_alter_table('roaming_transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_roaming_transfers_instance_id'))
        batch_op.drop_index('ix_roaming_transfers_open')
        batch_op.drop_index('ix_roaming_transfers_key')
    op.drop_table('roaming_transfers')
