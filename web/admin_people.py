"""Administrators' pages for people: users (list, create, edit, reset password, deactivate),
groups (list, create, edit), the permission matrix; and every user's own password page.

The rules and the audit trail are engine/administration.py's, as for the API (web/api/admin.py).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user

from engine import administration as admin
from engine import sign_in
from engine.access import current_matrix
from engine.clock import utcnow
from engine.errors import Conflict, NotFound
from engine.people import ASSIGNMENT_MODES, GROUP_LEVELS, Group, User

from . import admin_audit, admin_roles
from .access import permission_required
from .auth import Throttled
from .auth import _minutes as minutes
from .extensions import db
from .people_text import ASSIGNMENTS, LEVELS, field_messages, role_label
from .views_helpers import engine

bp = Blueprint("people", __name__)


def _render(template: str, status: int = 200, **context: Any):
    # the roles there are (the roles table, this process's copy: web/admin_roles.py keeps it fresh)
    roles = [r.code for r in current_matrix().roles]
    return render_template(template, roles=roles, role_label=role_label, levels=LEVELS,
                           assignments=ASSIGNMENTS, **context), status


def _found(fn: Any, *args: Any) -> Any:
    try:
        return fn(db.session, *args)
    except NotFound:
        abort(404)


# ---------------------------------------------------------------------------------------- users

@bp.get("/admin/users")
@permission_required("administer")
def users():
    args = request.args
    active = args.get("active", "")
    rows = admin.find_users(db.session, text=args.get("q", ""), role=args.get("role", ""),
                            group=args.get("group", ""), active={"1": True, "0": False}.get(active))
    return _render("admin_users.html", users=rows, args=args, groups=_all_groups())


@bp.route("/admin/users/new", methods=["GET", "POST"])
@permission_required("administer")
def new_user():
    values: dict[str, Any] = {"roles": ["agent"], "groups": []}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        values = _user_form(creating=True)
        try:
            user = admin.create_user(db.session, values, actor=current_user.username, now=utcnow())
            db.session.commit()
            flash(_("User %(u)s created.", u=user.username), "ok")
            return redirect(url_for("people.edit_user", username=user.username))
        except admin.AdminInvalid as exc:
            db.session.rollback()
            errors, status = field_messages(exc), 422
        except Conflict:
            db.session.rollback()
            errors, status = {"username": _("This user name is already taken.")}, 409
    return _render("admin_user_form.html", status, user=None, values=values, errors=errors, groups=_all_groups())


@bp.route("/admin/users/<username>", methods=["GET", "POST"])
@permission_required("administer")
def edit_user(username: str):
    user: User = _found(admin.get_user, username)
    errors: dict[str, str] = {}
    status = 200
    values = {"name": user.display_name, "mobile": user.phone, "extension": user.extension,
              "roles": sorted(user.role_set), "groups": [g.code for g in user.groups]}
    if request.method == "POST":
        values = _user_form(creating=False)
        try:
            changes = admin.update_user(db.session, user, values, actor=current_user.username, now=utcnow())
            db.session.commit()
            flash(_("Saved.") if changes else _("Nothing changed."), "ok")
            return redirect(url_for("people.edit_user", username=user.username))
        except admin.AdminInvalid as exc:
            db.session.rollback()
            errors, status = field_messages(exc), 422
    return _render("admin_user_form.html", status, user=user, values=values, errors=errors, groups=_all_groups())


@bp.post("/admin/users/<username>/password")
@permission_required("administer")
def reset_password(username: str):
    user: User = _found(admin.get_user, username)
    try:
        admin.update_user(db.session, user, {"password": request.form.get("password", "")},
                          actor=current_user.username, now=utcnow())
        db.session.commit()
        flash(_("The password of %(u)s was reset; their tokens no longer work.", u=user.username), "ok")
    except admin.AdminInvalid as exc:
        db.session.rollback()
        flash(_("The password was not reset: %(reason)s", reason=" ".join(field_messages(exc).values())), "error")
    return redirect(url_for("people.edit_user", username=user.username))


@bp.post("/admin/users/<username>/active")
@permission_required("administer")
def set_active(username: str):
    user: User = _found(admin.get_user, username)
    active = request.form.get("active") == "1"
    try:
        admin.update_user(db.session, user, {"active": active}, actor=current_user.username, now=utcnow())
        db.session.commit()
        flash(_("%(u)s may sign in again.", u=user.username) if active
              else _("%(u)s is deactivated: signed out, tokens revoked.", u=user.username), "ok")
    except admin.AdminInvalid as exc:
        db.session.rollback()
        flash(" ".join(field_messages(exc).values()), "error")
    return redirect(request.form.get("back") == "list" and url_for("people.users")
                    or url_for("people.edit_user", username=user.username))


def _user_form(*, creating: bool) -> dict[str, Any]:
    form = request.form
    values: dict[str, Any] = {"name": form.get("name", ""), "mobile": form.get("mobile", ""),
                              "extension": form.get("extension", ""), "roles": form.getlist("roles"),
                              "groups": form.getlist("groups")}
    if creating:
        values.update(username=form.get("username", "").strip(), password=form.get("password", ""))
    return values


# --------------------------------------------------------------------------------------- groups

@bp.get("/admin/groups")
@permission_required("administer")
def groups():
    return _render("admin_groups.html", groups=admin.list_groups(db.session))


@bp.route("/admin/groups/new", methods=["GET", "POST"])
@permission_required("administer")
def new_group():
    values: dict[str, Any] = {"level": "province", "assignment": "manual", "leaders": []}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        values = _group_form(creating=True)
        try:
            group = admin.create_group(db.session, values, actor=current_user.username, now=utcnow())
            db.session.commit()
            engine().groups.forget()
            flash(_("Group %(g)s created.", g=group.name), "ok")
            return redirect(url_for("people.groups"))
        except admin.AdminInvalid as exc:
            db.session.rollback()
            errors, status = field_messages(exc), 422
        except Conflict:
            db.session.rollback()
            errors, status = {"code": _("This code or name is already used by another group.")}, 409
    return _render("admin_group_form.html", status, group=None, values=values, errors=errors,
                   level_codes=GROUP_LEVELS, assignment_codes=ASSIGNMENT_MODES)


@bp.route("/admin/groups/<code>", methods=["GET", "POST"])
@permission_required("administer")
def edit_group(code: str):
    group: Group = _found(admin.get_group, code)
    errors: dict[str, str] = {}
    status = 200
    values: dict[str, Any] = {"name": group.name, "name_en": group.name_en, "level": group.level,
                              "city": group.city, "assignment": group.assignment,
                              "leaders": [u.username for u in group.leaders]}
    if request.method == "POST":
        values = _group_form(creating=False)
        try:
            changes = admin.update_group(db.session, group, values, actor=current_user.username, now=utcnow())
            db.session.commit()
            engine().groups.forget()
            flash(_("Saved.") if changes else _("Nothing changed."), "ok")
            return redirect(url_for("people.groups"))
        except admin.AdminInvalid as exc:
            db.session.rollback()
            errors, status = field_messages(exc), 422
        except Conflict:
            db.session.rollback()
            errors, status = {"name": _("This code or name is already used by another group.")}, 409
    return _render("admin_group_form.html", status, group=group, values=values, errors=errors,
                   level_codes=GROUP_LEVELS, assignment_codes=ASSIGNMENT_MODES,
                   members=sorted(group.members, key=lambda u: u.username))


def _group_form(*, creating: bool) -> dict[str, Any]:
    form = request.form
    values: dict[str, Any] = {
        "name": form.get("name", ""), "name_en": form.get("name_en", ""), "level": form.get("level", ""),
        "city": form.get("city", ""), "assignment": form.get("assignment", ""),
        "leaders": [n for n in re.split(r"[\s,，、]+", form.get("leaders", "")) if n]}
    if creating:
        values["code"] = form.get("code", "").strip()
    return values


def _all_groups() -> list[Group]:
    return [g for g, _members in admin.list_groups(db.session)]


# ------------------------------------------------- roles, permissions, the audit log (own modules)
admin_roles.register(bp)
admin_audit.register(bp)


# ------------------------------------------------------------------------------- own password

@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def own_password():
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        form = request.form
        if form.get("new", "") != form.get("confirm", ""):
            errors, status = {"confirm": _("The two new passwords differ.")}, 422
        else:
            try:
                change_own_password(current_user, form.get("old", ""), form.get("new", ""))
                login_user(current_user._get_current_object())  # this session goes on; all others end
                flash(_("Your password is changed; your API tokens and your other sessions no longer work."), "ok")
                return redirect(url_for("inbox.home"))
            except Throttled as exc:
                errors, status = {"old": _("Too many failed sign-ins. Try again in %(minutes)s minute(s).",
                                           minutes=minutes(exc.wait))}, 429
            except admin.AdminInvalid as exc:
                errors, status = field_messages(exc), 422
    return render_template("account_password.html", errors=errors), status


def change_own_password(user: User, old: Any, new: Any) -> None:
    """The user's own new password, committed; a wrong old password counts as a failed sign-in
    (raises :class:`Throttled` once there are too many, :class:`AdminInvalid` for anything wrong)."""
    now, address = utcnow(), request.remote_addr or "-"
    wait = sign_in.wait_before_trying(db.session, user.username, address, now)
    if wait is not None:
        db.session.rollback()
        raise Throttled(wait)
    try:
        admin.change_own_password(db.session, user, old, new, now=now)
    except admin.AdminInvalid as exc:
        db.session.rollback()
        if "old" in exc.problems and exc.problems["old"].code == "wrong_password":
            sign_in.record_attempt(db.session, user.username, address, False, now)
            db.session.commit()
        raise
    db.session.commit()
