"""peer references are not unique over time (an SMSC restart reuses message ids)

Revision ID: b7a1c2d3e4f5
Revises: 8561c369c19c
Create Date: 2026-12-04 23:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b7a1c2d3e4f5'
down_revision = '8561c369c19c'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('connector_refs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_at', sa.DateTime(), nullable=True))
    op.execute("UPDATE connector_refs SET created_at = updated_at")
    with op.batch_alter_table('connector_refs', schema=None) as batch_op:
        batch_op.alter_column('created_at', existing_type=sa.DateTime(), nullable=False)
        batch_op.drop_constraint('uq_connector_refs_kind', type_='unique')
        batch_op.create_index('ix_connector_refs_ref', ['kind', 'ref', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('connector_refs', schema=None) as batch_op:
        batch_op.drop_index('ix_connector_refs_ref')
        batch_op.create_unique_constraint('uq_connector_refs_kind', ['kind', 'ref'])
        batch_op.drop_column('created_at')
