"""dunning: monthly rounds and their subscribers (欠费催缴)

Revision ID: e5f6a7b8c9d0
Revises: d4e5f6a7b8c9
Create Date: 2026-12-06 10:00:00

One case per subscriber per round; the entries keep each subscriber's stage and payment.
"""
from alembic import op
import sqlalchemy as sa


revision = 'e5f6a7b8c9d0'
down_revision = 'd4e5f6a7b8c9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'dunning_rounds',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('opened_at', sa.DateTime(), nullable=False),
        sa.Column('opened_by', sa.String(length=40), nullable=True),
        sa.Column('subscribers', sa.Integer(), nullable=False),
        sa.Column('amount_due', sa.BigInteger(), nullable=False),
        sa.Column('amount_recovered', sa.BigInteger(), nullable=False),
        sa.Column('bill_cursor', sa.BigInteger(), nullable=False),
        sa.Column('payments_checked_at', sa.DateTime(), nullable=True),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('month'),
    )
    op.create_table(
        'dunning_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('round_id', sa.Integer(), nullable=False),
        sa.Column('bill_id', sa.BigInteger(), nullable=False),
        sa.Column('subscription_id', sa.BigInteger(), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('amount_due', sa.BigInteger(), nullable=False),
        sa.Column('due_date', sa.Date(), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=True),
        sa.Column('stage', sa.String(length=16), nullable=False),
        sa.Column('paid_at', sa.DateTime(), nullable=True),
        sa.Column('amount_paid', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'], ),
        sa.ForeignKeyConstraint(['round_id'], ['dunning_rounds.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('round_id', 'subscription_id'),
    )
    with op.batch_alter_table('dunning_entries', schema=None) as batch_op:
        batch_op.create_index('ix_dunning_entries_stage', ['round_id', 'stage'], unique=False)
        batch_op.create_index(batch_op.f('ix_dunning_entries_instance_id'), ['instance_id'], unique=False)


def downgrade():
    with op.batch_alter_table('dunning_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dunning_entries_instance_id'))
        batch_op.drop_index('ix_dunning_entries_stage')
    op.drop_table('dunning_entries')
    op.drop_table('dunning_rounds')
