"""Words of the administration pages and API: roles, permissions, levels, assignment modes and the
problems engine/administration.py finds, in the user's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from engine.access import PERMISSION_LABELS, current_matrix
from engine.administration import AdminInvalid

from .views_helpers import locale

LEVELS = {"national": _l("National center"), "province": _l("Province center"), "city": _l("City center")}
ASSIGNMENTS = {"manual": _l("Manual (the leader hands out)"), "round_robin": _l("Round robin"),
               "least_loaded": _l("Least loaded first")}

PROBLEMS = {
    "required": _l("This field is required."),
    "type": _l("Wrong type of value."),
    "unknown": _l("Unknown field."),
    "choice": _l("Not one of the allowed values."),
    "maxLength": _l("At most %(limit)s characters."),
    "username_pattern": _l("2–40 lower-case letters, digits, '.', '_' or '-', starting with a letter "
                           "or digit."),
    "code_pattern": _l("2–40 lower-case letters, digits, '_' or '-', starting with a letter."),
    "code_fixed": _l("A group's code cannot be changed."),
    "password_short": _l("At least %(limit)s characters."),
    "password_weak": _l("Too easy to guess: avoid common passwords, the user name and repeated characters."),
    "password_same": _l("The new password must differ from the old one."),
    "wrong_password": _l("The current password is wrong."),
    "own_password": _l("Change your own password on the password page, with your current password."),
    "digits": _l("Digits only."),
    "digits_length": _l("%(min)s to %(max)s digits."),
    "extension_taken": _l("This extension is already used by %(username)s."),
    "unknown_roles": _l("Unknown roles: %(names)s."),
    "unknown_groups": _l("Unknown groups: %(names)s."),
    "unknown_users": _l("Unknown or inactive users: %(names)s."),
    "not_yourself": _l("You cannot deactivate yourself."),
    "last_admin": _l("This is the last active administrator."),
    "city_required": _l("A city center names its city."),
    "city_only_for_city": _l("Only a city center names a city."),
    "unknown_permissions": _l("Unknown permissions: %(names)s."),
    "admin_keeps_administer": _l("The administrator role keeps the permission to administer users, groups "
                                 "and permissions: without it nobody could administer the system."),
    "role_code_pattern": _l("2–40 lower-case letters, digits or '_', starting with a letter."),
}


def _english() -> bool:
    return locale().startswith("en")


def role_label(role: str) -> str:
    """A role's name as the administrators gave it (the roles table, this process's copy)."""
    for info in current_matrix().roles:
        if info.code == role:
            return info.name_en if _english() else info.name
    return role


def permission_label(permission: str) -> str:
    zh, en = PERMISSION_LABELS.get(permission, (permission, permission))
    return en if _english() else zh


def field_messages(exc: AdminInvalid) -> dict[str, str]:
    """Per-field messages of a refused request, in the user's language."""
    messages = {}
    for field, problem in exc.problems.items():
        text = str(PROBLEMS.get(problem.code, PROBLEMS["type"]))
        messages[field] = text % dict(problem.params) if problem.params else text
    return messages
