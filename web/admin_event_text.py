"""Administration events in words: users, groups, roles, permissions, calendars and alert rules,
as headlines and details in the user's language (web/case_text.py's ``event_sentence`` hands these
kinds here: one place still words every event). Never a password, an internal key or a dict."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine.access import PERMISSIONS
from engine.models import AuditEvent

from .people_text import ASSIGNMENTS, LEVELS, permission_label, role_label
from .views_helpers import locale

# The kinds the audit page lists (and offers as a filter), in this order.
ADMIN_KINDS: dict[str, Any] = {
    "user_created": _l("User created"), "user_updated": _l("User changed"),
    "user_deactivated": _l("User deactivated"), "user_reactivated": _l("User reactivated"),
    "password_reset": _l("Password reset by an administrator"), "password_changed": _l("Own password changed"),
    "group_created": _l("Group created"), "group_updated": _l("Group changed"),
    "role_created": _l("Role created"), "role_renamed": _l("Role renamed"),
    "permissions_changed": _l("Permissions changed"), "calendar_saved": _l("Calendar or hours saved"),
    "alert_rule_saved": _l("Alert rule saved"),
}
_FIELDS = {
    "username": _l("user name"), "name": _l("name"), "name_en": _l("English name"), "mobile": _l("mobile"),
    "extension": _l("extension"), "roles": _l("roles"), "groups": _l("groups"), "active": _l("active"),
    "password": _l("password"), "leaders": _l("leaders"), "level": _l("organisational level"),
    "city": _l("city"), "assignment": _l("assignment"), "code": _l("code"), "permissions": _l("permissions"),
}
_HOURS = {"calling_hours": _l("Calling hours"), "dunning_hours": _l("Dunning hours")}


def admin_sentence(event: AuditEvent) -> tuple[str, str] | None:
    """``(headline, detail)`` of an administration event; None for another kind."""
    kind, data = event.kind, event.data if isinstance(event.data, dict) else {}
    if kind not in ADMIN_KINDS:
        return None
    changes = data.get("changes") if isinstance(data.get("changes"), dict) else {}
    if kind.startswith(("user_", "password_")):
        who = str(data.get("username", ""))
        if kind == "user_created":
            return _("User %(u)s created", u=who), _changes(changes, skip=("username",))
        if kind == "user_deactivated":
            return _("User %(u)s deactivated: signed out, tokens revoked", u=who), ""
        if kind == "user_reactivated":
            return _("User %(u)s may sign in again", u=who), ""
        if kind == "password_reset":
            return _("The password of %(u)s was reset", u=who), ""
        if kind == "password_changed":
            return _("%(u)s changed their own password", u=who), ""
        return _("User %(u)s changed", u=who), _changes(changes)
    if kind.startswith("group_"):
        code = str(data.get("group", ""))
        title = _("Group %(g)s created", g=code) if kind == "group_created" else _("Group %(g)s changed", g=code)
        return title, _changes(changes)
    if kind in ("role_created", "role_renamed"):
        code = str(data.get("role", ""))
        title = _("Role %(r)s created", r=_role(code)) if kind == "role_created" else _("Role %(r)s renamed", r=code)
        return title, _changes(changes)
    if kind == "permissions_changed":
        parts = []
        for key, words in (("granted", _("%(role)s now may: %(perms)s")), ("revoked", _("%(role)s no longer may: %(perms)s"))):
            for role, perms in (data.get(key) or {}).items():
                parts.append(words % {"role": _role(role), "perms": _list(_permission(p) for p in perms)})
        return str(ADMIN_KINDS[kind]), _sentences(parts)
    if kind == "calendar_saved":
        if data.get("kind") == "holidays":
            return _("Holidays of %(year)s saved", year=data.get("year", "")), str(data.get("source") or "")
        label = _HOURS.get(str(data.get("kind")))
        return (_("%(what)s set to %(hours)s", what=label, hours=data.get("hours", "")) if label
                else str(ADMIN_KINDS[kind])), ""
    return str(ADMIN_KINDS[kind]), event.message or ""


def _changes(changes: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    parts = []
    for field, value in changes.items():
        if field in skip:
            continue
        label = str(_FIELDS.get(field, _l("other")))
        if field == "password":
            parts.append(_("password changed"))
        elif field == "roles" and isinstance(value, list):
            parts.append(_pair(label, _list(_role(r) for r in value)))
        elif field == "permissions" and isinstance(value, list):
            parts.append(_pair(label, _list(_permission(p) for p in value)))
        elif field == "active":
            parts.append(_("may sign in") if value else _("deactivated"))
        elif field == "level":
            parts.append(_pair(label, LEVELS.get(str(value), value)))
        elif field == "assignment":
            parts.append(_pair(label, ASSIGNMENTS.get(str(value), value)))
        elif isinstance(value, list):
            parts.append(_pair(label, _list(str(v) for v in value) or _('none')))
        else:
            parts.append(_pair(label, value if value not in (None, '') else _('none')))
    return _sentences(parts)


def _list(items: Any) -> str:
    return (", " if _english() else "、").join(items)


def _sentences(parts: list[str]) -> str:
    return ("; " if _english() else "；").join(parts)


def _english() -> bool:
    return locale().startswith("en")


def _pair(label: str, value: Any) -> str:
    return _("%(field)s: %(value)s", field=label, value=value)


def _role(code: str) -> str:
    return role_label(code)


def _permission(name: str) -> str:
    return permission_label(name) if name in PERMISSIONS else name
