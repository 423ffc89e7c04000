"""Sign-in hardening (issue 17, item 5): failures throttled per account and per address on the web
form and the token endpoint alike, tokens that hold nothing of the password and can be revoked,
and security headers on every response."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

import web.auth
from engine.people import user_by_name

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    now = {"at": NOW}
    monkeypatch.setattr(web.auth, "utcnow", lambda: now["at"])
    return now


def _token(client, username, password="kefu-demo", address="10.0.0.1"):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_five_failures_lock_the_account_for_a_while_even_with_the_right_password(client, clock):
    for _ in range(5):
        assert _token(client, "agent1", "guess").status_code == 401
    locked = _token(client, "agent1")
    assert locked.status_code == 429 and locked.get_json()["error"] == "too_many_attempts"
    page = client.post("/login", data={"username": "agent1", "password": "kefu-demo"},
                       environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert page.status_code == 429 and "登录失败次数过多" in page.get_data(as_text=True)
    assert _token(client, "agent2").status_code == 200  # other accounts are not affected
    clock["at"] = NOW + timedelta(minutes=16)
    assert _token(client, "agent1").status_code == 200


def test_a_success_clears_the_accounts_earlier_failures(client, clock):
    for _ in range(4):
        _token(client, "agent1", "guess")
    assert _token(client, "agent1").status_code == 200
    for _ in range(4):
        _token(client, "agent1", "guess")
    assert _token(client, "agent1").status_code == 200


def test_one_address_trying_many_accounts_is_throttled(client, clock):
    for i in range(20):
        _token(client, f"nobody{i}", "guess", address="10.9.9.9")
    assert _token(client, "agent1", address="10.9.9.9").status_code == 429
    assert _token(client, "agent1", address="10.0.0.5").status_code == 200


def test_tokens_hold_nothing_of_the_password_and_can_be_revoked(app, client, clock):
    token = _token(client, "agent1").get_json()["token"]
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert set(payload) == {"uid", "v"}
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/processes", headers=headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/processes", headers=headers).status_code == 401
    # A new password and deactivation revoke too.
    from web.extensions import db

    token = _token(client, "agent2").get_json()["token"]
    with app.app_context():
        user = user_by_name(db.session, "agent2")
        user.set_password("a-new-password-2026")
        db.session.commit()
    assert client.get("/api/v1/processes", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    token = _token(client, "leader1").get_json()["token"]
    with app.app_context():
        user_by_name(db.session, "leader1").active = False
        db.session.commit()
    assert client.get("/api/v1/processes", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_every_response_carries_the_security_headers(client, token):
    for answer in (client.get("/login"), client.get("/api/v1/processes", headers=token("agent1"))):
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "same-origin"


def _browser(app, username, password="kefu-demo"):
    browser = app.test_client()
    assert browser.post("/login", data={"username": username, "password": password}).status_code == 302
    return browser


def _signed_in(browser) -> bool:
    return browser.get("/inbox").status_code == 200


def test_browser_sessions_end_with_a_new_password(app, clock):
    """The auditor's F7: a session in another browser outlived a password change and an
    administrator's reset."""
    here, elsewhere = _browser(app, "agent1"), _browser(app, "agent1")
    answer = here.post("/account/password", data={"old": "kefu-demo", "new": "Neues-Passwort-26",
                                                  "confirm": "Neues-Passwort-26"})
    assert answer.status_code == 302, answer.get_data(as_text=True)[-500:]
    assert _signed_in(here)  # the browser that changed it stays signed in
    assert not _signed_in(elsewhere)

    reset = _browser(app, "agent2")
    admin = _browser(app, "admin")
    assert admin.post("/admin/users/agent2/password", data={"password": "Reset-Passwort-26"}).status_code == 302
    assert not _signed_in(reset)


def test_a_session_from_before_versions_or_with_a_forged_version_is_not_accepted(app):
    from web.auth import _load_user
    from web.extensions import db

    with app.app_context():
        user = user_by_name(db.session, "agent1")
        assert _load_user(user.get_id()) is user
        assert _load_user(str(user.id)) is None  # an old cookie holding the id only
        assert _load_user(f"{user.id}.{(user.token_version or 1) + 1}") is None
        assert _load_user(f"{user.id}.x") is None and _load_user("x.1") is None
