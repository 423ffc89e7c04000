"""REST API: administration of users and groups (DESIGN.md "Urging, administration (contract)").

``GET|POST /api/v1/users`` (``POST {username, name, password, mobile, extension, roles, groups}``
→ 201, a taken user name → 409), ``GET|PATCH /api/v1/users/<username>`` (name, mobile, extension,
roles, groups, active; ``password`` for an administrator's reset), ``GET|POST /api/v1/groups``,
``GET|PATCH /api/v1/groups/<code>`` (code, name, name_en, leaders, level, city, assignment), all for
holders of ``administer`` only; ``POST /api/v1/users/me/password {old, new}`` for everyone.
Passwords and hashes are never returned; deactivating a user revokes their tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, g, jsonify, request

from engine import administration as admin
from engine.clock import utcnow
from engine.people import ASSIGNMENT_MODES, GROUP_LEVELS

from .. import admin_people
from ..auth import Throttled, issue_token
from ..errors import error_response
from ..extensions import db
from ..people_text import field_messages
from ..views_helpers import engine
from .guards import api_login_required, permission_guard
from .openapi import BOOLEAN, ID, INSTANT, INTEGER, STRING, documented, items_of, nullable, obj
from .shapes import json_body

NAMES = {"type": "array", "items": STRING}
ROLE_LIST = {"type": "array", "items": STRING}  # codes of the roles table (GET /api/v1/roles)
USER = obj({"id": ID, "username": STRING, "name": STRING, "mobile": nullable(STRING),
            "extension": nullable(STRING), "roles": ROLE_LIST, "groups": NAMES, "active": BOOLEAN,
            "created_at": nullable(INSTANT)})
USER_FIELDS = {"name": {"type": "string", "minLength": 1, "maxLength": 80},
               "mobile": nullable({"type": "string", "pattern": "^[0-9]{3,20}$"}),
               "extension": nullable({"type": "string", "pattern": "^[0-9]{2,10}$"}),
               "roles": {**ROLE_LIST, "minItems": 1}, "groups": NAMES}
NEW_USER = obj({"username": {"type": "string", "pattern": admin.USERNAME.pattern},
                "password": {"type": "string", "minLength": admin.PASSWORD_MIN, "maxLength": admin.PASSWORD_MAX},
                **USER_FIELDS}, ["username", "name", "password"], additional=False)
USER_CHANGE = obj({**USER_FIELDS, "active": BOOLEAN,
                   "password": {"type": "string", "minLength": admin.PASSWORD_MIN, "maxLength": admin.PASSWORD_MAX}},
                  [], additional=False)
LEVEL = {"type": "string", "enum": list(GROUP_LEVELS)}
ASSIGNMENT = {"type": "string", "enum": list(ASSIGNMENT_MODES)}
GROUP = obj({"id": ID, "code": STRING, "name": STRING, "name_en": STRING, "leaders": NAMES, "level": LEVEL,
             "city": nullable(STRING), "assignment": ASSIGNMENT, "members": INTEGER},
            ["id", "code", "name", "name_en", "leaders", "level", "city", "assignment"])
GROUP_FIELDS = {"name": {"type": "string", "minLength": 1, "maxLength": 80},
                "name_en": nullable({"type": "string", "maxLength": 80}), "leaders": NAMES, "level": LEVEL,
                "city": nullable({"type": "string", "maxLength": 40}), "assignment": ASSIGNMENT}
NEW_GROUP = obj({"code": {"type": "string", "pattern": admin.GROUP_CODE.pattern}, **GROUP_FIELDS},
                ["code", "name"], additional=False)
GROUP_CHANGE = obj(GROUP_FIELDS, [], additional=False)


def register(bp: Blueprint) -> None:
    bp.get("/users")(list_users)
    bp.post("/users")(create_user)
    bp.post("/users/me/password")(change_own_password)
    bp.get("/users/<username>")(get_user)
    bp.patch("/users/<username>")(update_user)
    bp.get("/groups")(list_groups)
    bp.post("/groups")(create_group)
    bp.get("/groups/<code>")(get_group)
    bp.patch("/groups/<code>")(update_group)


def admin_required(view: Callable) -> Callable:
    """A caller holding ``administer`` (bearer token; the signed-in session for reading); others
    get 403 naming that permission (``guards.lacks``)."""

    @permission_guard("administer")
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except admin.AdminInvalid as exc:
            db.session.rollback()
            return error_response(422, "validation_failed", exc.message, fields=field_messages(exc))

    return wrapped


@documented("Users, by user name (administrators); ?q searches user name, name, mobile and extension",
            response=items_of(USER), query={"q": STRING, "role": STRING,
                                            "group": STRING, "active": {"type": "string", "enum": ["1", "0"]}})
@admin_required
def list_users():
    active = request.args.get("active")
    users = admin.find_users(db.session, text=request.args.get("q", ""), role=request.args.get("role", ""),
                             group=request.args.get("group", ""),
                             active=None if active in (None, "") else active.lower() in ("1", "true", "yes"))
    return jsonify({"items": [admin.user_summary(u) for u in users]})


@documented("Create a user (administrators); a taken user name is 409", request=NEW_USER, status=201,
            response=USER)
@admin_required
def create_user():
    user = admin.create_user(db.session, json_body(), actor=g.api_user.username, now=utcnow())
    db.session.commit()
    return jsonify(admin.user_summary(user)), 201


@documented("A user (administrators)", response=USER)
@admin_required
def get_user(username: str):
    return jsonify(admin.user_summary(admin.get_user(db.session, username)))


@documented("Change a user's name, mobile, extension, roles, groups, active or (a reset) password "
            "(administrators); deactivation revokes their tokens", request=USER_CHANGE, response=USER)
@admin_required
def update_user(username: str):
    user = admin.get_user(db.session, username)
    admin.update_user(db.session, user, json_body(), actor=g.api_user.username, now=utcnow())
    db.session.commit()
    return jsonify(admin.user_summary(user))


@documented("Change the caller's own password; their tokens are revoked and a new one is returned",
            request=obj({"old": STRING, "new": {"type": "string", "minLength": admin.PASSWORD_MIN}}),
            response=obj({"username": STRING, "token": STRING}), statuses=(429,))
@api_login_required
def change_own_password():
    """The caller's new password; their tokens are revoked and a new one is returned. A wrong old
    password counts as a failed sign-in (and is throttled like one)."""
    body = json_body()
    try:
        admin_people.change_own_password(g.api_user, body.get("old"), body.get("new"))
    except Throttled as exc:
        return error_response(429, "too_many_attempts", str(exc))
    except admin.AdminInvalid as exc:
        return error_response(422, "validation_failed", exc.message, fields=field_messages(exc))
    return jsonify({"username": g.api_user.username, "token": issue_token(g.api_user)})


@documented("Groups with their levels, leaders, assignment modes and member counts (administrators)",
            response=items_of(GROUP))
@admin_required
def list_groups():
    return jsonify({"items": [admin.group_summary(grp, members) for grp, members in admin.list_groups(db.session)]})


@documented("Create a group (administrators); a taken code or name is 409", request=NEW_GROUP, status=201,
            response=GROUP)
@admin_required
def create_group():
    group = admin.create_group(db.session, json_body(), actor=g.api_user.username, now=utcnow())
    db.session.commit()
    engine().groups.forget()  # lanes may name the new group
    return jsonify(admin.group_summary(group)), 201


@documented("A group (administrators)", response=GROUP)
@admin_required
def get_group(code: str):
    return jsonify(admin.group_summary(admin.get_group(db.session, code)))


@documented("Change a group's name, leaders (the first receives escalations), level, city or "
            "assignment mode (administrators)", request=GROUP_CHANGE, response=GROUP)
@admin_required
def update_group(code: str):
    group = admin.get_group(db.session, code)
    admin.update_group(db.session, group, json_body(), actor=g.api_user.username, now=utcnow())
    db.session.commit()
    engine().groups.forget()
    return jsonify(admin.group_summary(group))
