"""Tools on a case and its task page: internal notes, attachments, and the reply templates (with
their small page for leaders and managers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from engine.access import may_view_instance
from engine.clock import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.models import AuditEvent, ProcessInstance
from processes import attachments, reply_templates

from .access import permission_required
from .extensions import db

bp = Blueprint("case_tools", __name__)

CATEGORY_LABELS = {"": _l("Every category"), "billing": _l("Billing"), "network": _l("Network"),
                   "service": _l("Service"), "sales": _l("Sales"), "suggestion": _l("Suggestion"),
                   "other": _l("Other"), "installation": _l("Installation, moves and repair staff"),
                   "value_added": _l("Value-added services"), "appeal": _l("Escalated complaint / appeal")}
FILE_PROBLEMS = {"empty": _l("The file is empty."), "too_large": _l("The file is larger than %(mb)s MB."),
                 "unsupported_type": _l("Only PDF, PNG, JPEG, text and Office documents (docx, xlsx, pptx) "
                                        "without macros are accepted."),
                 "name_mismatch": _l("The file's name does not match its content (e.g. a .pdf that is "
                                     "not a PDF).")}
NOTE_PROBLEMS = {"required": _l("Write the note first."),
                 "too_long": _l("A note has at most %(n)s characters.")}


@dataclass
class CaseTools:
    notes: list[AuditEvent]
    files: list[attachments.CaseAttachment]
    templates: list[reply_templates.ReplyTemplate]


@bp.app_template_global()
def case_tools(instance: ProcessInstance, data: dict[str, Any] | None = None) -> CaseTools:
    """For the task and case pages: the case's notes and files, the reply templates of its category."""
    category = (data or {}).get("category")
    return CaseTools(reply_templates.notes_of(db.session, instance.id),
                     attachments.of_instance(db.session, instance.id),
                     reply_templates.for_category(db.session, category if isinstance(category, str) else None))


@bp.app_template_global()
def category_label(code: str) -> str:
    return str(CATEGORY_LABELS.get(code or "", code))


def attachment_limit() -> int:
    return int(current_app.config.get("KEFU_ATTACHMENT_MB", 10)) * 1024 * 1024


def attachment_dir() -> Path:
    return Path(current_app.config["KEFU_DATA_DIR"]) / "attachments"


@bp.url_value_preprocessor
def _allow_large_uploads(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Runs before the app's request hooks (CSRF and the NUL check read the form), so the upload's
    # own limit applies instead of the 2 MB of every other request.
    if endpoint == "case_tools.upload":
        request.max_content_length = attachment_limit() + 64 * 1024


def _case(instance_id: int) -> ProcessInstance:
    instance = db.session.get(ProcessInstance, instance_id)
    if instance is None or not may_view_instance(db.session, current_user, instance):
        raise NotFound(f"case {instance_id} not found")
    return instance


def _back(instance_id: int) -> Any:
    target = request.form.get("next", "")
    if re.fullmatch(r"/(?:cases|tasks)/\d+", target):  # back to the page the form was on, nowhere else
        return redirect(target)
    return redirect(url_for("cases.show", instance_id=instance_id))


@bp.post("/cases/<int:instance_id>/notes")
@login_required
def add_note(instance_id: int):
    instance = _case(instance_id)
    try:
        reply_templates.add_note(db.session, instance, request.form.get("note", ""), current_user, utcnow())
        db.session.commit()
        flash(_("Internal note added."), "success")
    except ValidationFailed as exc:
        db.session.rollback()
        problem = exc.fields.get("note", "required")
        flash(str(NOTE_PROBLEMS.get(problem, NOTE_PROBLEMS["required"])) % {"n": reply_templates.NOTE_LIMIT},
              "error")
    return _back(instance_id)


@bp.post("/cases/<int:instance_id>/attachments")
@login_required
def upload(instance_id: int):
    instance = _case(instance_id)
    file = request.files.get("file")
    if file is None or not file.filename:
        flash(_("Choose a file first."), "error")
        return _back(instance_id)
    limit = attachment_limit()
    content = file.read(limit + 1)
    try:
        row = attachments.add(db.session, attachment_dir(), instance, file.filename, content, current_user,
                              utcnow(), limit)
        db.session.commit()
        flash(_("File attached: %(name)s.", name=row.filename), "success")
    except ValidationFailed as exc:
        db.session.rollback()
        problem = FILE_PROBLEMS.get(exc.fields.get("file", ""), FILE_PROBLEMS["unsupported_type"])
        flash(str(problem) % {"mb": limit // (1024 * 1024)}, "error")
    return _back(instance_id)


@bp.get("/attachments/<int:attachment_id>")
@login_required
def download(attachment_id: int):
    row = db.session.get(attachments.CaseAttachment, attachment_id)
    if row is None:
        raise NotFound(f"attachment {attachment_id} not found")
    _case(row.instance_id)
    path = attachments.path_of(attachment_dir(), row)
    if not path.is_file():
        raise NotFound(f"attachment {attachment_id} not found")
    response = send_file(path, mimetype=attachments.content_type(row), as_attachment=True,
                         download_name=row.filename, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/admin/reply-templates")
@permission_required("manage_reply_templates")
def templates_page(editing: reply_templates.ReplyTemplate | None = None, errors: dict[str, str] | None = None):
    if editing is None and request.args.get("edit", type=int):
        editing = reply_templates.get(db.session, request.args.get("edit", type=int) or 0)
    return render_template("reply_templates.html", templates=reply_templates.all_templates(db.session),
                           editing=editing, errors=errors or {}, categories=CATEGORY_LABELS,
                           values=request.form if errors else None)


TEMPLATE_PROBLEMS = {"required": _l("This field is required."), "too_long": _l("This text is too long."),
                     "choice": _l("Not one of the allowed values.")}


@bp.post("/admin/reply-templates")
@permission_required("manage_reply_templates")
def save_template():
    template_id = request.form.get("id", type=int)
    try:
        reply_templates.save(db.session, template_id, request.form.get("category", ""),
                             request.form.get("title", ""), request.form.get("body", ""), current_user, utcnow())
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        flash(_("Please correct the marked fields."), "error")
        errors = {k: str(TEMPLATE_PROBLEMS.get(v, TEMPLATE_PROBLEMS["required"])) for k, v in exc.fields.items()}
        editing = reply_templates.get(db.session, template_id) if template_id else None
        return templates_page(editing=editing, errors=errors), 422
    flash(_("Reply template saved."), "success")
    return redirect(url_for("case_tools.templates_page"))


@bp.post("/admin/reply-templates/<int:template_id>/delete")
@permission_required("manage_reply_templates")
def delete_template(template_id: int):
    reply_templates.delete(db.session, template_id)
    db.session.commit()
    flash(_("Reply template deleted."), "success")
    return redirect(url_for("case_tools.templates_page"))
