"""Who may do what — the access rules of the engine and of every page and API route, in one place.

Two kinds of rule:
- **permissions**: what a role may do at all (``allowed(user, "deploy_process")``), a table from
  permission to roles; admins hold every permission;
- **reach**: which tasks and cases a user may see or act on (their groups, their hands, the groups
  they lead), decided on the rows themselves.

Web code never asks ``has_role`` itself: it names the permission it needs.

The permission *names* are a fixed set in code (they are what the code checks); which role holds
which is data — the ``roles`` and ``role_permissions`` tables (``engine/roles.py``), edited by
administrators. :func:`allowed` reads an in-process copy (:class:`Matrix`), put in force by
``engine.roles.load``/``sync``; nothing is read from the database per call. ``PERMISSIONS`` below
is the default the tables were seeded with, and what holds for a permission the tables do not
mention yet (a permission added to the code later).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, exists, or_, select, true
from sqlalchemy.orm import Session

from .errors import Forbidden
from .models import HumanTask, ProcessInstance
from .people import ROLE_LABELS, ROLES, Group, User, group_leaders

# permission -> the roles that hold it (admins hold all)
PERMISSIONS: dict[str, frozenset[str]] = {
    "see_every_task": frozenset({"manager"}),
    "see_every_case": frozenset({"manager", "leader"}),
    "read_escalations": frozenset({"manager", "leader"}),
    "read_every_escalation": frozenset({"manager"}),
    "manage_cases": frozenset({"manager", "leader"}),          # suspend/resume, incidents of a case
    "record_complaint": frozenset({"agent"}),
    "view_customer_data": frozenset({"agent", "leader", "handler", "manager"}),
    "read_lookup_audit": frozenset({"manager"}),
    "start_callback": frozenset({"agent", "leader", "manager"}),
    "handle_calls": frozenset({"agent", "leader"}),
    "report_calls": frozenset({"agent", "leader"}),           # CTI: inbound calls through the API
    "watch_calls": frozenset({"leader", "manager"}),
    "deploy_process": frozenset({"analyst"}),
    "run_dunning": frozenset({"manager"}),                    # open dunning rounds, see their figures
    "watch_exchanges": frozenset({"manager"}),                # files sent to / received from centres
    "watch_roaming": frozenset({"agent", "leader", "manager"}),  # roaming transfers (GET /roaming/transfers)
    "report_roaming": frozenset({"manager"}),                 # the roaming statistics page
    "read_reports": frozenset({"manager"}),                   # complaint statistics, exports (web/reports.py)
    "manage_alert_rules": frozenset({"manager"}),             # threshold alert rules (web/report_alerts.py)
    "escalate_national": frozenset({"leader", "manager"}),    # 上报全国中心 (processes/national.py)
    "administer": frozenset(),                                # users, incidents, templates
    "manage_reply_templates": frozenset({"leader", "manager"}),  # canned replies (web/case_tools.py)
    "flag_upgraded": frozenset({"leader", "manager"}),        # 越级投诉: mark a complaint upgraded (slas/upgrades.py)
    "supervise_upgraded": frozenset({"manager"}),             # 督办: the list of upgraded complaints
}

# How people read the permissions (Chinese, English): the admins' permission matrix.
PERMISSION_LABELS: dict[str, tuple[str, str]] = {
    "see_every_task": ("查看全部任务", "See every task"),
    "see_every_case": ("查看全部工单", "See every case"),
    "read_escalations": ("查看超时告警", "Read escalations"),
    "read_every_escalation": ("查看全部超时告警", "Read every escalation"),
    "manage_cases": ("挂起/恢复工单", "Suspend and resume cases"),
    "record_complaint": ("受理投诉", "Record complaints"),
    "view_customer_data": ("查看客户资料", "View customer data"),
    "read_lookup_audit": ("查看客户资料查询日志", "Read the customer lookup log"),
    "start_callback": ("发起回叫/回访", "Start callbacks"),
    "handle_calls": ("接听来电", "Handle calls"),
    "report_calls": ("上报来电（CTI）", "Report calls (CTI)"),
    "watch_calls": ("监看话务", "Watch calls"),
    "deploy_process": ("流程建模与部署", "Model and deploy processes"),
    "run_dunning": ("欠费催缴", "Run dunning rounds"),
    "watch_exchanges": ("查看文件交换", "Watch file exchanges"),
    "watch_roaming": ("查看漫游转递", "Watch roaming transfers"),
    "report_roaming": ("漫游投诉统计", "Roaming statistics"),
    "read_reports": ("查看统计报表", "Read reports"),
    "manage_alert_rules": ("设置指标告警规则", "Set threshold alert rules"),
    "escalate_national": ("上报全国中心", "Escalate to the national center"),
    "administer": ("系统管理（用户、班组、权限）", "Administer users, groups and permissions"),
    "manage_reply_templates": ("维护答复模板", "Manage reply templates"),
    "flag_upgraded": ("标记越级投诉", "Mark complaints as upgraded"),
    "supervise_upgraded": ("越级投诉督办", "Supervise upgraded complaints"),
}


@dataclass(frozen=True)
class RoleInfo:
    """A role people can be given: its code, Chinese and English names, built in or created."""

    code: str
    name: str
    name_en: str
    builtin: bool


@dataclass(frozen=True)
class Matrix:
    """Which roles hold each permission, and the roles there are; ``version`` is the stored
    counter it was read at (0: the defaults, nothing stored)."""

    version: int
    holders: Mapping[str, frozenset[str]]
    roles: tuple[RoleInfo, ...]


def default_matrix() -> Matrix:
    """The shipped defaults: ``PERMISSIONS`` plus every permission for the admin role."""
    return Matrix(0, {p: holders | {"admin"} for p, holders in PERMISSIONS.items()},
                  tuple(RoleInfo(r, *ROLE_LABELS[r], builtin=True) for r in ROLES))


_matrix = default_matrix()


def install(matrix: Matrix) -> None:
    """Put ``matrix`` in force in this process (engine/roles.py's ``load``)."""
    global _matrix
    _matrix = matrix


def current_matrix() -> Matrix:
    return _matrix


def allowed(user: User | None, permission: str) -> bool:
    """Whether ``user`` holds ``permission`` through one of their roles (an unknown permission is a
    programming error: KeyError)."""
    holders = _matrix.holders[permission]
    return user is not None and not holders.isdisjoint(user.role_set)


def leads(session: Session, user: User, task: HumanTask) -> bool:
    """Whether ``user`` leads the task's group (admins lead every group)."""
    if user.has_role("admin"):
        return True
    if task.group_id is None:
        return False
    group = session.get(Group, task.group_id)
    return group is not None and user.id in group.leader_ids


def in_group(user: User, group_id: int) -> bool:
    return group_id in user.group_ids


def may_see_task(session: Session, user: User, task: HumanTask) -> bool:
    """A task of the user's groups, in their hands, of a group they lead, or any for managers."""
    if allowed(user, "see_every_task") or task.assignee_id == user.id:
        return True
    if task.group_id is not None and in_group(user, task.group_id):
        return True
    return leads(session, user, task)


def may_hold_case(session: Session, user: User, instance: ProcessInstance) -> bool:
    """Who may put a case on hold (挂起) or resume it: leaders and managers, whoever holds one of
    its open steps (the person talking to the customer), or a member of the group of an open step
    nobody holds yet — not everyone who may read the case."""
    if allowed(user, "manage_cases"):
        return True
    groups = user.group_ids or {-1}
    return session.scalar(select(HumanTask.id).where(
        HumanTask.instance_id == instance.id, HumanTask.status == "open",
        (HumanTask.assignee_id == user.id)
        | (HumanTask.assignee_id.is_(None) & HumanTask.group_id.in_(groups))).limit(1)) is not None


def require_hold(session: Session, user: User, instance: ProcessInstance) -> ProcessInstance:
    """``instance`` when ``user`` may put it on hold or resume it; Forbidden otherwise."""
    if not may_hold_case(session, user, instance):
        raise Forbidden("only the holder of an open step, a leader or a manager may hold or resume a case")
    return instance


def may_view_instance(session: Session, user: User, instance: ProcessInstance) -> bool:
    """Managers, leaders and admins see every case — except a city leader, who sees the city's
    cases (:func:`city_scope`); others the cases they started or whose steps were (or are) in their
    groups or in their hands."""
    if instance.started_by == user.id:
        return True
    cities = city_scope(session, user)
    if cities is None and allowed(user, "see_every_case"):
        return True
    groups = user.group_ids or {-1}
    reach = (HumanTask.group_id.in_(groups)) | (HumanTask.assignee_id == user.id) | (HumanTask.completed_by == user.id)
    if cities:
        reach = reach | HumanTask.group_id.in_(_city_groups(cities))
    hit = session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance.id, reach).limit(1))
    return hit is not None


