"""One place that turns errors into responses: JSON for the API, a page for the browser."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine.errors import (
    Conflict,
    DefinitionInvalid,
    Forbidden,
    InstanceFailed,
    KefuError,
    NotFound,
    PeerUnavailable,
    ValidationFailed,
)

STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409, ValidationFailed: 422,
          DefinitionInvalid: 422, InstanceFailed: 422, PeerUnavailable: 503}

FIELD_MESSAGES = {
    "required": _l("This field is required."),
    "maxLength": _l("At most %(limit)s characters."),
    "minLength": _l("At least %(limit)s characters."),
    "choice": _l("Not one of the allowed values."),
    "type": _l("Wrong type of value."),
    "minimum": _l("Must be at least %(limit)s."),
    "maximum": _l("Must be at most %(limit)s."),
    "format": _l("Not a valid date and time."),
    "unknown": _l("Unknown field."),
    "invalid": _l("Invalid value."),
}


def localized_fields(exc: ValidationFailed) -> dict[str, str]:
    """Per-field messages in the user's language."""
    codes = getattr(exc, "codes", None)
    if not codes:
        return dict(exc.fields)
    return {field: str(FIELD_MESSAGES[c["code"]]) % c["params"] if c["params"]
            else str(FIELD_MESSAGES[c["code"]]) for field, c in codes.items()}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_response(status: int, code: str, message: str, **extra: Any):
    """The API's error body: ``{"error", "message", "fields"}`` (+ extras such as ``errors``)."""
    body = {"error": code, "message": message, "fields": extra.pop("fields", {}), **extra}
    if wants_json():
        return jsonify(body), status
    return render_template("error.html", status=status, message=message, fields=body["fields"]), status


def register(app: Flask) -> None:
    @app.errorhandler(KefuError)
    def _domain(exc: KefuError):
        status = STATUS.get(type(exc), 400)
        extra: dict[str, Any] = {}
        if isinstance(exc, ValidationFailed):
            extra["fields"] = localized_fields(exc)
        if isinstance(exc, DefinitionInvalid):
            extra["errors"] = exc.errors
        from .extensions import db

        db.session.rollback()
        return error_response(status, exc.code, exc.message, **extra)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return error_response(400, "csrf", _("The form expired; reload the page and try again."))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large"}
        messages = {401: _("Please sign in."), 403: _("You may not do this."),
                    404: _("Not found."), 413: _("The request is too large.")}
        status = exc.code or 500
        return error_response(status, codes.get(status, "error"),
                              messages.get(status, exc.description or exc.name))
