"""Roles and their permissions as data: the ``roles`` and ``role_permissions`` tables, edited by
administrators (web/admin_roles.py, web/api/roles.py), and the in-process copy that
``engine.access.allowed`` reads.

``role_permissions`` holds one row per role and permission with ``granted`` true or false; a
permission with no row at all keeps its code default (``engine.access.PERMISSIONS``), so that a
permission added to the code later is not silently nobody's. A built-in role without a row in
``roles`` still exists (its names are ``engine.people.ROLE_LABELS``).

Each process holds the matrix in memory: :func:`sync` reloads it when the stored counter
(``role_matrix_version``) moved, checking at most every ``SYNC_SECONDS``; the process that saved
puts the new matrix in force right after its commit. Every change is an audit event (who, when,
what). The caller commits.
"""

from __future__ import annotations

import re
import threading
import time as _time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import access
from .access import PERMISSIONS, Matrix, RoleInfo
from .administration import AdminInvalid, Problem
from .db import Base
from .errors import Conflict, NotFound
from .models import record_event
from .people import ROLE_LABELS, ROLES
from .unit_of_work import after_commit

SYNC_SECONDS = 10.0
ROLE_CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}\Z")
ADMIN_ROLE, ADMIN_PERMISSION = "admin", "administer"


class Role(Base):
    """A role: the built-in six (seeded) and those administrators create."""

    __tablename__ = "roles"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(80), default="")
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=100)
    created_at: Mapped[datetime | None]


