"""Roles and permissions as data: ``roles``, ``role_permissions`` (one row per role and
permission, seeded from the code's table of that day so that nothing changes) and the
``role_matrix_version`` counter processes reload on

Revision ID: a9b8c7d6e5f4
Revises: f3a4b5c6d7e8
Create Date: 2026-12-06 05:20:00

"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = 'a9b8c7d6e5f4'
down_revision = 'f3a4b5c6d7e8'
branch_labels = None
depends_on = None

ROLES = [  # code, name, English name (engine/people.py ROLE_LABELS of the day)
    ('agent', '坐席', 'Agent'),
    ('leader', '班长', 'Group leader'),
    ('handler', '处理人员', 'Handler'),
    ('manager', '管理人员', 'Manager'),
    ('analyst', '流程分析师', 'Process analyst'),
    ('admin', '系统管理员', 'Administrator'),
]
# permission -> roles holding it besides admin (engine/access.py PERMISSIONS of the day); admin
# holds every permission.
PERMISSIONS = {
    'see_every_task': ['manager'],
    'see_every_case': ['leader', 'manager'],
    'read_escalations': ['leader', 'manager'],
    'read_every_escalation': ['manager'],
    'manage_cases': ['leader', 'manager'],
    'record_complaint': ['agent'],
    'view_customer_data': ['agent', 'handler', 'leader', 'manager'],
    'read_lookup_audit': ['manager'],
    'start_callback': ['agent', 'leader', 'manager'],
    'handle_calls': ['agent', 'leader'],
    'report_calls': ['agent', 'leader'],
    'watch_calls': ['leader', 'manager'],
    'deploy_process': ['analyst'],
    'run_dunning': ['manager'],
    'watch_exchanges': ['manager'],
    'watch_roaming': ['agent', 'leader', 'manager'],
    'report_roaming': ['manager'],
    'read_reports': ['manager'],
    'manage_alert_rules': ['manager'],
    'escalate_national': ['leader', 'manager'],
    'administer': [],
    'manage_reply_templates': ['leader', 'manager'],
    'flag_upgraded': ['leader', 'manager'],
    'supervise_upgraded': ['manager'],
}


def upgrade():
    roles = op.create_table(
        'roles',
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('name_en', sa.String(length=80), nullable=False),
        sa.Column('builtin', sa.Boolean(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('code'),
    )
    grants = op.create_table(
        'role_permissions',
        sa.Column('role_code', sa.String(length=40), nullable=False),
        sa.Column('permission', sa.String(length=40), nullable=False),
        sa.Column('granted', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['role_code'], ['roles.code'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('role_code', 'permission'),
    )
    version = op.create_table(
        'role_matrix_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('changed_at', sa.DateTime(), nullable=True),
        sa.Column('changed_by', sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(roles, [{'code': c, 'name': n, 'name_en': e, 'builtin': True, 'position': i,
                            'created_at': now} for i, (c, n, e) in enumerate(ROLES)])
    op.bulk_insert(grants, [{'role_code': c, 'permission': p, 'granted': c == 'admin' or c in holders}
                            for p, holders in PERMISSIONS.items() for c, _n, _e in ROLES])
    op.bulk_insert(version, [{'id': 1, 'version': 1, 'changed_at': now, 'changed_by': None}])


def downgrade():
    op.drop_table('role_matrix_version')
    op.drop_table('role_permissions')
    op.drop_table('roles')
