"""Tools on a case and its task page: internal notes, attachments, and the reply templates (with
their small page for leaders and managers)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from engine.access import may_view_instance
from engine.clock import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.models import AuditEvent, ProcessInstance
from processes import attachment_store as stores
from processes import attachments, reply_templates

from . import reply_scopes
from .access import permission_required
from .extensions import db
from .reply_scopes import CATEGORY_LABELS
from .request_limits import db_int

bp = Blueprint("case_tools", __name__)

FILE_PROBLEMS = {"empty": _l("The file is empty."), "too_large": _l("The file is larger than %(mb)s MB."),
                 "unsupported_type": _l("Only PDF, PNG, JPEG, text and Office documents (docx, xlsx, pptx) "
                                        "without macros are accepted."),
                 "name_mismatch": _l("The file's name does not match its content (e.g. a .pdf that is "
                                     "not a PDF).")}
STORE_DOWN = _l("The file store is not answering, so the file was not attached; please try again in a "
                "little while. What you wrote about the file is kept below.")
DOWNLOAD_PROBLEMS = {
    "store_unavailable": (503, _l("The file store is not answering."),
                          _l("The file could not be fetched; please try again in a little while.")),
    "attachment_missing": (404, _l("The file is missing from the file store."),
                           _l("The case lists this file, but the file store no longer has it (or it was "
                              "changed). Please tell the system administrator.")),
}
FILE_NOTE_LIMIT = 200
NOTE_PROBLEMS = {"required": _l("Write the note first."),
                 "too_long": _l("A note has at most %(n)s characters.")}


@dataclass
class CaseTools:
    notes: list[AuditEvent]
    files: list[attachments.CaseAttachment]
    templates: list[reply_templates.ReplyTemplate]
    file_note: str = ""  # what was written about a file whose upload was refused, to try again


@bp.app_template_global()
def case_tools(instance: ProcessInstance, data: dict[str, Any] | None = None) -> CaseTools:
    """For the task and case pages: the case's notes and files, the reply templates of its process and
    kind (a complaint's category, an acceptance's request type …)."""
    process = instance.process_key
    kept = session.get("kefu_file_note")
    file_note = ""
    if isinstance(kept, dict) and kept.get("case") == instance.id:
        file_note = str(kept.get("note", ""))
        session.pop("kefu_file_note", None)
    return CaseTools(reply_templates.notes_of(db.session, instance.id),
                     attachments.of_instance(db.session, instance.id),
                     reply_templates.for_case(db.session, process, reply_templates.kind_of(process, data)),
                     file_note)


@bp.app_template_global()
def category_label(code: str) -> str:
    return str(CATEGORY_LABELS.get(code or "", code))


@bp.app_template_global()
def reply_field(names: list[str]) -> str | None:
    """The task form's field the reply templates are inserted into (none: no templates offered)."""
    return reply_templates.reply_field(names)


@bp.app_template_global()
def reply_template_label(template: reply_templates.ReplyTemplate) -> str:
    """What a template on a task is for: its kind, or every kind of the process."""
    return reply_scopes.kind_label(template.process_key, template.category)


def attachment_limit() -> int:
    return int(current_app.config.get("KEFU_ATTACHMENT_MB", 10)) * 1024 * 1024


