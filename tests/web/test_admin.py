"""Administration (DESIGN.md "Urging, administration (contract)"): users and groups through the API
and the admin pages, the audit trail, the create-admin command, users' own passwords, and who may
reach which administration endpoint (every role × every endpoint)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.access import PERMISSION_LABELS, PERMISSIONS, allowed
from engine.people import ROLE_LABELS, ROLES, Group, User, user_by_name

NEW_USER = {"username": "agent9", "name": "坐席九 刘洋", "password": "Seat-9-pass", "mobile": "13800138199",
            "extension": "8009", "roles": ["agent"], "groups": ["intake"]}
ADMIN_KINDS = ("user_created", "user_updated", "user_deactivated", "user_reactivated", "password_reset",
               "password_changed", "group_created", "group_updated")
SECRET_KEYS = {"password", "password_hash", "token_version", "hash"}


def _audit(app, kind: str | None = None) -> list:
    from engine.models import AuditEvent
    from web.extensions import db

    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.instance_id.is_(None), AuditEvent.kind.in_(ADMIN_KINDS)
                                         ).order_by(AuditEvent.id)
        if kind:
            query = query.where(AuditEvent.kind == kind)
        return [(e.kind, e.actor, e.data, e.message) for e in db.session.scalars(query)]


def _sign_in(app, username: str, password: str = "kefu-demo"):
    browser = app.test_client()
    response = browser.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return browser


# ------------------------------------------------------------------------------- users: contract

def test_create_user_answers_201_without_any_password(client, token):
    response = client.post("/api/v1/users", json=NEW_USER, headers=token("admin"))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert {k: body[k] for k in ("username", "name", "mobile", "extension", "roles", "groups", "active")} == {
        "username": "agent9", "name": "坐席九 刘洋", "mobile": "13800138199", "extension": "8009",
        "roles": ["agent"], "groups": ["intake"], "active": True}
    assert not SECRET_KEYS & set(body)
    listed = client.get("/api/v1/users", headers=token("admin")).get_json()["items"]
    assert "agent9" in [u["username"] for u in listed]
    assert all(not SECRET_KEYS & set(u) for u in listed)
    assert "Seat-9-pass" not in client.get("/api/v1/users", headers=token("admin")).get_data(as_text=True)
    # the new account signs in with its password
    signed = client.post("/api/v1/auth/token", json={"username": "agent9", "password": "Seat-9-pass"})
    assert signed.status_code == 200 and signed.get_json()["roles"] == ["agent"]


def test_an_existing_username_is_409(client, token):
    assert client.post("/api/v1/users", json=NEW_USER, headers=token("admin")).status_code == 201
    again = client.post("/api/v1/users", json={**NEW_USER, "extension": "8010"}, headers=token("admin"))
    assert again.status_code == 409 and again.get_json()["error"] == "conflict"
    demo = client.post("/api/v1/users", json={**NEW_USER, "username": "agent1", "extension": ""},
                       headers=token("admin"))
    assert demo.status_code == 409


@pytest.mark.parametrize(("change", "field"), [
    ({"username": "Agent 9"}, "username"),
    ({"username": "me"}, "username"),
    ({"username": ""}, "username"),
    ({"password": "short1"}, "password"),
    ({"password": "password"}, "password"),
    ({"password": "xxagent9xx"}, "password"),
    ({"password": 12345678}, "password"),
    ({"name": ""}, "name"),
    ({"roles": ["agent", "boss"]}, "roles"),
    ({"roles": []}, "roles"),
    ({"roles": "agent"}, "roles"),
    ({"groups": ["intake", "nowhere"]}, "groups"),
    ({"mobile": "138-0013-8199"}, "mobile"),
    ({"extension": "80a9"}, "extension"),
    ({"extension": "8001"}, "extension"),   # agent1's seat
    ({"salary": 1}, "salary"),
])
def test_invalid_users_are_422_with_fields(client, token, change, field):
    response = client.post("/api/v1/users", json={**NEW_USER, **change}, headers=token("admin"))
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["error"] == "validation_failed" and field in body["fields"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["fields"][field])  # Chinese by default


def test_patch_changes_the_contract_fields(app, client, token):
    response = client.patch("/api/v1/users/agent2", headers=token("admin"), json={
        "name": "坐席二 李强（组长）", "mobile": "13900000000", "roles": ["agent", "leader"],
        "groups": ["intake", "quality"]})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["name"], body["mobile"], body["roles"], body["groups"]) == (
        "坐席二 李强（组长）", "13900000000", ["agent", "leader"], ["intake", "quality"])
    assert not SECRET_KEYS & set(body)
    assert client.get("/api/v1/users/agent2", headers=token("admin")).get_json() == body
    assert client.patch("/api/v1/users/nobody", json={"name": "x"}, headers=token("admin")).status_code == 404
    assert client.get("/api/v1/users/nobody", headers=token("admin")).status_code == 404
    assert client.patch("/api/v1/users/agent2", json={"active": "no"}, headers=token("admin")).status_code == 422
    assert client.patch("/api/v1/users/agent2", json={"username": "x2"}, headers=token("admin")).status_code == 422
    filtered = client.get("/api/v1/users?role=leader&group=quality", headers=token("admin")).get_json()["items"]
    assert "agent2" in [u["username"] for u in filtered] and "agent1" not in [u["username"] for u in filtered]


def test_a_deactivated_users_token_and_session_stop_working(app, client, token):
    header = token("agent1")
    browser = _sign_in(app, "agent1")
    assert client.get("/api/v1/tasks?scope=mine", headers=header).status_code == 200
    assert browser.get("/inbox").status_code == 200
    response = client.patch("/api/v1/users/agent1", json={"active": False}, headers=token("admin"))
    assert response.status_code == 200 and response.get_json()["active"] is False
    assert client.get("/api/v1/tasks?scope=mine", headers=header).status_code == 401
    page = browser.get("/inbox")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    refused = client.post("/api/v1/auth/token", json={"username": "agent1", "password": "kefu-demo"})
    assert refused.status_code == 401
    # reactivated: a new sign-in works, the old token stays revoked
    client.patch("/api/v1/users/agent1", json={"active": True}, headers=token("admin"))
    assert client.get("/api/v1/tasks?scope=mine", headers=header).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "agent1", "password": "kefu-demo"}).status_code == 200
    kinds = [k for k, *_rest in _audit(app)]
    assert kinds[-2:] == ["user_deactivated", "user_reactivated"]


def test_the_last_admin_stays_and_nobody_deactivates_themselves(client, token):
    self_off = client.patch("/api/v1/users/admin", json={"active": False}, headers=token("admin"))
    assert self_off.status_code == 422 and "active" in self_off.get_json()["fields"]
    demoted = client.patch("/api/v1/users/admin", json={"roles": ["manager"]}, headers=token("admin"))
    assert demoted.status_code == 422 and "roles" in demoted.get_json()["fields"]
    second = client.post("/api/v1/users", json={**NEW_USER, "username": "admin2", "roles": ["admin"],
                                                "extension": "", "groups": []}, headers=token("admin"))
    assert second.status_code == 201
    assert client.patch("/api/v1/users/admin", json={"roles": ["admin", "manager"]},
                        headers=token("admin")).status_code == 200


def test_an_admin_resets_a_password(client, token):
    old = token("agent2")
    response = client.patch("/api/v1/users/agent2", json={"password": "Fresh-pass-22"}, headers=token("admin"))
    assert response.status_code == 200 and not SECRET_KEYS & set(response.get_json())
    assert client.get("/api/v1/tasks", headers=old).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "agent2", "password": "Fresh-pass-22"}).status_code == 200
    weak = client.patch("/api/v1/users/agent2", json={"password": "123"}, headers=token("admin"))
    assert weak.status_code == 422 and "password" in weak.get_json()["fields"]
    own = client.patch("/api/v1/users/admin", json={"password": "Admin-new-pass-1"}, headers=token("admin"))
    assert own.status_code == 422 and "password" in own.get_json()["fields"]  # needs the old one


# ------------------------------------------------------------------------------------ audit trail

def test_every_change_is_audited_with_actor_and_changes_never_the_password(app, client, token):
    client.post("/api/v1/users", json=NEW_USER, headers=token("admin"))
    client.patch("/api/v1/users/agent9", json={"name": "坐席九", "groups": []}, headers=token("admin"))
    client.patch("/api/v1/users/agent9", json={"password": "Other-pass-99"}, headers=token("admin"))
    client.post("/api/v1/groups", json={"code": "km", "name": "昆明地市中心", "level": "city", "city": "昆明",
                                        "leaders": ["leader1"]}, headers=token("admin"))
    client.patch("/api/v1/groups/km", json={"assignment": "round_robin"}, headers=token("admin"))
    rows = _audit(app)
    assert [(kind, actor) for kind, actor, _data, _msg in rows] == [
        ("user_created", "admin"), ("user_updated", "admin"), ("password_reset", "admin"),
        ("group_created", "admin"), ("group_updated", "admin")]
    assert rows[0][2]["username"] == "agent9" and rows[0][2]["changes"]["roles"] == ["agent"]
    assert rows[1][2]["changes"] == {"name": "坐席九", "groups": []}
    assert rows[2][2]["changes"] == {"password": "changed"}
    assert rows[4][2] == {"group": "km", "changes": {"assignment": "round_robin"}}
    everything = repr(rows)
    assert "Seat-9-pass" not in everything and "Other-pass-99" not in everything
    assert "scrypt" not in everything and "pbkdf2" not in everything


# ---------------------------------------------------------------------------------------- groups

def test_groups_with_levels_leaders_and_assignment(app, client, token):
    admin = token("admin")
    body = {"code": "km", "name": "昆明地市中心", "name_en": "Kunming city center", "level": "city",
            "city": "昆明", "leaders": ["leader1", "agent1"], "assignment": "least_loaded"}
    created = client.post("/api/v1/groups", json=body, headers=admin)
    assert created.status_code == 201, created.get_json()
    assert {k: created.get_json()[k] for k in body} == body
    listed = {g["code"]: g for g in client.get("/api/v1/groups", headers=admin).get_json()["items"]}
    assert listed["km"]["leaders"] == ["leader1", "agent1"]
    assert listed["intake"]["leaders"] == ["leader1"] and listed["intake"]["level"] == "province"
    assert listed["intake"]["assignment"] == "manual" and listed["intake"]["members"] == 3
    assert client.post("/api/v1/groups", json=body, headers=admin).status_code == 409
    with app.app_context():
        from web.extensions import db

        group = db.session.scalars(select(Group).where(Group.code == "km")).one()
        assert group.leader.username == "leader1"  # leader_id stays the first leader
        assert group.leader_ids == {user_by_name(db.session, "leader1").id, user_by_name(db.session, "agent1").id}
    patched = client.patch("/api/v1/groups/km", json={"leaders": ["agent1"], "level": "province"}, headers=admin)
    assert patched.status_code == 200, patched.get_json()
    assert (patched.get_json()["leaders"], patched.get_json()["city"]) == (["agent1"], None)
    assert client.patch("/api/v1/groups/nowhere", json={"name": "x"}, headers=admin).status_code == 404
    assert client.get("/api/v1/groups/km", headers=admin).get_json()["leaders"] == ["agent1"]


@pytest.mark.parametrize(("change", "field"), [
    ({"code": "Bad Code"}, "code"),
    ({"name": ""}, "name"),
    ({"level": "county"}, "level"),
    ({"level": "city", "city": ""}, "city"),
    ({"level": "province", "city": "昆明"}, "city"),
    ({"assignment": "random"}, "assignment"),
    ({"leaders": ["nobody"]}, "leaders"),
    ({"leaders": "leader1"}, "leaders"),
])
def test_invalid_groups_are_422(client, token, change, field):
    body = {"code": "qj", "name": "曲靖地市中心", "level": "city", "city": "曲靖", **change}
    response = client.post("/api/v1/groups", json=body, headers=token("admin"))
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["fields"]


def test_a_second_leader_leads_the_groups_tasks(app, client, token):
    """Leaders beyond the first may reassign their group's tasks and see its escalations."""
    client.patch("/api/v1/groups/intake", json={"leaders": ["leader1", "agent2", "netlead1"]},
                 headers=token("admin"))
    assert client.get("/api/v1/escalations", headers=token("netlead1")).status_code == 200
    assert _sign_in(app, "netlead1").get("/escalations").status_code == 200
    from engine.access import leads
    from engine.models import HumanTask
    from web.escalations import led_group_ids
    from web.extensions import db

    with app.app_context():
        intake = db.session.scalars(select(Group).where(Group.code == "intake")).one()
        task = HumanTask(group_id=intake.id)
        assert leads(db.session, user_by_name(db.session, "agent2"), task)
        assert leads(db.session, user_by_name(db.session, "leader1"), task)
        assert not leads(db.session, user_by_name(db.session, "agent1"), task)
        assert intake.id in led_group_ids(user_by_name(db.session, "netlead1"))


