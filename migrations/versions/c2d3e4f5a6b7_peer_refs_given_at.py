"""peer references: when the peer gave the id, by the host's clock (told apart after an SMSC restart)

Revision ID: c2d3e4f5a6b7
Revises: a9b8c7d6e5f4
Create Date: 2026-12-06 12:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'c2d3e4f5a6b7'
down_revision = 'a9b8c7d6e5f4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('connector_refs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('given_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('connector_refs', schema=None) as batch_op:
        batch_op.drop_column('given_at')