def attachment_store() -> stores.AttachmentStore:
    """The store KEFU_ATTACHMENT_STORE names (built once per configuration: the S3 client is reusable)."""
    config = current_app.config
    settings = (config.get("KEFU_ATTACHMENT_STORE", ""), config["KEFU_DATA_DIR"], config.get("KEFU_S3_ENDPOINT", ""),
                config.get("KEFU_S3_ACCESS_KEY", ""), config.get("KEFU_S3_SECRET_KEY", ""),
                config.get("KEFU_S3_REGION", ""), config.get("KEFU_S3_ADDRESSING", ""))
    built = current_app.extensions.get("kefu_attachment_store")
    if built is None or built[0] != settings:
        url, data_dir, endpoint, access_key, secret_key, region, addressing = settings
        s3 = {"endpoint": endpoint, "access_key": access_key, "secret_key": secret_key,
              "region": region, "addressing": addressing} if url.strip() else {}
        built = (settings, stores.from_settings(url, Path(data_dir), **s3))
        current_app.extensions["kefu_attachment_store"] = built
    return built[1]


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
    note = request.form.get("file_note", "").strip()[:FILE_NOTE_LIMIT]
    if file is None or not file.filename:
        return _refused(instance_id, note, _("Choose a file first."))
    limit = attachment_limit()
    content = file.read(limit + 1)
    store = attachment_store()
    row = None
    try:
        row = attachments.add(db.session, store, instance, file.filename, content, current_user, utcnow(), limit)
        if note:
            reply_templates.add_note(db.session, instance, f"{row.filename}：{note}", current_user, utcnow())
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        problem = FILE_PROBLEMS.get(exc.fields.get("file", ""), FILE_PROBLEMS["unsupported_type"])
        return _refused(instance_id, note, str(problem) % {"mb": limit // (1024 * 1024)})
    except stores.StoreUnavailable:
        db.session.rollback()
        return _refused(instance_id, note, str(STORE_DOWN))
    except Exception:
        db.session.rollback()
        if row is not None:  # the commit failed after the object was stored: no row will name it
            attachments.forget(store, row)
        raise
    flash(_("File attached: %(name)s.", name=row.filename), "success")
    return _back(instance_id)


def _refused(instance_id: int, note: str, message: str) -> Any:
    """Back to the page with the refusal; what was written about the file is offered again."""
    if note:
        session["kefu_file_note"] = {"case": instance_id, "note": note}
    flash(message, "error")
    return _back(instance_id)


@bp.get("/attachments/<int:attachment_id>")
@login_required
def download(attachment_id: int):
    row = db.session.get(attachments.CaseAttachment, attachment_id)
    if row is None:
        raise NotFound(f"attachment {attachment_id} not found")
    _case(row.instance_id)
    try:
        content = attachments.content_of(attachment_store(), row)
    except (stores.StoreUnavailable, stores.ObjectMissing) as exc:
        status, headline, reason = DOWNLOAD_PROBLEMS[exc.code]
        if request.accept_mimetypes.best == "application/json":
            return jsonify({"error": exc.code, "message": str(headline), "fields": {}}), status
        return render_template("error.html", status=status, headline=headline,
                               reason=f"{row.filename}：{reason}", fields={}), status
    response = send_file(io.BytesIO(content), mimetype=attachments.content_type(row), as_attachment=True,
                         download_name=row.filename, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/admin/reply-templates")
@permission_required("manage_reply_templates")
def templates_page(editing: reply_templates.ReplyTemplate | None = None, errors: dict[str, str] | None = None):
    if editing is None and (wanted := request.args.get("edit", type=db_int)):
        editing = reply_templates.get(db.session, wanted)
    scopes = reply_scopes.scopes()
    return render_template("reply_templates.html", templates=reply_templates.all_templates(db.session),
                           editing=editing, errors=errors or {}, scopes=scopes,
                           labels=dict(reply_scopes.PROCESS_LABELS), values=request.form if errors else None)


TEMPLATE_PROBLEMS = {"required": _l("This field is required."), "too_long": _l("This text is too long."),
                     "choice": _l("Not one of the allowed values.")}


@bp.post("/admin/reply-templates")
@permission_required("manage_reply_templates")
def save_template():
    template_id = request.form.get("id", type=int)
    # The page's one choice "process:kind"; a client may send process and category instead.
    process, _sep, kind = request.form.get("scope", "").partition(":")
    if not request.form.get("scope"):
        process, kind = request.form.get("process", "complaint"), request.form.get("category", "")
    try:
        reply_templates.save(db.session, template_id, kind, request.form.get("title", ""),
                             request.form.get("body", ""), current_user, utcnow(), process=process,
                             kinds=[k for k in reply_scopes.kinds(process) if k] if process in reply_scopes.PROCESS_LABELS
                             else None)
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
