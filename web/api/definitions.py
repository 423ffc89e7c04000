"""REST routes for process definitions (deploy, versions, BPMN), the connector operations the
modeler offers, and moving running cases to a newer version.

Deploying answers 201 ``{key, version}``, or 422 ``{"errors": [{element_id, message, code}]}``
with messages in the user's language (Chinese by default); only analysts and admins deploy or
migrate. Writes take a bearer token, or the browser's session with its CSRF token (the modeler).
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from engine import definitions, migration
from engine.clock import utcnow
from engine.errors import DefinitionInvalid, NotFound
from engine.models import RUNNING, ProcessDefinition, ProcessInstance

from ..errors import error_response
from ..extensions import db
from ..request_limits import MAX_ID, db_int
from ..views_helpers import engine
from .guards import api_login_required, designer_required
from .openapi import BOOLEAN, ID, INSTANT, INTEGER, STRING, documented, items_of, nullable, obj
from .shapes import json_body

MAX_FORMS = 50

VERSION = obj({"key": STRING, "version": INTEGER, "name": STRING, "deployed_by": nullable(STRING),
               "deployed_at": nullable(INSTANT), "summary": nullable(STRING)})
VERSION_QUERY = {"version": {"type": "integer", "minimum": 1}}
PLAN = obj({"instance_id": ID, "from_version": INTEGER, "to_version": nullable(INTEGER), "lock_version": INTEGER,
            "allowed": BOOLEAN, "code": nullable(STRING), "reason": nullable(STRING),
            "elements": {"type": "array", "items": STRING}, "waiting": {"type": "array"},
            "changes": {"type": "array"}})


def register(bp: Blueprint) -> None:
    bp.post("/definitions")(deploy_definition)
    bp.get("/definitions")(list_definitions)
    bp.get("/definitions/<key>")(get_definition)
    bp.get("/definitions/<key>/bpmn")(definition_bpmn)
    bp.get("/connectors/operations")(connector_operations)
    bp.get("/instances/<int:instance_id>/migration")(migration_preview)
    bp.post("/instances/<int:instance_id>/migrate")(migrate_instance)


# Engine messages (English) → the user's language; an unknown message is shown as it is.
_MESSAGES: list[tuple[re.Pattern[str], Any]] = [(re.compile(p), m) for p, m in (
    (r"^user task is not in a lane$", _l("This user task is not in any lane.")),
    (r"^lane '(?P<lane>.+)' names no group$", _l("Lane '%(lane)s' names no group.")),
    (r"^user task has no form", _l("This user task has no form.")),
    (r"^form '(?P<form>.+)' was not supplied$", _l("Form '%(form)s' was not uploaded.")),
    (r"^form '(?P<form>.+)' is not a valid schema: (?P<detail>.*)$",
     _l("Form '%(form)s' is not a valid JSON Schema: %(detail)s")),
    (r"^time limit: (?P<detail>.*)$", _l("Time limit: %(detail)s")),
    (r"^no installed connector offers the operation '(?P<op>.+)'$",
     _l("No installed connector offers the operation '%(op)s'.")),
    (r"^operation '(?P<op>.+)' needs the parameter\(s\) (?P<names>.+)$",
     _l("Operation '%(op)s' needs the parameter(s) %(names)s.")),
    (r"^A Service Task must have an operator", _l("A service task must name a connector operation.")),
    (r"^unreachable:", _l("Unreachable: no path from a start event leads here.")),
    (r"^dead end:", _l("Dead end: not an end event, yet no flow leaves it.")),
    (r"^XML is not well-formed: (?P<detail>.*)$", _l("The XML is not well-formed: %(detail)s")),
    (r"^expected one executable process, found (?P<n>\d+)$",
     _l("A diagram must hold exactly one executable process (found %(n)s).")),
    (r"^BPMN file is too large$", _l("The BPMN file is too large.")),
    (r"^script refused: (?P<detail>.*)$", _l("This script or expression cannot run in the sandbox: %(detail)s")),
)]


def localized(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Definition errors with their messages in the user's language (the English one kept as
    ``detail``)."""
    out = []
    for error in errors:
        text = str(error.get("message") or "")
        message = text
        for pattern, template in _MESSAGES:
            match = pattern.match(text)
            if match:
                message = str(template) % match.groupdict() if match.groupdict() else str(template)
                break
        out.append({"element_id": error.get("element_id"), "message": message, "detail": text})
    return out


