"""Roles and permissions as data (engine/roles.py): the matrix page and the roles pages, the
``/roles`` and ``/permissions`` API, the audit trail and its page, another process picking up a
change, and ``kefu init`` creating no demo groups."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine import roles as store
from engine.access import PERMISSIONS, allowed, current_matrix
from engine.people import ROLES, User, user_by_name


@pytest.fixture(autouse=True)
def _defaults_afterwards():
    """The matrix is per process: leave the defaults for the tests that follow (engine tests make no app)."""
    yield
    from engine import roles

    roles.reset()


def _sign_in(app, username: str, password: str = "kefu-demo"):
    browser = app.test_client()
    assert browser.post("/login", data={"username": username, "password": password}).status_code == 302
    return browser


def _grants(page: str) -> set[str]:
    checked = set(re.findall(r'name="grant" value="([^"]+)"[^>]*checked', page))
    return checked | set(re.findall(r'type="hidden" name="grant" value="([^"]+)"', page))


def test_the_seeded_tables_hold_the_code_defaults(app):
    """The migration's seed and the code defaults agree: nothing changed for anyone."""
    from web.extensions import db

    with app.app_context():
        matrix = store.read(db.session)
    assert [r.code for r in matrix.roles] == list(ROLES)
    for permission, holders in PERMISSIONS.items():
        assert matrix.holders[permission] == holders | {"admin"}


