"""desk tools: acknowledged escalations, case attachments, reply templates

Revision ID: b1c2d3e4f5a6
Revises: a9b0c1d2e3f4
Create Date: 2026-12-06 02:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b1c2d3e4f5a6'
down_revision = 'a9b0c1d2e3f4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_escalations_acknowledged_by_id_users'), 'users',
                                    ['acknowledged_by_id'], ['id'])
    op.create_table(
        'case_attachments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('filename', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('stored_as', sa.String(length=64), nullable=False),
        sa.Column('added_at', sa.DateTime(), nullable=False),
        sa.Column('added_by_id', sa.Integer(), nullable=False),
        sa.Column('added_by_name', sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(['added_by_id'], ['users.id'], name=op.f('fk_case_attachments_added_by_id_users')),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'],
                                name=op.f('fk_case_attachments_instance_id_process_instances')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_attachments')),
        sa.UniqueConstraint('stored_as', name=op.f('uq_case_attachments_stored_as')),
    )
    with op.batch_alter_table('case_attachments', schema=None) as batch_op:
        batch_op.create_index('ix_case_attachments_instance', ['instance_id', 'id'], unique=False)
    op.create_table(
        'reply_templates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('category', sa.String(length=32), nullable=False),
        sa.Column('title', sa.String(length=80), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_reply_templates_updated_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reply_templates')),
    )
    with op.batch_alter_table('reply_templates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reply_templates_category'), ['category'], unique=False)


def downgrade():
    with op.batch_alter_table('reply_templates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reply_templates_category'))
    op.drop_table('reply_templates')
    with op.batch_alter_table('case_attachments', schema=None) as batch_op:
        batch_op.drop_index('ix_case_attachments_instance')
    op.drop_table('case_attachments')
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_escalations_acknowledged_by_id_users'), type_='foreignkey')
        batch_op.drop_column('acknowledged_by_id')
        batch_op.drop_column('acknowledged_at')