# ----------------------------------------------------------------------------------- own password

def test_users_change_their_own_password_through_the_api(app, client, token):
    old_header = token("agent1")
    wrong = client.post("/api/v1/users/me/password", json={"old": "nope-nope", "new": "My-new-pass-1"},
                        headers=old_header)
    assert wrong.status_code == 422 and "old" in wrong.get_json()["fields"]
    weak = client.post("/api/v1/users/me/password", json={"old": "kefu-demo", "new": "1234"}, headers=old_header)
    assert weak.status_code == 422 and "new" in weak.get_json()["fields"]
    done = client.post("/api/v1/users/me/password", json={"old": "kefu-demo", "new": "My-new-pass-1"},
                       headers=old_header)
    assert done.status_code == 200 and set(done.get_json()) == {"username", "token"}
    assert client.get("/api/v1/tasks", headers=old_header).status_code == 401
    assert client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {done.get_json()['token']}"}).status_code == 200
    assert client.post("/api/v1/auth/token", json={"username": "agent1", "password": "My-new-pass-1"}).status_code == 200
    assert client.post("/api/v1/users/me/password", json={"old": "x", "new": "y"}).status_code == 401
    assert [(k, a) for k, a, *_ in _audit(app, "password_changed")] == [("password_changed", "agent1")]


