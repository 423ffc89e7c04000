"""Administrators' pages for roles and permissions: the permission matrix (editable), the roles
(create, rename). The rules and the audit trail are engine/roles.py's, as for the API
(web/api/roles.py). Registered on the people pages' blueprint (web/admin_people.py).

Every request picks up a matrix another process saved (engine.roles.sync, at most every
``SYNC_SECONDS``; between checks this costs one clock reading).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import Session

from engine import roles as store
from engine.access import PERMISSIONS
from engine.administration import AdminInvalid
from engine.clock import utcnow
from engine.database import READ_ONLY
from engine.errors import Conflict, NotFound

from .access import permission_required
from .extensions import db
from .people_text import field_messages, permission_label, role_label


def register(bp: Blueprint) -> None:
    bp.record_once(lambda _state: store.reset())  # a new app starts from what its database says
    bp.before_app_request(_sync_matrix)
    bp.add_url_rule("/admin/permissions", view_func=permissions, methods=["GET", "POST"])
    bp.add_url_rule("/admin/roles", view_func=roles, methods=["GET", "POST"])
    bp.add_url_rule("/admin/roles/<code>", view_func=edit_role, methods=["GET", "POST"])


def _sync_matrix() -> None:
    """The matrix another process saved; the clock is read first so that most requests touch
    no connection at all."""
    if not store.due():
        return
    try:  # on a read-only connection of its own (as web/admin_calendars.py, for the same reason)
        with db.engine.connect() as conn, Session(bind=conn.execution_options(**{READ_ONLY: True})) as session:
            store.sync(session)
    except Exception:  # a missing table (before migrations) must not stop pages
        current_app.logger.debug("role matrix not readable yet", exc_info=True)


@permission_required("administer")
def permissions():
    """The matrix: a checkbox per role and permission; saving sets every role's permissions."""
    status = 200
    if request.method == "POST":
        chosen = set(request.form.getlist("grant"))
        matrix = store.read(db.session)
        grants = {r.code: [p for p in PERMISSIONS if f"{r.code}:{p}" in chosen] for r in matrix.roles}
        try:
            changes = store.save_permissions(db.session, grants, actor=current_user.username, now=utcnow())
            db.session.commit()
            flash(_("Permissions saved; they apply at once.") if changes else _("Nothing changed."), "ok")
            return redirect(url_for("people.permissions"))
        except AdminInvalid as exc:
            db.session.rollback()
            flash(_("The permissions were not saved: %(reason)s", reason=" ".join(field_messages(exc).values())),
                  "error")
            status = 422
    matrix = store.read(db.session)
    rows = [(perm, permission_label(perm), [(role.code, role.code in matrix.holders[perm],
                                             role.code == store.ADMIN_ROLE and perm == store.ADMIN_PERMISSION)
                                            for role in matrix.roles])
            for perm in PERMISSIONS]
    return _render("admin_permissions.html", status, matrix=rows, role_infos=matrix.roles)


@permission_required("administer")
def roles():
    """Every role with its number of permissions; the form for a new one."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        form = request.form
        values = {"code": form.get("code", "").strip(), "name": form.get("name", ""),
                  "name_en": form.get("name_en", ""), "permissions": form.getlist("permissions")}
        try:
            role = store.create_role(db.session, values, actor=current_user.username, now=utcnow())
            db.session.commit()
            flash(_("Role %(r)s created.", r=role.name), "ok")
            return redirect(url_for("people.permissions"))
        except AdminInvalid as exc:
            db.session.rollback()
            errors, status = field_messages(exc), 422
        except Conflict:
            db.session.rollback()
            errors, status = {"code": _("This code or name is already used by another role.")}, 409
    matrix = store.read(db.session)
    listed = [(r, sum(r.code in matrix.holders[p] for p in PERMISSIONS)) for r in matrix.roles]
    return _render("admin_roles.html", status, listed=listed, values=values, errors=errors,
                   permission_names=[(p, permission_label(p)) for p in PERMISSIONS])


@permission_required("administer")
def edit_role(code: str):
    """Rename a role (its code stays: users and the checks name it)."""
    try:
        role = store.get_role(db.session, code)
    except NotFound:
        abort(404)
    values = {"name": role.name, "name_en": role.name_en}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        values = {"name": request.form.get("name", ""), "name_en": request.form.get("name_en", "")}
        try:
            changes = store.rename_role(db.session, code, values, actor=current_user.username, now=utcnow())
            db.session.commit()
            flash(_("Saved.") if changes else _("Nothing changed."), "ok")
            return redirect(url_for("people.roles"))
        except AdminInvalid as exc:
            db.session.rollback()
            errors, status = field_messages(exc), 422
        except Conflict:
            db.session.rollback()
            errors, status = {"name": _("This code or name is already used by another role.")}, 409
    return _render("admin_role_form.html", status, role=role, values=values, errors=errors)


def _render(template: str, status: int, **context: Any):
    return render_template(template, role_label=role_label, **context), status
