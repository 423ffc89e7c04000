"""complaint facts: one denormalised row per complaint case for the statistics (投诉统计)

Revision ID: c9d0e1f2a3b4
Revises: b8c9d0e1f2a3
Create Date: 2026-12-06 00:30:00

Written in the step by processes/complaint_facts.py; one covering index per report dimension,
led by the Beijing day, with the outcome bits the report groups by. Cases recorded before this revision have no facts (their workflows are
never deserialized to make them): the statistics start with the upgrade.
"""
from alembic import op
import sqlalchemy as sa


revision = 'c9d0e1f2a3b4'
down_revision = 'b8c9d0e1f2a3'
branch_labels = None
depends_on = None



def upgrade():
    op.create_table(
        'complaint_facts',
        sa.Column('instance_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('received_day', sa.Date(), nullable=False),
        sa.Column('category', sa.String(length=16), nullable=True),
        sa.Column('channel', sa.String(length=16), nullable=True),
        sa.Column('department', sa.String(length=32), nullable=True),
        sa.Column('city', sa.String(length=40), nullable=True),
        sa.Column('first_reply_at', sa.DateTime(), nullable=True),
        sa.Column('first_reply_in_time', sa.Boolean(), nullable=False),
        sa.Column('final_reply_at', sa.DateTime(), nullable=True),
        sa.Column('replied', sa.Boolean(), nullable=False),
        sa.Column('handled_in_time', sa.Boolean(), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('overdue', sa.Boolean(), nullable=False),
        sa.Column('escalations', sa.Integer(), nullable=False),
        sa.Column('satisfaction', sa.String(length=16), nullable=True),
        sa.Column('outcome', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'],
                                name=op.f('fk_complaint_facts_instance_id_process_instances')),
        sa.PrimaryKeyConstraint('instance_id', name=op.f('pk_complaint_facts')),
    )
    for dim in ('category', 'channel', 'department', 'city'):
        op.create_index(f'ix_complaint_facts_{dim}', 'complaint_facts', ['received_day', dim, 'outcome', 'escalations'],
                        unique=False)


def downgrade():
    for dim in ('category', 'channel', 'department', 'city'):
        op.drop_index(f'ix_complaint_facts_{dim}', table_name='complaint_facts')
    op.drop_table('complaint_facts')
