"""Who may open which page: views name the permission they need (engine/access.py holds the
table from permission to roles, for the engine, the pages and the API alike)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort
from flask_login import current_user, login_required

from engine.access import PERMISSIONS, allowed

PERMISSION_ATTR = "kefu_permission"  # on a guarded view: the permission it needs (tests read it)


def permission_required(permission: str) -> Callable:
    """Signed in and holding ``permission`` (engine/access.py ``allowed``)."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission '{permission}'")  # at import: a typo fails at once

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not allowed(current_user, permission):
                abort(403)
            return view(*args, **kwargs)

        setattr(wrapped, PERMISSION_ATTR, permission)
        return wrapped

    return decorator


def may_hold_case(instance: Any) -> bool:
    """For templates: whether the signed-in user may put ``instance`` on hold or resume it."""
    from engine.access import may_hold_case as rule

    from .extensions import db

    return bool(current_user.is_authenticated) and rule(db.session, current_user, instance)


def can(permission: str) -> bool:
    """For templates: whether the signed-in user holds ``permission``."""
    return bool(current_user.is_authenticated) and allowed(current_user, permission)
