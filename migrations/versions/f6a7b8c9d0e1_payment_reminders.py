"""payment reminders (缴费提醒): the daily passes, the thresholds texted, the texts

Revision ID: f6a7b8c9d0e1
Revises: e5f6a7b8c9d0
Create Date: 2026-12-08 10:00:00

One SMS per threshold crossing: the marks remember the highest threshold texted per subscription
and billing cycle; the runs hold each day's cursor over billing's subscriptions.
"""
from alembic import op
import sqlalchemy as sa


revision = 'f6a7b8c9d0e1'
down_revision = 'e5f6a7b8c9d0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'payment_reminder_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('cursor', sa.BigInteger(), nullable=False),
        sa.Column('checked', sa.Integer(), nullable=False),
        sa.Column('texted', sa.Integer(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('day'),
    )
    op.create_table(
        'payment_reminder_marks',
        sa.Column('subscription_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('cycle', sa.String(length=7), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('subscription_id'),
    )
    op.create_table(
        'payment_reminders',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscription_id', sa.BigInteger(), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('cycle', sa.String(length=7), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('limit_fen', sa.BigInteger(), nullable=False),
        sa.Column('job_key', sa.String(length=80), nullable=False),
        sa.Column('texted_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('payment_reminders', schema=None) as batch_op:
        batch_op.create_index('ix_payment_reminders_subscription', ['subscription_id', 'texted_at'], unique=False)


def downgrade():
    with op.batch_alter_table('payment_reminders', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_reminders_subscription')
    op.drop_table('payment_reminders')
    op.drop_table('payment_reminder_marks')
    op.drop_table('payment_reminder_runs')
