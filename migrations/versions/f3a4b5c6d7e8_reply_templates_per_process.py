"""Reply templates per process: the process a template belongs to (the existing ones are the
complaint's), its kind staying in ``category``

Revision ID: f3a4b5c6d7e8
Revises: d6e7f8a9b0c1
Create Date: 2026-12-06 05:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'f3a4b5c6d7e8'
down_revision = 'd6e7f8a9b0c1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('reply_templates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('process_key', sa.String(length=80), server_default='complaint',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('reply_templates', schema=None) as batch_op:
        batch_op.drop_column('process_key')
