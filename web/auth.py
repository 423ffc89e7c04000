"""Sign-in for people (session cookie) and for integrators (bearer tokens), and the language switch."""

from __future__ import annotations

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

from engine.people import User, user_by_name

from .extensions import db, login_manager

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    return user if user is not None and user.active else None


def authenticate(username: str, password: str) -> User | None:
    """The active user with these credentials, or None."""
    user = user_by_name(db.session, (username or "").strip())
    if user is None or not user.active or not user.check_password(password or ""):
        return None
    return user


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="kefu-api-token")


def issue_token(user: User) -> str:
    """A signed bearer token; changing the password revokes it (the hash tail is part of it)."""
    return _serializer().dumps({"uid": user.id, "pw": user.password_hash[-12:]})


def user_from_token(token: str) -> User | None:
    try:
        payload = _serializer().loads(token, max_age=current_app.config["KEFU_TOKEN_HOURS"] * 3600)
    except (BadSignature, SignatureExpired):
        return None
    user = db.session.get(User, payload.get("uid"))
    if user is None or not user.active or user.password_hash[-12:] != payload.get("pw"):
        return None
    return user


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        user = authenticate(request.form.get("username", ""), request.form.get("password", ""))
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