def test_users_change_their_own_password_on_a_page(app):
    browser = _sign_in(app, "net1")
    page = browser.get("/account/password")
    assert page.status_code == 200 and "修改密码" in page.get_data(as_text=True)
    differ = browser.post("/account/password", data={"old": "kefu-demo", "new": "Net-pass-001", "confirm": "x"})
    assert differ.status_code == 422
    wrong = browser.post("/account/password", data={"old": "bad", "new": "Net-pass-001", "confirm": "Net-pass-001"})
    assert wrong.status_code == 422 and "当前密码不正确" in wrong.get_data(as_text=True)
    done = browser.post("/account/password", data={"old": "kefu-demo", "new": "Net-pass-001",
                                                   "confirm": "Net-pass-001"})
    assert done.status_code == 302
    assert browser.get("/inbox").status_code == 200  # still signed in
    _sign_in(app, "net1", "Net-pass-001")


def test_repeated_wrong_old_passwords_are_throttled(client, token):
    header = token("agent2")
    for _ in range(5):
        client.post("/api/v1/users/me/password", json={"old": "guess-123", "new": "Whatever-12"}, headers=header)
    throttled = client.post("/api/v1/users/me/password", json={"old": "kefu-demo", "new": "Whatever-12"},
                            headers=header)
    assert throttled.status_code == 429


