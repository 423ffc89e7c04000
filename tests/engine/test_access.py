"""The access rules in one place: every permission is used, admins hold all, and web code names
permissions instead of asking for roles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.access import PERMISSIONS, allowed
from engine.people import user_by_name

ROOT = Path(__file__).resolve().parents[2]


def _sources(*folders: str) -> str:
    return "\n".join(p.read_text("utf-8") for folder in folders for p in (ROOT / folder).rglob("*")
                     if p.suffix in (".py", ".html"))


def test_every_permission_is_checked_somewhere():
    code = _sources("web", "engine", "processes")
    unused = [p for p in PERMISSIONS if code.count(f'"{p}"') + code.count(f"'{p}'") < 2]
    assert unused == []  # defined once in the table, checked at least once elsewhere


def test_web_code_names_permissions_never_roles():
    asking = [f"{p.relative_to(ROOT)}" for p in (ROOT / "web").rglob("*")
              if p.suffix in (".py", ".html") and re.search(r"has_role\(", p.read_text("utf-8"))]
    assert asking == []


@pytest.mark.parametrize(("username", "permission", "expected"), [
    ("agent1", "record_complaint", True),
    ("agent1", "deploy_process", False),
    ("agent1", "read_escalations", False),
    ("leader1", "read_escalations", True),
    ("leader1", "read_every_escalation", False),
    ("manager1", "read_every_escalation", True),
    ("manager1", "administer", False),
    ("analyst1", "deploy_process", True),
    ("analyst1", "view_customer_data", False),
    ("admin", "deploy_process", True),
    ("admin", "administer", True),
])
def test_roles_hold_their_permissions(store, username, permission, expected):
    session, _engine = store
    assert allowed(user_by_name(session, username), permission) is expected


def test_no_user_holds_nothing_and_a_typo_is_an_error(store):
    session, _engine = store
    assert allowed(None, "administer") is False
    with pytest.raises(KeyError):
        allowed(user_by_name(session, "admin"), "adminster")


def test_a_case_is_held_or_resumed_by_a_step_holder_a_leader_or_a_manager_only(bundled):
    from engine.errors import Forbidden
    from engine.models import open_tasks_of_instance
    from tests.conftest import INTAKE, T0

    session, engine = bundled
    agent1, agent2 = user_by_name(session, "agent1"), user_by_name(session, "agent2")
    instance = engine.start(session, "complaint", INTAKE, actor=agent1, now=T0)
    session.commit()
    (task,) = open_tasks_of_instance(session, instance.id)
    assert task.assignee_id == agent1.id
    with pytest.raises(Forbidden):  # agent2 may read the case (same group) but holds nothing in it
        engine.suspend(session, instance.id, "等待客户", actor=agent2, now=T0)
    session.rollback()
    engine.suspend(session, instance.id, "等待客户", actor=agent1, now=T0)  # the holder
    session.commit()
    with pytest.raises(Forbidden):
        engine.resume(session, instance.id, actor=agent2, now=T0)
    session.rollback()
    engine.resume(session, instance.id, actor=user_by_name(session, "leader1"), now=T0)  # a leader
    session.commit()
    assert instance.status == "running"
