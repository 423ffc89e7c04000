"""Sign-in for people (session cookie) and for integrators (bearer tokens), and the language switch."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from engine import sign_in
from engine.clock import utcnow
from engine.people import User, load_user, user_by_name

from .extensions import db, login_manager

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def _load_user(session_id: str) -> User | None:
    user_id, _dot, version = session_id.partition(".")
    user = load_user(db.session, int(user_id)) if user_id.isdigit() and version.isdigit() else None
    if user is None or not user.active or int(version) != (user.token_version or 1):
        return None
    return user


class Throttled(Exception):
    """Too many failed sign-ins for this account or address: try again after ``wait``."""

    def __init__(self, wait: timedelta) -> None:
        super().__init__(f"too many failed sign-ins; try again in {_minutes(wait)} minute(s)")
        self.wait = wait


def authenticate(username: str, password: str) -> User | None:
    """The active user with these credentials, or None; every attempt is recorded, and an account
    or address with too many recent failures raises :class:`Throttled` (engine/sign_in.py)."""
    name, address, now = (username or "").strip()[:40], request.remote_addr or "-", utcnow()
    wait = sign_in.wait_before_trying(db.session, name, address, now)
    if wait is not None:
        db.session.rollback()
        raise Throttled(wait)
    user = user_by_name(db.session, name)
    if user is None or not user.active or not user.check_password(password or ""):
        user = None
    sign_in.record_attempt(db.session, name, address, user is not None, now)
    db.session.commit()
    return user


def _minutes(wait: timedelta) -> int:
    return max(1, int(wait.total_seconds() + 59) // 60)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="kefu-api-token")


def issue_token(user: User) -> str:
    """A signed bearer token naming the user and their token version (nothing of the password):
    a new password, an API logout or deactivation revokes it."""
    return _serializer().dumps({"uid": user.id, "v": user.token_version or 1})


def user_from_token(token: str) -> User | None:
    try:
        payload = _serializer().loads(token, max_age=current_app.config["KEFU_TOKEN_HOURS"] * 3600)
    except (BadSignature, SignatureExpired):
        return None
    uid = payload.get("uid") if isinstance(payload, dict) else None
    user = load_user(db.session, uid) if isinstance(uid, int) else None
    if user is None or not user.active or payload.get("v") != (user.token_version or 1):
        return None
    return user


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        try:
            user = authenticate(request.form.get("username", ""), request.form.get("password", ""))
        except Throttled as exc:
            flash(_("Too many failed sign-ins. Try again in %(minutes)s minute(s).", minutes=_minutes(exc.wait)),
                  "error")
            return render_template("login.html", username=request.form.get("username", "")), 429
        if user is None:
            flash(_("Wrong user name or password."), "error")
            return render_template("login.html", username=request.form.get("username", "")), 401
        login_user(user)
        target = request.args.get("next", "")
        if not target or urlparse(target).netloc or not target.startswith("/"):
            target = url_for("inbox.home")
        return redirect(target)
    return render_template("login.html", username="")


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))


@bp.get("/lang/<code>")
def set_language(code: str):
    if code in current_app.config["KEFU_LANGUAGES"]:
        session["lang"] = code
        if current_user.is_authenticated:
            current_user.locale = code
            db.session.commit()
    back = request.referrer or url_for("inbox.home")
    return redirect(back if not urlparse(back).netloc or urlparse(back).netloc == request.host else "/")