@documented("Deploy (or with dry_run only check) a BPMN diagram and its form schemas",
            request=obj({"file": {"type": "string", "contentMediaType": "application/octet-stream"},
                         "summary": STRING, "dry_run": {"type": "string", "enum": ["0", "1"]}}, ["file"]),
            request_media="multipart/form-data", status=(201, 200),
            response=obj({"key": STRING, "version": INTEGER, "name": STRING}, ["key", "version", "name"]))
@designer_required
def deploy_definition():
    """Multipart: ``file`` = the .bpmn, any other files = form schemas by file name, ``summary``;
    ``dry_run=1`` checks without deploying."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _invalid([{"element_id": None, "message": _("Upload the diagram as the field 'file'.")}])
    forms, errors = _uploaded_forms()
    if errors:
        return _invalid(errors)
    xml = upload.read()
    summary = (request.form.get("summary") or "").strip()
    dry_run = (request.form.get("dry_run") or request.args.get("dry_run") or "") in ("1", "true", "yes")
    try:
        definition = engine().deploy(db.session, xml, forms, now=utcnow(), deployed_by=g.api_user.username,
                                     summary=summary or _("Deployed from the modeler"))
    except DefinitionInvalid as exc:
        db.session.rollback()
        return _invalid(localized(exc.errors))
    body = {"key": definition.key, "version": definition.version, "name": definition.name}
    if dry_run:
        db.session.rollback()  # every check ran exactly as for a deployment; nothing is kept
        return jsonify({**body, "valid": True, "dry_run": True})
    db.session.commit()
    return jsonify(body), 201


def _uploaded_forms() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    forms: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for field, upload in request.files.items(multi=True):
        if field == "file":
            continue
        name = (upload.filename or field).rsplit("/", 1)[-1]
        if len(forms) >= MAX_FORMS or not name.endswith(".json"):
            errors.append({"element_id": None, "message": _("'%(name)s' is not a form schema (.json).", name=name)})
            continue
        try:
            forms[name] = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            errors.append({"element_id": None,
                           "message": _("Form '%(name)s' is not valid JSON: %(detail)s", name=name, detail=exc)})
    return forms, errors


def _invalid(errors: list[dict[str, Any]]):
    return error_response(422, DefinitionInvalid.code, _("The diagram was not deployed: fix the marked elements."),
                          errors=errors)


@documented("Every deployed version, newest first, with its running cases",
            response=items_of({"allOf": [VERSION, obj({"running": INTEGER})]}), query={"key": STRING})
@api_login_required
def list_definitions():
    """Every deployed version (newest first), with who deployed it, when, why, and how many of
    its cases are still running."""
    query = select(ProcessDefinition).order_by(ProcessDefinition.key, ProcessDefinition.version.desc())
    if request.args.get("key"):
        query = query.where(ProcessDefinition.key == request.args["key"])
    running = dict(db.session.execute(
        select(ProcessInstance.definition_id, func.count()).where(ProcessInstance.status == RUNNING)
        .group_by(ProcessInstance.definition_id)).all())
    return jsonify({"items": [{**_version_summary(d), "running": running.get(d.id, 0)}
                              for d in db.session.scalars(query)]})


@documented("A version of a process with its forms (default: the latest)",
            response={"allOf": [VERSION, obj({"forms": {"type": "object"}})]}, query=VERSION_QUERY)
@api_login_required
def get_definition(key: str):
    definition = _version(key, request.args.get("version", type=db_int))
    # Not jsonify: it sorts keys, and a form's fields must keep the order their author gave them.
    body = json.dumps({**_version_summary(definition), "forms": definition.forms}, ensure_ascii=False)
    return Response(body, mimetype="application/json")


@documented("A version's BPMN XML", response_media=("application/xml",),
            query={**VERSION_QUERY, "download": STRING})
@api_login_required
def definition_bpmn(key: str):
    definition = _version(key, request.args.get("version", type=db_int))
    response = Response(definition.bpmn_xml, mimetype="application/xml")
    # XML opened directly in a browser may run embedded XHTML script: this document may run nothing.
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.args.get("download"):
        response.headers["Content-Disposition"] = f'attachment; filename="{key}-v{definition.version}.bpmn"'
    return response


def _version(key: str, version: int | None) -> ProcessDefinition:
    """Version ``version`` of ``key``, or its latest version."""
    if version is None:
        definition = definitions.latest_version(db.session, key)
    else:
        definition = db.session.scalars(select(ProcessDefinition).where(
            ProcessDefinition.key == key, ProcessDefinition.version == version)).first()
    if definition is None:
        raise NotFound(f"no version {version or 'at all'} of '{key}' is deployed")
    return definition


def _version_summary(d: ProcessDefinition) -> dict[str, Any]:
    return {"key": d.key, "version": d.version, "name": d.name, "deployed_by": d.deployed_by,
            "deployed_at": d.deployed_at.isoformat() if d.deployed_at else None, "summary": d.summary}


@documented("The connector operations a service task may name", response=items_of(obj({
    "name": STRING, "title": STRING, "required": {"type": "array", "items": STRING},
    "optional": {"type": "array", "items": STRING}, "description": STRING, "mode": STRING})))
@api_login_required
def connector_operations():
    """The operations a service task may name (those of the installed connectors)."""
    operations = getattr(engine(), "operations", None) or {}
    return jsonify({"items": [{"name": op.name, "title": op.title, "required": list(op.required),
                               "optional": list(op.optional), "description": op.description,
                               "mode": op.mode} for op in sorted(operations.values(), key=lambda o: o.name)]})


_REFUSALS = {
    "not_running": _l("Only a running case can move to another version."),
    "up_to_date": _l("The case already runs on this or a newer version."),
    "missing_waiting": _l("The case waits on steps the new version does not have: %(elements)s."),
    "missing_passed": _l("The case already passed elements the new version does not have: %(elements)s."),
    "broken": _l("The case's state does not fit the new version."),
}


def migration_body(plan: migration.MigrationPlan) -> dict[str, Any]:
    """A plan as JSON, its refusal reason in the user's language (the English one as ``detail``)."""
    body = plan.as_dict()
    if plan.code:
        body["detail"] = plan.reason
        body["reason"] = str(_REFUSALS[plan.code]) % {"elements": ", ".join(plan.elements)}
    return body