# ------------------------------------------------------------------------------ create-admin CLI

def test_create_admin_command(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["kefu", "create-admin", "--username", "root", "--name", "总管理员",
                                 "--password", "Str0ng-Admin-pw"])
    assert result.exit_code == 0, result.output
    assert "root" in result.output
    again = runner.invoke(args=["kefu", "create-admin", "--username", "root", "--password", "Other-Admin-pw9"])
    assert again.exit_code == 0 and "already exists" in again.output
    weak = runner.invoke(args=["kefu", "create-admin", "--username", "root2", "--name", "x", "--password", "admin123"])
    assert weak.exit_code == 1 and isinstance(weak.exception, SystemExit)
    assert "password: 密码太简单" in weak.output
    short = runner.invoke(args=["kefu", "create-admin", "--username", "root3", "--name", "x", "--password", "abc"])
    assert short.exit_code == 1 and "至少8个字符" in short.output
    asked = runner.invoke(args=["kefu", "create-admin"], input="root4\n管理员四\nAsked-pass-44\nAsked-pass-44\n")
    assert asked.exit_code == 0, asked.output
    from web.extensions import db

    with app.app_context():
        root = user_by_name(db.session, "root")
        assert root.role_set == {"admin"} and root.display_name == "总管理员" and root.check_password("Str0ng-Admin-pw")
        assert user_by_name(db.session, "root2") is None and user_by_name(db.session, "root3") is None
        assert user_by_name(db.session, "root4").check_password("Asked-pass-44")
    assert [(k, a) for k, a, *_ in _audit(app, "user_created")] == [("user_created", "create-admin")] * 2
    signed = app.test_client().post("/api/v1/auth/token", json={"username": "root", "password": "Str0ng-Admin-pw"})
    assert signed.status_code == 200


