"""Administration of people: creating and changing users and groups, checked and audited.

The API (``web/api/admin.py``), the admin pages and the ``create-admin`` command all go through
these functions: one set of rules, one audit trail. Every change writes an audit event (no case:
``instance_id`` is empty) naming the actor and what changed — never a password or its hash.
The caller commits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .errors import Conflict, NotFound, ValidationFailed
from .models import record_event
from .people import ASSIGNMENT_MODES, GROUP_LEVELS, ROLES, Group, User, user_by_name

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,39}\Z")
GROUP_CODE = re.compile(r"^[a-z][a-z0-9_-]{1,39}\Z")
DIGITS = re.compile(r"^[0-9]+\Z")
RESERVED_USERNAMES = frozenset({"me"})  # /users/me/… is the caller
PASSWORD_MIN = 8
PASSWORD_MAX = 128
COMMON_PASSWORDS = frozenset({
    "password", "password1", "12345678", "123456789", "1234567890", "87654321", "11111111",
    "88888888", "qwertyui", "qwerty123", "abc12345", "abcd1234", "admin123", "admin1234",
    "administrator", "iloveyou", "kefu-demo", "changeme", "letmein1", "1qaz2wsx", "a1234567",
})

USER_FIELDS = ("username", "name", "password", "mobile", "extension", "roles", "groups", "active")
GROUP_FIELDS = ("code", "name", "name_en", "leaders", "level", "city", "assignment")


@dataclass(frozen=True)
class Problem:
    """One field's problem: a code the web layer words in the user's language, and its parameters."""

    code: str
    params: Mapping[str, Any] | None = None


class AdminInvalid(ValidationFailed):
    """Validation of an administration request failed; ``problems`` per field."""

    def __init__(self, problems: dict[str, Problem]) -> None:
        super().__init__("the request has invalid fields",
                         {f: p.code for f, p in problems.items()})
        self.problems = problems


def password_problem(password: Any, username: str | None = None) -> Problem | None:
    """Why a password is too weak for a real account (None: it will do)."""
    if not isinstance(password, str):
        return Problem("type")
    if len(password) < PASSWORD_MIN:
        return Problem("password_short", {"limit": PASSWORD_MIN})
    if len(password) > PASSWORD_MAX:
        return Problem("maxLength", {"limit": PASSWORD_MAX})
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(password)) < 3 or (username and username.lower() in lowered):
        return Problem("password_weak")
    return None


def user_summary(user: User) -> dict[str, Any]:
    """A user as the API shows it: never the password, its hash or the token version."""
    return {"id": user.id, "username": user.username, "name": user.display_name, "mobile": user.phone,
            "extension": user.extension,
            "roles": [r for r in ROLES if r in user.role_set] + sorted(user.role_set - set(ROLES)),
            "groups": sorted(g.code for g in user.groups), "active": bool(user.active),
            "created_at": user.created_at.isoformat() if user.created_at else None}


def group_summary(group: Group, members: int | None = None) -> dict[str, Any]:
    summary = {"id": group.id, "code": group.code, "name": group.name, "name_en": group.name_en,
               "leaders": [u.username for u in group.leaders], "level": group.level, "city": group.city,
               "assignment": group.assignment}
    if members is not None:
        summary["members"] = members
    return summary


# ---------------------------------------------------------------------------------------- users

def find_users(session: Session, *, text: str = "", role: str = "", group: str = "",
               active: bool | None = None, limit: int = 500) -> list[User]:
    """Users matching a search (user name, name, mobile or extension), a role, a group's code."""
    query = select(User).order_by(User.username)
    if text:
        like = f"%{text.strip()}%"
        query = query.where(or_(User.username.ilike(like), User.display_name.ilike(like),
                                User.phone.ilike(like), User.extension.ilike(like)))
    if role:
        query = query.where(User.roles.contains(role))
    if group:
        query = query.where(User.groups.any(Group.code == group))
    if active is not None:
        query = query.where(User.active.is_(active))
    users = list(session.scalars(query.limit(limit)))
    return [u for u in users if not role or role in u.role_set]


def get_user(session: Session, username: str) -> User:
    user = user_by_name(session, username)
    if user is None:
        raise NotFound(f"no user '{username}'")
    return user