# -- the city level (地市中心) ------------------------------------------------------------------
# The rule: a *city leader* is a leader (not a manager or admin) who leads at least one city-level
# group. Their case reach is the city: the cases with a step, open or done, in a group of their
# city (where the city's remote seats work), plus what anyone sees (their own steps and cases).
# The customer's home city is not used: transfers put a case in the city, not the address.

def city_scope(session: Session, user: User) -> set[str] | None:
    """The cities whose cases a city leader is limited to; None for everyone else (no query for
    them: this runs on every case read)."""
    if user.has_role("admin", "manager") or not user.has_role("leader"):
        return None
    led = select(group_leaders.c.group_id).where(group_leaders.c.user_id == user.id)
    cities = {city for city in session.scalars(select(Group.city).where(
        Group.level == "city", (Group.leader_id == user.id) | Group.id.in_(led))) if city}
    return cities or None


def _city_groups(cities: set[str]) -> Select:
    return select(Group.id).where(Group.level == "city", Group.city.in_(cities))


def visible_cases(session: Session, user: User) -> ColumnElement[bool]:
    """The SQL form of :func:`may_view_instance`, for case lists and statistics."""
    cities = city_scope(session, user)
    if cities is None and allowed(user, "see_every_case"):
        return true()
    groups = user.group_ids or {-1}
    reach = HumanTask.group_id.in_(groups) | (HumanTask.assignee_id == user.id) | (HumanTask.completed_by == user.id)
    if cities:
        reach = reach | HumanTask.group_id.in_(_city_groups(cities))
    return or_(ProcessInstance.started_by == user.id,
               exists().where(HumanTask.instance_id == ProcessInstance.id, reach))


def may_read_reports(session: Session, user: User) -> bool:
    """The complaint statistics: managers (``read_reports``) the centre's, a city leader the city's."""
    return allowed(user, "read_reports") or city_scope(session, user) is not None


def report_reach(session: Session, user: User) -> Select | None:
    """The case ids a user's statistics count: None for the whole centre (a manager, an admin),
    the cases of their city for a city leader (:func:`visible_cases`)."""
    if city_scope(session, user) is None:
        return None
    return select(ProcessInstance.id).where(visible_cases(session, user))