# ---------------------------------------------------------------------------------------- pages

def test_admin_pages_manage_users_and_groups(app):
    browser = _sign_in(app, "admin")
    listing = browser.get("/admin/users?q=坐席")
    text = listing.get_data(as_text=True)
    assert listing.status_code == 200 and "用户管理" in text and "agent1" in text and "manager1" not in text
    assert "用户管理" in browser.get("/inbox").get_data(as_text=True)  # the nav entry
    assert "agent1" not in browser.get("/admin/users?role=manager").get_data(as_text=True)
    form = browser.get("/admin/users/new")
    assert form.status_code == 200 and "新建用户" in form.get_data(as_text=True)
    bad = browser.post("/admin/users/new", data={"username": "seat7", "name": "坐席七", "password": "short",
                                                 "roles": ["agent"]})
    assert bad.status_code == 422 and "至少" in bad.get_data(as_text=True)
    created = browser.post("/admin/users/new", data={
        "username": "seat7", "name": "坐席七", "password": "Seat-7-pass", "mobile": "13800138177",
        "extension": "8007", "roles": ["agent", "leader"], "groups": ["intake", "quality"]})
    assert created.status_code == 302
    taken = browser.post("/admin/users/new", data={"username": "seat7", "name": "x", "password": "Seat-7-pass",
                                                   "roles": ["agent"]})
    assert taken.status_code == 409
    edit = browser.get("/admin/users/seat7")
    assert edit.status_code == 200 and "重置密码" in edit.get_data(as_text=True)
    saved = browser.post("/admin/users/seat7", data={"name": "坐席七（改）", "mobile": "", "extension": "8007",
                                                     "roles": ["agent"], "groups": ["intake"]})
    assert saved.status_code == 302
    assert browser.post("/admin/users/seat7/password", data={"password": "Seat-7-new!"}).status_code == 302
    assert browser.post("/admin/users/seat7/active", data={"active": "0"}).status_code == 302
    with app.app_context():
        from web.extensions import db

        seat = user_by_name(db.session, "seat7")
        assert (seat.display_name, seat.phone, seat.role_set, [g.code for g in seat.groups], seat.active) == (
            "坐席七（改）", None, {"agent"}, ["intake"], False)
        assert seat.check_password("Seat-7-new!")
    assert "停用" in browser.get("/admin/users?active=0").get_data(as_text=True)
    assert browser.get("/admin/users/nobody").status_code == 404
    # groups
    groups = browser.get("/admin/groups")
    assert groups.status_code == 200 and "投诉受理组" in groups.get_data(as_text=True)
    assert "省中心" in groups.get_data(as_text=True)
    new_group = browser.post("/admin/groups/new", data={
        "code": "km", "name": "昆明地市中心", "level": "city", "city": "昆明", "leaders": "leader1, agent2",
        "assignment": "round_robin"})
    assert new_group.status_code == 302
    assert "昆明地市中心" in browser.get("/admin/groups").get_data(as_text=True)
    refused = browser.post("/admin/groups/km", data={"name": "昆明地市中心", "level": "city", "city": "",
                                                     "leaders": "", "assignment": "manual"})
    assert refused.status_code == 422 and "地市中心" in refused.get_data(as_text=True)
    assert browser.post("/admin/groups/km", data={"name": "昆明地市中心", "level": "city", "city": "昆明",
                                                  "leaders": "agent2", "assignment": "least_loaded"}).status_code == 302
    with app.app_context():
        from web.extensions import db

        km = db.session.scalars(select(Group).where(Group.code == "km")).one()
        assert ([u.username for u in km.leaders], km.assignment, km.level, km.city) == (
            ["agent2"], "least_loaded", "city", "昆明")
    assert browser.get("/admin/groups/nowhere").status_code == 404


def test_a_user_deactivated_on_the_page_is_signed_out(app):
    agent = _sign_in(app, "agent2")
    admin = _sign_in(app, "admin")
    assert admin.post("/admin/users/agent2/active", data={"active": "0", "back": "list"}).status_code == 302
    assert agent.get("/inbox").status_code == 302
    own = admin.post("/admin/users/admin/active", data={"active": "0"})
    assert own.status_code == 302
    with app.app_context():
        from web.extensions import db

        assert user_by_name(db.session, "admin").active