def create_user(session: Session, fields: Mapping[str, Any], *, actor: str, now: datetime) -> User:
    """A new user from ``username, name, password, mobile, extension, roles, groups``; 409 when the
    user name is taken, 422 (``AdminInvalid``) for anything else wrong."""
    problems: dict[str, Problem] = {}
    _unknown(fields, USER_FIELDS, problems)
    username = fields.get("username")
    if not isinstance(username, str) or not username.strip():
        problems["username"] = Problem("required")
    elif not USERNAME.match(username) or username in RESERVED_USERNAMES:
        problems["username"] = Problem("username_pattern")
    password = fields.get("password")
    if password is None or password == "":
        problems["password"] = Problem("required")
    else:
        problem = password_problem(password, username if isinstance(username, str) else None)
        if problem is not None:
            problems["password"] = problem
    values = _user_values(session, fields, problems, creating=True)
    if problems:
        raise AdminInvalid(problems)
    assert isinstance(username, str) and isinstance(password, str)
    if user_by_name(session, username) is not None:
        raise Conflict(f"user '{username}' already exists")
    user = User(username=username, display_name=values["name"], phone=values.get("mobile"),
                extension=values.get("extension"), roles=",".join(values.get("roles", ["agent"])),
                active=True, created_at=now)
    user.set_password(password)
    user.groups = values.get("groups", [])
    session.add(user)
    session.flush()
    record_event(session, "user_created", at=now, actor=actor, message=f"user {username} created",
                 data={"username": username, "changes": _described(values)})
    return user


def update_user(session: Session, user: User, fields: Mapping[str, Any], *, actor: str,
                now: datetime) -> dict[str, Any]:
    """Change a user's ``name, mobile, extension, roles, groups, active`` (and, for an admin's reset,
    ``password``); returns what changed (passwords as ``"password": "changed"``)."""
    problems: dict[str, Problem] = {}
    _unknown(fields, tuple(f for f in USER_FIELDS if f != "username"), problems)
    values = _user_values(session, fields, problems, creating=False, user=user)
    if "password" in fields:
        problem = password_problem(fields["password"], user.username)
        if problem is None and user.username == actor:
            problem = Problem("own_password")  # with the old one: change_own_password
        if problem is not None:
            problems["password"] = problem
    if "active" in fields and not isinstance(fields["active"], bool):
        problems["active"] = Problem("type")
    if not problems:
        _keep_an_admin(session, user, values, fields, actor, problems)
    if problems:
        raise AdminInvalid(problems)
    changes: dict[str, Any] = {}
    if "name" in values and values["name"] != user.display_name:
        changes["name"], user.display_name = values["name"], values["name"]
    if "mobile" in values and values["mobile"] != user.phone:
        changes["mobile"], user.phone = values["mobile"], values["mobile"]
    if "extension" in values and values["extension"] != user.extension:
        changes["extension"], user.extension = values["extension"], values["extension"]
    if "roles" in values and set(values["roles"]) != user.role_set:
        user.roles = ",".join(values["roles"])
        changes["roles"] = values["roles"]
    if "groups" in values and {g.id for g in values["groups"]} != user.group_ids:
        user.groups = values["groups"]
        changes["groups"] = sorted(g.code for g in values["groups"])
    if "active" in fields and fields["active"] != user.active:
        user.active = fields["active"]
        changes["active"] = fields["active"]
        if not user.active:
            user.revoke_tokens()  # bearer tokens stop at once; sessions end at the next request
    if "password" in fields:
        user.set_password(fields["password"])
        changes["password"] = "changed"
    if changes:
        kind = "user_deactivated" if changes.get("active") is False else (
            "user_reactivated" if changes.get("active") is True else "user_updated")
        if set(changes) == {"password"}:
            kind = "password_reset"
        record_event(session, kind, at=now, actor=actor, message=f"user {user.username}: {', '.join(changes)}",
                     data={"username": user.username, "changes": changes})
    session.flush()
    return changes


def change_own_password(session: Session, user: User, old: Any, new: Any, *, now: datetime) -> None:
    """The user's own new password (their old one first); every token of theirs is revoked."""
    problems: dict[str, Problem] = {}
    if not isinstance(old, str) or not old:
        problems["old"] = Problem("required")
    elif not user.check_password(old):
        problems["old"] = Problem("wrong_password")
    if new is None or new == "":
        problems["new"] = Problem("required")
    else:
        problem = password_problem(new, user.username)
        if problem is None and isinstance(old, str) and new == old:
            problem = Problem("password_same")
        if problem is not None:
            problems["new"] = problem
    if problems:
        raise AdminInvalid(problems)
    user.set_password(new)
    record_event(session, "password_changed", at=now, actor=user.username,
                 message=f"user {user.username} changed their password",
                 data={"username": user.username, "changes": {"password": "changed"}})


