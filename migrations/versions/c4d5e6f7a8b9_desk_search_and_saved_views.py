"""desk search index of cases and saved views per user

Revision ID: c4d5e6f7a8b9
Revises: b1c2d3e4f5a6
Create Date: 2026-12-06 02:00:00

``case_index`` is kept by processes/desk_search.py from each step on; cases older than this
revision get their row at their next step, or at once with ``flask --app wsgi kefu reindex-cases``
(until then the search finds them by number and phone only).
"""
import sqlalchemy as sa
from alembic import op

revision = 'c4d5e6f7a8b9'
down_revision = 'b1c2d3e4f5a6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'case_index',
        sa.Column('instance_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('name', sa.String(length=80), nullable=True),
        sa.Column('contact_phone', sa.String(length=32), nullable=True),
        sa.Column('text', sa.String(length=1000), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('vip', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id']),
        sa.PrimaryKeyConstraint('instance_id'),
    )
    op.create_index(op.f('ix_case_index_name'), 'case_index', ['name'], unique=False)
    op.create_index(op.f('ix_case_index_contact_phone'), 'case_index', ['contact_phone'], unique=False)
    op.create_index(op.f('ix_case_index_priority'), 'case_index', ['priority'], unique=False)
    op.create_table(
        'saved_views',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('page', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('query', sa.String(length=1000), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'page', 'name'),
    )
    op.create_index(op.f('ix_saved_views_user_id'), 'saved_views', ['user_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_saved_views_user_id'), table_name='saved_views')
    op.drop_table('saved_views')
    op.drop_index(op.f('ix_case_index_priority'), table_name='case_index')
    op.drop_index(op.f('ix_case_index_contact_phone'), table_name='case_index')
    op.drop_index(op.f('ix_case_index_name'), table_name='case_index')
    op.drop_table('case_index')
