"""One place that turns errors into responses: JSON for the API, a page for the browser."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError
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
from processes.roaming import NotRoaming, SignatureRefused, UnknownCompany, UnknownDispatch
from processes.urging import TooSoon

STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409, ValidationFailed: 422,
          DefinitionInvalid: 422, InstanceFailed: 422, PeerUnavailable: 503,
          # the roaming exchange (processes/roaming.py)
          NotRoaming: 422, SignatureRefused: 401, UnknownCompany: 403, UnknownDispatch: 404,
          TooSoon: 429}

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
    "pattern": _l("Not in the expected form. %(hint)s"),
    # the complaint's transfer to the home province (processes/roaming.py, roaming.home)
    "not_homed_elsewhere": _l("The customer's number is not homed in another province: "
                              "the complaint cannot be transferred to a home province."),
    "received_from_partner": _l("This complaint was transferred here by another province: "
                                "it cannot be transferred again."),
    # the dispatch's department deadlines (processes/complaint_rules.py, complaint.check_dispatch)
    "deadline_past": _l("This deadline is already past: give a time still ahead."),
    "deadline_order": _l("The first-reply deadline must not be later than the final-reply deadline."),
    "same_department": _l("The work order is already with this department: choose another one."),
}


def localized_fields(exc: ValidationFailed) -> dict[str, str]:
    """Per-field messages in the user's language."""
    codes = getattr(exc, "codes", None)
    if not codes:
        return dict(exc.fields)
    english = str(get_locale() or "").startswith("en")
    out = {}
    for field, c in codes.items():
        params = dict(c["params"])
        if english and params.get("hint_en"):
            params["hint"] = params["hint_en"]  # the form's own hint in the user's language
        out[field] = (str(FIELD_MESSAGES[c["code"]]) % params if params else str(FIELD_MESSAGES[c["code"]])).strip()
    return out


# A page shows people a headline for the status and, where the engine's reason is one people
# meet, that reason in their language; other reasons (ids, codes) stay in the API's JSON.
HEADLINES = {
    400: _l("The request could not be understood."), 401: _l("Please sign in."),
    403: _l("You may not do this."),
    404: _l("Not found: it may have been handled already, or it is not yours to see."),
    409: _l("This cannot be done right now."), 413: _l("The request is too large."),
    429: _l("Too soon: please wait a little before trying again."),
    422: _l("The request could not be accepted."),
    503: _l("Another system is not answering; please try again shortly."),
}
OUT_OF_RANGE = "A number, date or text in the request is beyond what can be stored."
PERIOD_INVALID = "The period or grouping is not valid: check the dates (from must not be after to, at most a year)."
REASONS = {
    "this task is already done": _l("This task is already done."),
    "this task is held by someone else": _l("Someone else holds this task: it is read-only for you."),
    "the case was changed by someone else; reload and try again":
        _l("Someone else changed the case meanwhile; reload the page and try again."),
    "the case is suspended (挂起); resume it first": _l("The case is on hold; resume it first."),
    "the case is not suspended": _l("The case is not suspended."),
    "the task is not ready": _l("This step is not ready yet."),
    "the task no longer exists in the workflow": _l("This step no longer exists in the case."),
    "this incident is already resolved": _l("This incident is already resolved."),
    "the incident's job is not failed any more": _l("The incident's job is no longer failed."),
    "only the group leader may reassign this task": _l("Only the group leader may reassign this task."),
    "a reason is required": _l("A reason is required."),
    "only the holder of an open step, a leader or a manager may hold or resume a case":
        _l("Only whoever works on one of the case's steps, a leader or a manager may put it on hold or resume it."),
    "the assignee is not in the task's group": _l("The chosen person is not in the task's group."),
    "the case changed since the preview; preview again": _l("The case changed since the preview; preview again."),
    "this step was urged less than 30 minutes ago": _l("This step was urged a short while ago; urge it again later."),
    PERIOD_INVALID: _l("The period or grouping is not valid: check the dates (from must not be after to, at most a year)."),
    OUT_OF_RANGE: _l("A number, date or text in the request is beyond what can be stored."),
    "this alert is already cleared": _l("This alert is already cleared: its step is done."),
    "this alert concerns the whole case, not one step": _l("This alert concerns the whole case, not one step."),
}


def page_message(status: int, message: str) -> tuple[str, str]:
    """(headline, reason) for an error page, in the user's language."""
    headline = str(HEADLINES.get(status, HEADLINES[400]))
    reason = REASONS.get(message)
    if reason is not None:
        return headline, str(reason)
    from .views_helpers import locale

    return headline, (message if locale().startswith("en") and message != headline else "")


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_response(status: int, code: str, message: str, **extra: Any):
    """The API's error body: ``{"error", "message", "fields"}`` (+ extras such as ``errors``)."""
    body = {"error": code, "message": message, "fields": extra.pop("fields", {}), **extra}
    if wants_json():
        return jsonify(body), status
    headline, reason = page_message(status, message)
    return render_template("error.html", status=status, headline=headline, reason=reason,
                           fields=body["fields"]), status


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

    @app.errorhandler(OverflowError)
    @app.errorhandler(DataError)
    def _out_of_range(exc: Exception):
        # The safety net behind the request layer (web/request_limits.py): a number or a text the
        # database cannot hold (a 64-bit id on SQLite, an int4 or varchar bound on PostgreSQL), or a
        # date beyond the calendar, that some view let through, is the request's fault, not a 500.
        from .extensions import db

        db.session.rollback()
        app.logger.warning("bad input reached the database on %s %s: %s", request.method, request.path,
                           str(exc).splitlines()[0][:300])
        return error_response(400, "out_of_range", OUT_OF_RANGE)

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
