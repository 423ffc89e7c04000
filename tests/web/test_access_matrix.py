"""Every role × every endpoint and page: a request is refused exactly when the role lacks the
permission the view needs, read from the roles table (engine/roles.py) through ``allowed``.

Where the permission comes from, per URL rule:
- declared on the view (``permission_required`` / the API's ``permission_guard``, recorded as
  ``kefu_permission``) — read from the view itself;
- checked inside the view (``CHECKED_INSIDE``), stated here;
- nothing: ``PUBLIC`` or ``SIGNED_IN`` (any signed-in user; what they then see is limited by the
  rows, not by a permission), stated here.
A rule in none of these fails the test, so a new view must say which it is.
"""

from __future__ import annotations

import re

import pytest

from engine.access import PERMISSIONS, allowed
from engine.people import ROLES, User

PASSWORD = "Role-pass-1"
ANONYMOUS = "anonymous"

PUBLIC = {  # no sign-in needed
    "static", "auth.login", "auth.set_language", "modeler.vendor", "reports.echarts", "api.openapi_json",
    "api.token", "api.receive_dispatch", "api.receive_receipt",  # partners sign their messages
}
SIGNED_IN = {  # any signed-in user; rows limited by reach, not by a permission
    "inbox.home", "inbox.tasks", "inbox.rows", "inbox.task", "inbox.claim", "inbox.unclaim", "inbox.complete",
    "inbox.assign", "inbox.bulk_action", "people.own_password", "auth.logout", "cases.show",
    "cases.history_fragment", "cases.new", "cases.suspend", "cases.resume", "cases.urge", "case_tools.download",
    "case_tools.upload", "case_tools.add_note", "search.results", "search.save_view", "search.delete_view",
    "national.escalate", "city.transfer", "calls.index", "calls.stream", "cases.new_complaint",
    "api.logout", "api.change_own_password", "api.list_city_groups", "api.connector_operations",
    "api.list_definitions", "api.get_definition", "api.definition_bpmn", "api.escalations", "api.acknowledge",
    "api.list_instances", "api.get_instance", "api.escalate_instance", "api.resume_instance",
    "api.suspend_instance", "api.processes", "api.start_instance", "api.search_cases",
    "api.list_tasks", "api.get_task", "api.transfer_task", "api.claim", "api.complete", "api.unclaim",
    "api.urge_task", "api.claim_next",
}
CHECKED_INSIDE = {  # views that refuse inside the view, before reading anything
    "api.customer": "view_customer_data",
    "api.list_exchanges": "watch_exchanges",
    "api.incidents": "administer",
    "api.retry_incident": "administer",
    "api.list_transfers": "watch_roaming",
    "api.get_round": "run_dunning",
    "api.open_round": "run_dunning",
    "dunning.page": "run_dunning",
    "api.request_callback": "start_callback",
    "api.inbound_call": "report_calls",
    "api.upgrade_instance": "flag_upgraded",
    "api.list_rules": "manage_alert_rules",
    "api.create_rule": "manage_alert_rules",
    "api.update_rule": "manage_alert_rules",
    "api.list_alerts": "read_reports",
    "api.acceptance_report": "read_reports",
    "api.callbacks_report": "read_reports",
    "api.dunning_report": "read_reports",
    "api.roaming_report": "read_reports",
    # read_reports, or a leader of a city center (the users here lead no group)
    "api.complaints": "read_reports",
    "reports.complaints": "read_reports",
    "reports.complaints_xlsx": "read_reports",
}
NOT_REQUESTED = {"calls.stream": "an event stream that stays open"}
VALUES = {"int": "999999", "key": "complaint", "phone": "13800138000", "code": "zh", "username": "agent1",
          "path": "none.js", "default": "complaint", "kind": "calling_hours", "year": "2026"}


@pytest.fixture(autouse=True)
def _defaults_afterwards():
    """The matrix is per process: leave the defaults for the tests that follow (engine tests make no app)."""
    yield
    from engine import roles

    roles.reset()