class RolePermission(Base):
    """Whether a role holds a permission."""

    __tablename__ = "role_permissions"

    role_code: Mapped[str] = mapped_column(ForeignKey("roles.code", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(40), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)


class RoleMatrixVersion(Base):
    """One row: bumped by every change of roles or permissions (other processes reload on it)."""

    __tablename__ = "role_matrix_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime | None]
    changed_by: Mapped[str | None] = mapped_column(String(40))


# -- reading --------------------------------------------------------------------------------------
_checked_at = float("-inf")
_lock = threading.Lock()


def read(session: Session) -> Matrix:
    """The stored matrix (defaults where nothing is stored)."""
    version = session.scalar(select(RoleMatrixVersion.version).where(RoleMatrixVersion.id == 1)) or 0
    stored = {r.code: r for r in session.scalars(select(Role))}
    roles = [RoleInfo(code, *(_names(stored[code]) if code in stored else ROLE_LABELS[code]), builtin=True)
             for code in ROLES]
    extra = sorted((r for r in stored.values() if r.code not in ROLES), key=lambda r: (r.position, r.code))
    roles += [RoleInfo(r.code, *_names(r), builtin=False) for r in extra]
    rows: dict[str, dict[str, bool]] = {}
    for row in session.scalars(select(RolePermission)):
        rows.setdefault(row.permission, {})[row.role_code] = row.granted
    holders = {}
    for permission, default in access.default_matrix().holders.items():
        stored_rows = rows.get(permission)
        if stored_rows is None:
            holders[permission] = default
        else:  # a role without a row for it keeps its default
            holders[permission] = frozenset(r.code for r in roles if stored_rows.get(r.code, r.code in default))
    return Matrix(version, holders, tuple(roles))


def _names(role: Role) -> tuple[str, str]:
    return role.name, role.name_en or role.name


def load(session: Session) -> Matrix:
    """Read the stored matrix and put it in force in this process."""
    global _checked_at
    matrix = read(session)
    with _lock:
        access.install(matrix)
        _checked_at = _time.monotonic()
    return matrix


def sync(session: Session, *, force: bool = False) -> Matrix:
    """Reload when the stored counter moved; looks at the database at most every SYNC_SECONDS."""
    global _checked_at
    if not force and not due():
        return access.current_matrix()
    _checked_at = _time.monotonic()
    version = session.scalar(select(RoleMatrixVersion.version).where(RoleMatrixVersion.id == 1)) or 0
    return load(session) if force or version != access.current_matrix().version else access.current_matrix()


def due() -> bool:
    """Whether :func:`sync` would look at the database now (callers skip opening a connection)."""
    return _time.monotonic() - _checked_at >= SYNC_SECONDS


def reset() -> None:
    """Back to the defaults, next sync reads again (a new app, tests)."""
    global _checked_at
    with _lock:
        access.install(access.default_matrix())
        _checked_at = float("-inf")


def role_codes(session: Session) -> list[str]:
    """Every role a user may be given, built-in first (read from the database, not the cache)."""
    return [r.code for r in read(session).roles]


def role_summary(role: RoleInfo, matrix: Matrix) -> dict[str, Any]:
    """A role as the API shows it, with the permissions it holds (in the code's order)."""
    return {"code": role.code, "name": role.name, "name_en": role.name_en, "builtin": role.builtin,
            "permissions": [p for p in PERMISSIONS if role.code in matrix.holders[p]]}


def get_role(session: Session, code: str) -> RoleInfo:
    for role in read(session).roles:
        if role.code == code:
            return role
    raise NotFound(f"no role '{code}'")


# -- changing -------------------------------------------------------------------------------------

def save_permissions(session: Session, grants: Mapping[str, Any], *, actor: str, now: datetime) -> dict[str, Any]:
    """Set the permissions of the roles named in ``grants`` (role code → list of permission names;
    roles not named keep theirs). The admin role keeps ``administer``: without it nobody could
    administer (the last way to administer). Returns what changed per role
    (``{"granted": {...}, "revoked": {...}}``, empty when nothing did)."""
    before = read(session)
    codes = {r.code for r in before.roles}
    problems: dict[str, Problem] = {}
    wanted: dict[str, set[str]] = {}
    for code, names in grants.items():
        if code not in codes:
            problems[str(code)] = Problem("unknown_roles", {"names": str(code)})
        elif not isinstance(names, list | tuple | set) or not all(isinstance(n, str) for n in names):
            problems[code] = Problem("type")
        elif unknown := [n for n in names if n not in PERMISSIONS]:
            problems[code] = Problem("unknown_permissions", {"names": ", ".join(unknown)})
        else:
            wanted[code] = set(names)
    if ADMIN_ROLE in wanted and ADMIN_PERMISSION not in wanted[ADMIN_ROLE]:
        problems[ADMIN_ROLE] = Problem("admin_keeps_administer")
    if problems:
        raise AdminInvalid(problems)
    granted: dict[str, list[str]] = {}
    revoked: dict[str, list[str]] = {}
    for code, names in wanted.items():
        held = {p for p in PERMISSIONS if code in before.holders[p]}
        if names - held:
            granted[code] = [p for p in PERMISSIONS if p in names - held]
        if held - names:
            revoked[code] = [p for p in PERMISSIONS if p in held - names]
    if not granted and not revoked:
        return {}
    _ensure_role_rows(session, before, now)
    # Every permission gets a row for every role, so that a stored matrix no longer depends on
    # the code defaults for the permissions it mentions.
    holders = {p: {c for c in codes if (p in wanted[c] if c in wanted else c in before.holders[p])}
               for p in PERMISSIONS}
    existing = {(r.role_code, r.permission): r for r in session.scalars(select(RolePermission))}
    for permission, roles in holders.items():
        for code in codes:
            row = existing.get((code, permission))
            if row is None:
                session.add(RolePermission(role_code=code, permission=permission, granted=code in roles))
            elif row.granted != (code in roles):
                row.granted = code in roles
    changes = {"granted": granted, "revoked": revoked}
    record_event(session, "permissions_changed", at=now, actor=actor,
                 message=f"permissions of {', '.join(sorted(set(granted) | set(revoked)))} changed",
                 data=changes)
    _bumped(session, actor, now)
    return changes


def create_role(session: Session, fields: Mapping[str, Any], *, actor: str, now: datetime) -> RoleInfo:
    """A new role from ``code, name, name_en, permissions`` (409 for a taken code or name)."""
    problems: dict[str, Problem] = {}
    for field in fields:
        if field not in ("code", "name", "name_en", "permissions"):
            problems[str(field)] = Problem("unknown")
    code = fields.get("code")
    if not isinstance(code, str) or not code:
        problems["code"] = Problem("required")
    elif not ROLE_CODE.match(code):
        problems["code"] = Problem("role_code_pattern")
    names = _names_of(fields, problems, creating=True)
    permissions = fields.get("permissions", [])
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        problems["permissions"] = Problem("type")
    elif unknown := [p for p in permissions if p not in PERMISSIONS]:
        problems["permissions"] = Problem("unknown_permissions", {"names": ", ".join(unknown)})
    if problems:
        raise AdminInvalid(problems)
    assert isinstance(code, str)
    before = read(session)
    if any(r.code == code for r in before.roles):
        raise Conflict(f"role '{code}' already exists")
    if any(r.name == names["name"] for r in before.roles):
        raise Conflict(f"a role is already named '{names['name']}'")
    _ensure_role_rows(session, before, now)
    session.add(Role(code=code, name=names["name"], name_en=names.get("name_en", ""), builtin=False,
                     position=100 + len(before.roles), created_at=now))
    session.flush()
    for permission in PERMISSIONS:
        session.add(RolePermission(role_code=code, permission=permission, granted=permission in permissions))
    record_event(session, "role_created", at=now, actor=actor, message=f"role {code} created",
                 data={"role": code, "changes": {**names, "permissions": [p for p in PERMISSIONS if p in permissions]}})
    _bumped(session, actor, now)
    return RoleInfo(code, names["name"], names.get("name_en") or names["name"], builtin=False)


def rename_role(session: Session, code: str, fields: Mapping[str, Any], *, actor: str,
                now: datetime) -> dict[str, Any]:
    """A role's new Chinese and/or English name (its code stays: users and checks name it)."""
    problems: dict[str, Problem] = {}
    for field in fields:
        if field not in ("name", "name_en"):
            problems[str(field)] = Problem("code_fixed" if field == "code" else "unknown")
    names = _names_of(fields, problems, creating=False)
    if problems:
        raise AdminInvalid(problems)
    before = read(session)
    role = get_role(session, code)
    if "name" in names and any(r.name == names["name"] and r.code != code for r in before.roles):
        raise Conflict(f"a role is already named '{names['name']}'")
    changes = {k: v for k, v in names.items() if v != getattr(role, k)}
    if not changes:
        return {}
    _ensure_role_rows(session, before, now)
    row = session.get(Role, code)
    assert row is not None
    for field, value in changes.items():
        setattr(row, field, value)
    record_event(session, "role_renamed", at=now, actor=actor, message=f"role {code}: {', '.join(changes)}",
                 data={"role": code, "changes": changes})
    _bumped(session, actor, now)
    return changes


def _names_of(fields: Mapping[str, Any], problems: dict[str, Problem], *, creating: bool) -> dict[str, str]:
    names: dict[str, str] = {}
    for field, required in (("name", True), ("name_en", False)):
        if field not in fields and not (creating and required):
            continue
        value = fields.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                problems[field] = Problem("required")
            else:
                names[field] = ""
        elif not isinstance(value, str):
            problems[field] = Problem("type")
        elif len(value.strip()) > 80:
            problems[field] = Problem("maxLength", {"limit": 80})
        else:
            names[field] = value.strip()
    return names


def _ensure_role_rows(session: Session, matrix: Matrix, now: datetime) -> None:
    """A row in ``roles`` for every built-in role (a database made without the seed)."""
    have = set(session.scalars(select(Role.code)))
    for position, role in enumerate(matrix.roles):
        if role.code not in have and role.builtin:
            session.add(Role(code=role.code, name=role.name, name_en=role.name_en, builtin=True,
                             position=position, created_at=now))
    session.flush()


def _bumped(session: Session, actor: str, now: datetime) -> None:
    """Move the counter (other processes reload) and, once committed, this process's copy."""
    moved = session.execute(update(RoleMatrixVersion).where(RoleMatrixVersion.id == 1).values(
        version=RoleMatrixVersion.version + 1, changed_at=now, changed_by=actor[:40]))
    if not getattr(moved, "rowcount", 0):
        session.add(RoleMatrixVersion(id=1, version=1, changed_at=now, changed_by=actor[:40]))
    session.flush()
    matrix = read(session)
    after_commit(session, lambda: _installed(matrix), key="kefu.role_matrix")


def _installed(matrix: Matrix) -> None:
    global _checked_at
    with _lock:
        access.install(matrix)
        _checked_at = _time.monotonic()