def _user_values(session: Session, fields: Mapping[str, Any], problems: dict[str, Problem], *,
                 creating: bool, user: User | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "name" in fields or creating:
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            problems["name"] = Problem("required")
        elif len(name.strip()) > 80:
            problems["name"] = Problem("maxLength", {"limit": 80})
        else:
            values["name"] = name.strip()
    for field, longest in (("mobile", 20), ("extension", 10)):
        if field not in fields:
            continue
        value = fields[field]
        if value is None or value == "":
            values[field] = None
        elif not isinstance(value, str) or not DIGITS.match(value.strip()):
            problems[field] = Problem("digits")
        elif not (3 if field == "mobile" else 2) <= len(value.strip()) <= longest:
            problems[field] = Problem("digits_length", {"min": 3 if field == "mobile" else 2, "max": longest})
        else:
            values[field] = value.strip()
    if values.get("extension"):
        taken = session.scalar(select(User.username).where(
            User.extension == values["extension"], User.active,
            User.id != (user.id if user is not None else -1)).limit(1))
        if taken is not None:
            problems["extension"] = Problem("extension_taken", {"username": taken})
    if "roles" in fields:
        roles = fields["roles"]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            problems["roles"] = Problem("type")
        elif not roles:
            problems["roles"] = Problem("required")
        else:
            from .roles import role_codes  # the roles table (engine/roles.py imports this module)

            known = role_codes(session)
            if any(r not in known for r in roles):
                problems["roles"] = Problem("unknown_roles", {"names": ", ".join(r for r in roles if r not in known)})
            else:
                values["roles"] = [r for r in known if r in roles]
    if "groups" in fields:
        codes = fields["groups"]
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            problems["groups"] = Problem("type")
        else:
            found = {g.code: g for g in session.scalars(select(Group).where(Group.code.in_(codes or [""])))}
            missing = [c for c in codes if c not in found]
            if missing:
                problems["groups"] = Problem("unknown_groups", {"names": ", ".join(missing)})
            else:
                values["groups"] = [found[c] for c in dict.fromkeys(codes)]
    return values


def _keep_an_admin(session: Session, user: User, values: dict[str, Any], fields: Mapping[str, Any],
                   actor: str, problems: dict[str, Problem]) -> None:
    """Nobody removes the last active administrator, nor deactivates themselves."""
    if fields.get("active") is False and user.username == actor:
        problems["active"] = Problem("not_yourself")
        return
    loses_admin = (fields.get("active") is False or ("roles" in values and "admin" not in values["roles"]))
    if user.active and "admin" in user.role_set and loses_admin:
        others = session.scalar(select(func.count(User.id)).where(
            User.active, User.roles.contains("admin"), User.id != user.id))
        if not others:
            problems["active" if fields.get("active") is False else "roles"] = Problem("last_admin")


def _described(values: dict[str, Any]) -> dict[str, Any]:
    """Values for the audit log (groups by code)."""
    return {k: (sorted(g.code for g in v) if k == "groups" else v) for k, v in values.items()}


def _unknown(fields: Mapping[str, Any], known: tuple[str, ...], problems: dict[str, Problem]) -> None:
    for field in fields:
        if field not in known:
            problems[str(field)] = Problem("unknown")


# --------------------------------------------------------------------------------------- groups

def list_groups(session: Session) -> list[tuple[Group, int]]:
    """Every group with its number of members, by level and code."""
    counts = dict(session.execute(
        select(Group.id, func.count(User.id)).join(Group.members).group_by(Group.id)).all())
    groups = session.scalars(select(Group).order_by(Group.code))
    order = {level: i for i, level in enumerate(GROUP_LEVELS)}
    return sorted(((g, counts.get(g.id, 0)) for g in groups), key=lambda p: (order.get(p[0].level, 9), p[0].code))


def get_group(session: Session, code: str) -> Group:
    group = session.scalars(select(Group).where(Group.code == code)).first()
    if group is None:
        raise NotFound(f"no group '{code}'")
    return group


def create_group(session: Session, fields: Mapping[str, Any], *, actor: str, now: datetime) -> Group:
    """A new group from ``code, name, name_en, leaders, level, city, assignment``; 409 for a taken
    code or name."""
    problems: dict[str, Problem] = {}
    _unknown(fields, GROUP_FIELDS, problems)
    code = fields.get("code")
    if not isinstance(code, str) or not code:
        problems["code"] = Problem("required")
    elif not GROUP_CODE.match(code):
        problems["code"] = Problem("code_pattern")
    values = _group_values(session, fields, problems, creating=True)
    if problems:
        raise AdminInvalid(problems)
    assert isinstance(code, str)
    if session.scalar(select(Group.id).where(Group.code == code)) is not None:
        raise Conflict(f"group '{code}' already exists")
    if session.scalar(select(Group.id).where(Group.name == values["name"])) is not None:
        raise Conflict(f"a group is already named '{values['name']}'")
    group = Group(code=code, name=values["name"], name_en=values.get("name_en", ""),
                  level=values.get("level", "province"), city=values.get("city"),
                  assignment=values.get("assignment", "manual"))
    session.add(group)
    session.flush()
    group.set_leaders(values.get("leaders", []))
    session.flush()
    record_event(session, "group_created", at=now, actor=actor, message=f"group {code} created",
                 data={"group": code, "changes": _group_described(values)})
    return group


def update_group(session: Session, group: Group, fields: Mapping[str, Any], *, actor: str,
                 now: datetime) -> dict[str, Any]:
    """Change a group's ``name, name_en, leaders, level, city, assignment`` (its code stays)."""
    problems: dict[str, Problem] = {}
    _unknown(fields, tuple(f for f in GROUP_FIELDS if f != "code"), problems)
    if "code" in fields and fields["code"] != group.code:
        problems["code"] = Problem("code_fixed")
    values = _group_values(session, fields, problems, creating=False, group=group)
    if problems:
        raise AdminInvalid(problems)
    if "name" in values and values["name"] != group.name and session.scalar(
            select(Group.id).where(Group.name == values["name"])) is not None:
        raise Conflict(f"a group is already named '{values['name']}'")
    changes: dict[str, Any] = {}
    for field in ("name", "name_en", "level", "city", "assignment"):
        if field in values and values[field] != getattr(group, field):
            setattr(group, field, values[field])
            changes[field] = values[field]
    if "leaders" in values and [u.id for u in values["leaders"]] != [u.id for u in group.leaders]:
        group.set_leaders(values["leaders"])
        changes["leaders"] = [u.username for u in values["leaders"]]
    if changes:
        record_event(session, "group_updated", at=now, actor=actor,
                     message=f"group {group.code}: {', '.join(changes)}",
                     data={"group": group.code, "changes": changes})
    session.flush()
    return changes


def _group_values(session: Session, fields: Mapping[str, Any], problems: dict[str, Problem], *,
                  creating: bool, group: Group | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field, longest, required in (("name", 80, True), ("name_en", 80, False), ("city", 40, False)):
        if field not in fields and not (creating and required):
            continue
        value = fields.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                problems[field] = Problem("required")
            else:
                values[field] = "" if field == "name_en" else None
        elif not isinstance(value, str):
            problems[field] = Problem("type")
        elif len(value.strip()) > longest:
            problems[field] = Problem("maxLength", {"limit": longest})
        else:
            values[field] = value.strip()
    for field, choices in (("level", GROUP_LEVELS), ("assignment", ASSIGNMENT_MODES)):
        if field in fields:
            if fields[field] not in choices:
                problems[field] = Problem("choice")
            else:
                values[field] = fields[field]
    level = values.get("level", group.level if group is not None else "province")
    if "level" in values and level != "city" and "city" not in fields:
        values["city"] = None  # no longer a city center: its city goes
    city = values.get("city", group.city if group is not None else None)
    if "city" not in problems and "level" not in problems:
        if level == "city" and not city:
            problems["city"] = Problem("city_required")
        elif level != "city" and city:
            problems["city"] = Problem("city_only_for_city")
    if "leaders" in fields:
        names = fields["leaders"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems["leaders"] = Problem("type")
        else:
            names = list(dict.fromkeys(names))
            found = {u.username: u for u in session.scalars(select(User).where(User.username.in_(names or [""])))}
            missing = [n for n in names if n not in found or not found[n].active]
            if missing:
                problems["leaders"] = Problem("unknown_users", {"names": ", ".join(missing)})
            else:
                values["leaders"] = [found[n] for n in names]
    return values


def _group_described(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ([u.username for u in v] if k == "leaders" else v) for k, v in values.items()}
