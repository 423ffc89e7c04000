"""reports: threshold alert rules and their alerts; urges counted in the complaint facts; the
facts of business acceptance, callbacks and dunning

Revision ID: a9b0c1d2e3f4
Revises: f7a8b9c0d1e2
Create Date: 2026-12-06 02:00:00

The complaint facts gain ``urges`` (催办次数, counted by processes/urging.py from now on; the cases'
earlier urges are not back-filled), with a partial index of the urged cases (few), so that the
report's covering indexes stay as they are. One alert per rule and period: the unique
(rule_id, period_key).
``case_facts`` (processes/case_facts.py) start with the upgrade: earlier cases are not back-filled
(their workflows are never deserialized to make them).
"""
import sqlalchemy as sa
from alembic import op

revision = 'a9b0c1d2e3f4'
down_revision = 'f7a8b9c0d1e2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('complaint_facts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('urges', sa.Integer(), server_default='0', nullable=False))
    op.create_index('ix_complaint_facts_urged', 'complaint_facts',
                    ['received_day', 'urges', 'category', 'channel', 'department', 'city'], unique=False,
                    sqlite_where=sa.text('urges > 0'), postgresql_where=sa.text('urges > 0'))
    op.create_table(
        'alert_rules',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('metric', sa.String(length=32), nullable=False),
        sa.Column('scope', sa.String(length=16), nullable=False),
        sa.Column('scope_value', sa.String(length=32), nullable=True),
        sa.Column('comparison', sa.String(length=2), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=False),
        sa.Column('period', sa.String(length=8), nullable=False),
        sa.Column('min_cases', sa.Integer(), nullable=False),
        sa.Column('notify_user_id', sa.Integer(), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('updated_by', sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(['notify_user_id'], ['users.id'],
                                name=op.f('fk_alert_rules_notify_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_rules')),
    )
    op.create_table(
        'threshold_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('period_key', sa.String(length=10), nullable=False),
        sa.Column('raised_at', sa.DateTime(), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=False),
        sa.Column('cases', sa.Integer(), nullable=False),
        sa.Column('texted', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'],
                                name=op.f('fk_threshold_alerts_rule_id_alert_rules')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_threshold_alerts')),
        sa.UniqueConstraint('rule_id', 'period_key', name='uq_threshold_alerts_rule_period'),
    )
    op.create_index('ix_threshold_alerts_raised_at', 'threshold_alerts', ['raised_at'], unique=False)
    op.create_table(
        'case_facts',
        sa.Column('instance_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('process_key', sa.String(length=64), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('received_day', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=True),
        sa.Column('outcome', sa.Integer(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'],
                                name=op.f('fk_case_facts_instance_id_process_instances')),
        sa.PrimaryKeyConstraint('instance_id', name=op.f('pk_case_facts')),
    )
    op.create_index('ix_case_facts_report', 'case_facts',
                    ['process_key', 'received_day', 'kind', 'outcome', 'attempts'], unique=False)


def downgrade():
    op.drop_index('ix_case_facts_report', table_name='case_facts')
    op.drop_table('case_facts')
    op.drop_index('ix_threshold_alerts_raised_at', table_name='threshold_alerts')
    op.drop_table('threshold_alerts')
    op.drop_table('alert_rules')
    op.drop_index('ix_complaint_facts_urged', table_name='complaint_facts')
    with op.batch_alter_table('complaint_facts', schema=None) as batch_op:
        batch_op.drop_column('urges')
