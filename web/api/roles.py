"""REST API: roles and their permissions (engine/roles.py), for holders of ``administer``.

``GET /api/v1/permissions`` the permission names (fixed in code) with their labels and holders;
``GET|POST /api/v1/roles`` (``POST {code, name, name_en, permissions}`` → 201, a taken code or name
→ 409); ``GET|PATCH /api/v1/roles/<code>`` (``name``, ``name_en``, ``permissions``: the role's whole
set). The admin role keeps ``administer`` (422 naming the reason). Every change is audited and
applies at once in this process, within ``engine.roles.SYNC_SECONDS`` in the others.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from engine import roles as store
from engine.access import PERMISSION_LABELS, PERMISSIONS
from engine.administration import AdminInvalid
from engine.clock import utcnow

from ..extensions import db
from .admin import admin_required
from .openapi import BOOLEAN, STRING, documented, items_of, obj
from .shapes import json_body

NAMES = {"type": "array", "items": {"type": "string", "enum": list(PERMISSIONS)}}
ROLE = obj({"code": STRING, "name": STRING, "name_en": STRING, "builtin": BOOLEAN, "permissions": NAMES})
ROLE_NAME = {"type": "string", "minLength": 1, "maxLength": 80}
NEW_ROLE = obj({"code": {"type": "string", "pattern": store.ROLE_CODE.pattern}, "name": ROLE_NAME,
                "name_en": {"type": "string", "maxLength": 80}, "permissions": NAMES},
               ["code", "name"], additional=False)
ROLE_CHANGE = obj({"name": ROLE_NAME, "name_en": {"type": "string", "maxLength": 80}, "permissions": NAMES},
                  [], additional=False)
PERMISSION = obj({"name": STRING, "label": STRING, "label_en": STRING,
                  "roles": {"type": "array", "items": STRING}})


def register(bp: Blueprint) -> None:
    bp.get("/permissions")(list_permissions)
    bp.get("/roles")(list_roles)
    bp.post("/roles")(create_role)
    bp.get("/roles/<code>")(get_role)
    bp.patch("/roles/<code>")(update_role)


@documented("The permissions (a fixed set in code) with the roles holding each (administrators)",
            response=items_of(PERMISSION))
@admin_required
def list_permissions():
    matrix = store.read(db.session)
    return jsonify({"items": [{"name": p, "label": PERMISSION_LABELS[p][0], "label_en": PERMISSION_LABELS[p][1],
                               "roles": [r.code for r in matrix.roles if r.code in matrix.holders[p]]}
                              for p in PERMISSIONS]})


@documented("Roles with their permissions, built-in first (administrators)", response=items_of(ROLE))
@admin_required
def list_roles():
    matrix = store.read(db.session)
    return jsonify({"items": [store.role_summary(r, matrix) for r in matrix.roles]})


@documented("Create a role (administrators); a taken code or name is 409", request=NEW_ROLE, status=201,
            response=ROLE)
@admin_required
def create_role():
    session = db.session
    role = store.create_role(session, json_body(), actor=g.api_user.username, now=utcnow())
    session.commit()
    return jsonify(store.role_summary(role, store.read(session))), 201


@documented("A role with its permissions (administrators)", response=ROLE)
@admin_required
def get_role(code: str):
    session = db.session
    return jsonify(store.role_summary(store.get_role(session, code), store.read(session)))


@documented("Rename a role and/or set its permissions (the whole set; administrators); the admin "
            "role keeps administer", request=ROLE_CHANGE, response=ROLE)
@admin_required
def update_role(code: str):
    session = db.session
    store.get_role(session, code)  # 404 first
    body = json_body()
    names = {k: v for k, v in body.items() if k != "permissions"}
    if names:
        store.rename_role(session, code, names, actor=g.api_user.username, now=utcnow())
    if "permissions" in body:
        try:
            store.save_permissions(session, {code: body["permissions"]}, actor=g.api_user.username, now=utcnow())
        except AdminInvalid as exc:  # the engine names the role; the body's field is "permissions"
            raise AdminInvalid({"permissions": next(iter(exc.problems.values()))}) from exc
    session.commit()
    return jsonify(store.role_summary(store.get_role(session, code), store.read(session)))
