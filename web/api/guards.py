"""Who may call the API: a bearer token, or the browser's signed-in session where allowed.

A guard puts the caller in ``g.api_user`` before the view runs, or answers 401/403 itself.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request
from flask_babel import gettext as _
from flask_login import current_user

from engine.access import PERMISSIONS, allowed
from engine.database import READ_ONLY
from engine.people import User

from ..access import PERMISSION_ATTR
from ..auth import user_from_token
from ..errors import error_response
from ..extensions import csrf, db
from ..people_text import permission_label

GUARD_ATTR = "kefu_guard"  # on a guarded view: which guard (read by the OpenAPI generator)
READS_ONLY_ATTR = "kefu_reads_only"


def reads_only(view: Callable) -> Callable:
    """Mark a view that never writes (under its guard): its transaction then takes no write lock
    on SQLite (``engine.database.READ_ONLY``), so that agents' inbox reads never queue behind the
    steps of other server processes. A view that writes, even an audit row, must not have it."""
    setattr(view, READS_ONLY_ATTR, True)
    return view


def bearer_user() -> User | None:
    """The user of the request's ``Authorization: Bearer`` token (None without a valid one)."""
    header = request.headers.get("Authorization", "")
    return user_from_token(header[7:].strip()) if header.lower().startswith("bearer ") else None


def api_login_required(view: Callable) -> Callable:
    """A bearer token, or (for reading only) the browser's signed-in session."""

    reads = getattr(view, READS_ONLY_ATTR, False)

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if reads:
            db.session.connection(execution_options={READ_ONLY: True})
        user = bearer_user()
        if user is None and request.method == "GET" and current_user.is_authenticated:
            user = current_user._get_current_object()
        if user is None:
            return error_response(401, "unauthorized", "a valid bearer token is required")
        g.api_user = user
        return view(*args, **kwargs)

    setattr(wrapped, GUARD_ATTR, "bearer")
    return wrapped


def designer_required(view: Callable) -> Callable:
    """An analyst or admin: by bearer token, or by the signed-in session plus its CSRF token."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = bearer_user()
        if user is None and current_user.is_authenticated:
            if request.method != "GET" and current_app.config.get("WTF_CSRF_ENABLED", True):
                csrf.protect()  # the API blueprint is exempt; a browser session still needs the token
            user = current_user._get_current_object()
        if user is None:
            return error_response(401, "unauthorized", "a valid bearer token is required")
        if not allowed(user, "deploy_process"):
            return error_response(403, "forbidden", _("Only analysts and administrators may do this."))
        g.api_user = user
        return view(*args, **kwargs)

    setattr(wrapped, GUARD_ATTR, "designer")
    setattr(wrapped, PERMISSION_ATTR, "deploy_process")
    return wrapped


def permission_guard(permission: str) -> Callable[[Callable], Callable]:
    """A bearer token (or the signed-in session for reading) of a caller holding ``permission``;
    others get 403 naming the permission they lack. The permission is recorded on the view."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission '{permission}'")

    def decorator(view: Callable) -> Callable:
        @api_login_required
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not allowed(g.api_user, permission):
                return error_response(403, "forbidden", lacks(permission))
            return view(*args, **kwargs)

        setattr(wrapped, PERMISSION_ATTR, permission)
        return wrapped

    return decorator


def lacks(permission: str) -> str:
    """The refusal of a caller without ``permission``, naming it as people read it."""
    return _("This needs the permission “%(permission)s”, which your roles do not hold.",
             permission=permission_label(permission))