@documented("What moving a case to another version would change", response=PLAN, query=VERSION_QUERY)
@designer_required
def migration_preview(instance_id: int):
    instance = db.session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"case {instance_id} not found")
    version = request.args.get("version", type=db_int)
    target = _version(instance.process_key, version) if version is not None else None
    return jsonify(migration_body(migration.preview(engine(), db.session, instance, target)))


@documented("Move a running case to another version (default: the latest)",
            request=obj({"version": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                         "lock_version": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}, []),
            request_required=False, response={"allOf": [PLAN, obj({"id": ID, "version": nullable(INTEGER)})]})
@designer_required
def migrate_instance(instance_id: int):
    body = json_body()
    version = body.get("version")
    lock_version = body.get("lock_version")
    if not all(value is None or (type(value) is int and 0 < value <= MAX_ID) for value in (version, lock_version)):
        return error_response(400, "bad_request", "version and lock_version must be positive integers")
    instance = db.session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"case {instance_id} not found")
    plan = migration.preview(engine(), db.session, instance,
                             _version(instance.process_key, version) if version is not None else None)
    if not plan.allowed:
        return error_response(409, "conflict", migration_body(plan)["reason"], plan=migration_body(plan))
    migration.migrate(engine(), db.session, instance_id, actor=g.api_user, now=utcnow(),
                      version=version, lock_version=lock_version)
    db.session.commit()
    return jsonify({**migration_body(plan), "id": instance_id, "version": plan.to_version})