def test_the_admin_role_keeps_administer_with_the_reason(app):
    admin = _sign_in(app, "admin")
    page = admin.get("/admin/permissions").get_data(as_text=True)
    assert page.count("checkbox") == len(PERMISSIONS) * len(ROLES)
    refused = admin.post("/admin/permissions", data={"grant": sorted(_grants(page) - {"admin:administer"})})
    # the page keeps it in a hidden field; a hand-made form without it is refused with the reason
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "系统管理员角色保留" in text and "权限未保存" in text
    api = app.test_client()
    token = api.post("/api/v1/auth/token", json={"username": "admin", "password": "kefu-demo"}).get_json()["token"]
    answer = api.patch("/api/v1/roles/admin", json={"permissions": ["deploy_process"]},
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422 and "permissions" in answer.get_json()["fields"]
    from web.extensions import db

    with app.app_context():
        assert allowed(user_by_name(db.session, "admin"), "administer")


def test_a_new_role_given_to_a_user_grants_its_permissions(app):
    admin = _sign_in(app, "admin")
    created = admin.post("/admin/roles", data={"code": "quality_checker", "name": "质检员", "name_en": "Quality checker",
                                               "permissions": ["read_reports", "see_every_case"]})
    assert created.status_code == 302
    assert admin.post("/admin/roles", data={"code": "quality_checker", "name": "另一个"}).status_code == 409
    assert admin.post("/admin/roles", data={"code": "Bad Code", "name": "坏"}).status_code == 422
    form = admin.get("/admin/users/new").get_data(as_text=True)
    assert 'value="quality_checker"' in form and "质检员" in form
    made = admin.post("/admin/users/new", data={"username": "qc1", "name": "质检员 一", "password": "Qc-check-91",
                                                "roles": "quality_checker"})
    assert made.status_code == 302
    qc = _sign_in(app, "qc1", "Qc-check-91")
    assert qc.get("/reports/acceptance").status_code == 200
    assert qc.get("/admin/users").status_code == 403
    renamed = admin.post("/admin/roles/quality_checker", data={"name": "质检专员", "name_en": "QC"})
    assert renamed.status_code == 302
    assert "质检专员" in admin.get("/admin/users?role=quality_checker").get_data(as_text=True)
    audit = admin.get("/admin/audit").get_data(as_text=True)
    assert "已创建角色" in audit and "质检专员" in audit and "查看统计报表" in audit
    assert "quality_checker" in audit  # the renamed role is named by its code in the rename line


def test_roles_api_follows_the_contract(client, token):
    headers = token("admin")
    roles = client.get("/api/v1/roles", headers=headers).get_json()["items"]
    assert [r["code"] for r in roles] == list(ROLES)
    agent = next(r for r in roles if r["code"] == "agent")
    assert agent["builtin"] and "record_complaint" in agent["permissions"]
    made = client.post("/api/v1/roles", json={"code": "night_seat", "name": "夜班坐席", "permissions": ["handle_calls"]},
                       headers=headers)
    assert made.status_code == 201 and made.get_json()["permissions"] == ["handle_calls"]
    assert client.post("/api/v1/roles", json={"code": "night_seat", "name": "x"}, headers=headers).status_code == 409
    bad = client.post("/api/v1/roles", json={"code": "x2", "name": "y", "permissions": ["fly"]}, headers=headers)
    assert bad.status_code == 422 and "permissions" in bad.get_json()["fields"]
    changed = client.patch("/api/v1/roles/night_seat", json={"name_en": "Night seat",
                                                             "permissions": ["handle_calls", "record_complaint"]},
                           headers=headers)
    assert changed.status_code == 200
    assert changed.get_json() == {"code": "night_seat", "name": "夜班坐席", "name_en": "Night seat", "builtin": False,
                                  "permissions": ["record_complaint", "handle_calls"]}
    assert client.get("/api/v1/roles/nobody", headers=headers).status_code == 404
    perms = {p["name"]: p for p in client.get("/api/v1/permissions", headers=headers).get_json()["items"]}
    assert set(perms) == set(PERMISSIONS) and "night_seat" in perms["record_complaint"]["roles"]
    # the new role is a choice for users at once
    user = client.post("/api/v1/users", json={"username": "night1", "name": "夜班 一", "password": "Night-seat-77",
                                              "roles": ["night_seat"]}, headers=headers)
    assert user.status_code == 201 and user.get_json()["roles"] == ["night_seat"]
    # a manager is refused, with the permission named
    refused = client.get("/api/v1/roles", headers=token("manager1"))
    assert refused.status_code == 403 and "系统管理" in refused.get_json()["message"]


def test_calendars_refusal_names_the_permission(client, token):
    refused = client.get("/api/v1/calendars", headers=token("manager1"))
    assert refused.status_code == 403
    message = refused.get_json()["message"]
    assert "系统管理" in message and "users and groups" not in message


def test_another_process_picks_up_a_change_within_the_sync_interval(app, monkeypatch):
    """The saving process installs at once; another one (here: its cache forced stale) reloads on
    its next check once the counter moved, and not before the interval."""
    from web.extensions import db

    admin = _sign_in(app, "admin")
    page = admin.get("/admin/permissions").get_data(as_text=True)
    assert admin.post("/admin/permissions", data={"grant": sorted(_grants(page) | {"analyst:read_reports"})}).status_code == 302
    saved = current_matrix()
    assert "analyst" in saved.holders["read_reports"]
    store.reset()  # "another process": the defaults, never synced
    assert "analyst" not in current_matrix().holders["read_reports"]
    with app.app_context():
        store.sync(db.session)
        assert "analyst" in current_matrix().holders["read_reports"]
        assert current_matrix().version == saved.version
        # within the interval nothing is read, even when the counter moves
        monkeypatch.setattr(store, "read", lambda session: pytest.fail("read within the interval"))
        store.sync(db.session)
    store.reset()


def test_audit_page_lists_admin_changes_as_sentences_filtered_and_paged(app):
    admin = _sign_in(app, "admin")
    for n in range(3):
        assert admin.post("/admin/groups/new", data={"code": f"g{n}", "name": f"组{n}", "level": "province",
                                                      "assignment": "manual"}).status_code == 302
    admin.post("/admin/users/agent1", data={"name": "坐席一 王芳", "roles": "agent", "groups": "intake",
                                            "extension": "8001", "mobile": "13800138000"})
    page = admin.get("/admin/audit")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "已创建班组 g0" in text and "用户 agent1 已修改" in text and "手机：13800138000" in text
    shown = re.sub(r"<[^>]+>", "", text.partition("<table")[2])  # the table as read, not the filter's values
    assert "group_created" not in shown and "changes" not in shown and "'" not in shown
    only = admin.get("/admin/audit?kind=user_updated").get_data(as_text=True)
    assert "agent1" in only and "已创建班组" not in only
    nobody = admin.get("/admin/audit?who=manager1").get_data(as_text=True)
    assert "没有记录" in nobody
    assert admin.get("/admin/audit?since=2026-13-01").status_code == 422
    future = admin.get("/admin/audit?since=2099-01-01").get_data(as_text=True)
    assert "没有记录" in future
    english = _sign_in(app, "admin")
    english.get("/lang/en")
    assert "Group g0 created" in english.get("/admin/audit").get_data(as_text=True)
    assert _sign_in(app, "manager1").get("/admin/audit").status_code == 403


def test_audit_page_pages(app):
    from engine.clock import utcnow
    from engine.models import record_event
    from web.admin_audit import PAGE_SIZE
    from web.extensions import db

    with app.app_context():
        for n in range(PAGE_SIZE + 5):
            record_event(db.session, "password_changed", at=utcnow(), actor="agent2",
                         data={"username": "agent2", "changes": {"password": "changed"}})
        db.session.commit()
    admin = _sign_in(app, "admin")
    first = admin.get("/admin/audit?who=agent2").get_data(as_text=True)
    assert first.count("agent2 修改了自己的密码") == PAGE_SIZE and "第 1 页，共 2 页" in first
    second = admin.get("/admin/audit?who=agent2&page=2").get_data(as_text=True)
    assert second.count("agent2 修改了自己的密码") == 5


def test_init_creates_no_demo_groups_or_users(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    from engine.people import Group
    from web import create_app
    from web.cli import initialize
    from web.demo import CITY_GROUPS, GROUPS
    from web.extensions import db

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url})
    with app.app_context():
        initialize()
        codes = set(db.session.scalars(select(Group.code)))
        assert codes == {code for code, _n, _e in GROUPS}
        assert not codes & {code for code, *_rest in CITY_GROUPS}
        assert db.session.scalar(select(User.id).limit(1)) is None
        assert [r.code for r in store.read(db.session).roles] == list(ROLES)  # the seed
        db.session.remove()
        db.engine.dispose()