def _url(rule) -> str:
    """The rule with sample arguments (``any(a, b)``: its first choice)."""
    def value(match: re.Match) -> str:
        converter, choices, name = match.group(1) or "default", match.group(2), match.group(3)
        if converter == "any":
            return choices.split(",")[0].strip()
        return VALUES.get(name) or VALUES.get(converter) or VALUES["default"]
    return re.sub(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>", value, rule.rule)


def _needs(app, endpoint: str) -> str | None:
    """The permission an endpoint needs (None: public or any signed-in user)."""
    declared = getattr(app.view_functions[endpoint], "kefu_permission", None)
    if declared:
        return declared
    if endpoint in CHECKED_INSIDE:
        return CHECKED_INSIDE[endpoint]
    assert endpoint in PUBLIC | SIGNED_IN, f"{endpoint}: declares no permission and is not listed in this test"
    return None


def _browsers(app) -> dict[str, object]:
    """A signed-in test client per built-in role (a user holding only that role), and an anonymous one."""
    from web.extensions import db

    with app.app_context():
        for role in ROLES:
            user = User(username=f"only-{role}", display_name=role, roles=role, active=True)
            user.set_password(PASSWORD)
            db.session.add(user)
        db.session.commit()
    browsers: dict[str, object] = {ANONYMOUS: app.test_client()}
    for role in ROLES:
        browser = app.test_client()
        response = browser.post("/login", data={"username": f"only-{role}", "password": PASSWORD})
        assert response.status_code == 302
        browsers[role] = browser
    return browsers


def _bearers(app) -> dict[str, dict[str, str]]:
    """A bearer header per role (the API's writes take no browser session)."""
    client = app.test_client()
    headers = {ANONYMOUS: {}}
    for role in ROLES:
        answer = client.post("/api/v1/auth/token", json={"username": f"only-{role}", "password": PASSWORD})
        headers[role] = {"Authorization": f"Bearer {answer.get_json()['token']}"}
    return headers


def _refused(response, anonymous: bool, api: bool) -> bool:
    if anonymous:
        if api:
            return response.status_code == 401
        return response.status_code == 302 and "/login" in response.headers.get("Location", "")
    return response.status_code == 403


@pytest.mark.slow
def test_every_role_against_every_rule(app):
    """GET: refused exactly when the role lacks the permission; other methods: a role lacking a
    declared permission is refused before anything happens (holders are not sent bodies here)."""
    browsers = _browsers(app)
    bearers = _bearers(app)
    with app.app_context():
        from web.extensions import db

        users = {role: db.session.query(User).filter_by(username=f"only-{role}").one() for role in ROLES}
        holds = {(role, p): allowed(users[role], p) for role in ROLES for p in PERMISSIONS}
    checked = 0
    wrong = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        needs = _needs(app, rule.endpoint)
        if rule.endpoint in NOT_REQUESTED:
            continue
        api = rule.rule.startswith("/api/")
        url = _url(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for who, browser in browsers.items():
                anonymous = who == ANONYMOUS
                if rule.endpoint in PUBLIC:
                    expect_refused = False
                elif anonymous:
                    expect_refused = True
                else:
                    expect_refused = needs is not None and not holds[(who, needs)]
                if method != "GET" and not expect_refused:
                    continue  # no side effects: only refusals are probed with other methods
                response = browser.open(url, method=method, json={} if api and method != "GET" else None,
                                        headers=bearers[who] if api else {})
                checked += 1
                # 503 is an honest answer (the billing peer is not set up here); 500 never is
                if _refused(response, anonymous, api) is not expect_refused or response.status_code == 500:
                    wrong.append((method, rule.rule, who, needs, response.status_code))
                response.close()
    assert wrong == [], "\n".join(map(str, wrong))
    assert checked > 500  # the table really ran


def test_listed_endpoints_exist_and_do_not_also_declare(app):
    """The lists of this test stay true: every listed endpoint exists, none also declares a permission."""
    for endpoint in PUBLIC | SIGNED_IN | set(CHECKED_INSIDE) | set(NOT_REQUESTED):
        assert endpoint in app.view_functions, endpoint
        assert getattr(app.view_functions[endpoint], "kefu_permission", None) is None, endpoint
    assert set(CHECKED_INSIDE.values()) <= set(PERMISSIONS)


def test_a_changed_matrix_changes_the_outcome(app):
    """An administrator grants agents the reports on the matrix page: an agent opens them at once;
    revoking the managers' takes it from them."""
    browsers = _browsers(app)
    page = "/reports/acceptance"
    endpoint = app.url_map.bind("").match(page)[0]
    assert getattr(app.view_functions[endpoint], "kefu_permission", None) == "read_reports"
    assert browsers["agent"].get(page).status_code == 403
    assert browsers["manager"].get(page).status_code == 200
    admin = browsers["admin"]
    form = admin.get("/admin/permissions").get_data(as_text=True)
    granted = set(re.findall(r'name="grant" value="([^"]+)"[^>]*checked', form))
    granted |= set(re.findall(r'type="hidden" name="grant" value="([^"]+)"', form))
    granted = (granted | {"agent:read_reports"}) - {"manager:read_reports"}
    saved = admin.post("/admin/permissions", data={"grant": sorted(granted)})
    assert saved.status_code == 302
    assert browsers["agent"].get(page).status_code == 200
    assert browsers["manager"].get(page).status_code == 403