def test_permission_matrix_lists_every_permission_in_chinese(app):
    page = _sign_in(app, "admin").get("/admin/permissions")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for permission in PERMISSIONS:
        assert permission in text and PERMISSION_LABELS[permission][0] in text
    for role in ROLES:
        assert ROLE_LABELS[role][0] in text
    held = text.count('class="held"')
    assert held == sum(1 for p in PERMISSIONS for r in ROLES if r == "admin" or r in PERMISSIONS[p])


def test_every_permission_and_role_has_labels():
    assert set(PERMISSION_LABELS) == set(PERMISSIONS)
    assert set(ROLE_LABELS) == set(ROLES)
    assert all(zh and en for zh, en in [*PERMISSION_LABELS.values(), *ROLE_LABELS.values()])


# ------------------------------------------------------------- every role × every admin endpoint

API_ENDPOINTS = [
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {**NEW_USER, "username": "probe1", "extension": "", "groups": []}),
    ("GET", "/api/v1/users/agent1", None),
    ("PATCH", "/api/v1/users/agent1", {"mobile": "13800138000"}),
    ("GET", "/api/v1/groups", None),
    ("POST", "/api/v1/groups", {"code": "probe", "name": "探测组"}),
    ("GET", "/api/v1/groups/intake", None),
    ("PATCH", "/api/v1/groups/intake", {"assignment": "manual"}),
]
PAGES = [
    ("GET", "/admin/users", None),
    ("GET", "/admin/users/new", None),
    ("POST", "/admin/users/new", {"username": "probe2", "name": "探测", "password": "Probe-pass-2", "roles": "agent"}),
    ("GET", "/admin/users/agent1", None),
    ("POST", "/admin/users/agent1", {"name": "坐席一 王芳", "roles": "agent", "groups": "intake",
                                     "extension": "8001", "mobile": "13800138101"}),
    ("POST", "/admin/users/agent2/password", {"password": "Probe-pass-3"}),
    ("POST", "/admin/users/agent2/active", {"active": "1"}),
    ("GET", "/admin/groups", None),
    ("GET", "/admin/groups/new", None),
    ("POST", "/admin/groups/new", {"code": "probe3", "name": "探测三", "level": "province", "assignment": "manual"}),
    ("GET", "/admin/groups/intake", None),
    ("POST", "/admin/groups/intake", {"name": "投诉受理组", "level": "province", "leaders": "leader1",
                                      "assignment": "manual"}),
    ("GET", "/admin/permissions", None),
]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_against_every_admin_endpoint(app, role):
    """Only holders of ``administer`` reach the administration; everyone else gets 403, signed
    out people 401 (API) or the sign-in page."""
    from web.extensions import db

    with app.app_context():
        user = User(username=f"only-{role}", display_name=role, roles=role, active=True)
        user.set_password("Role-pass-1")
        db.session.add(user)
        db.session.commit()
        may = allowed(user, "administer")
    assert may is (role == "admin")
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": f"only-{role}", "password": "Role-pass-1"})
    header = {"Authorization": f"Bearer {token.get_json()['token']}"}
    for method, path, body in API_ENDPOINTS:
        anonymous = client.open(path, method=method, json=body)
        assert anonymous.status_code == 401, (method, path)
        response = client.open(path, method=method, json=body, headers=header)
        if may:
            assert response.status_code in (200, 201), (method, path, response.get_json())
        else:
            assert response.status_code == 403, (method, path, response.status_code)
    anonymous = app.test_client()
    browser = _sign_in(app, f"only-{role}", "Role-pass-1")
    for method, path, form in PAGES:
        assert anonymous.open(path, method=method, data=form).status_code == 302, (method, path)
        response = browser.open(path, method=method, data=form)
        if may:
            assert response.status_code in (200, 302), (method, path, response.status_code)
        else:
            assert response.status_code == 403, (method, path, response.status_code)
    nav = browser.get("/inbox").get_data(as_text=True)
    assert ("/admin/users" in nav) is may
    # the own password page and endpoint are everyone's
    assert browser.get("/account/password").status_code == 200
    changed = client.post("/api/v1/users/me/password", json={"old": "Role-pass-1", "new": "Role-pass-2!"},
                          headers=header)
    assert changed.status_code == 200
