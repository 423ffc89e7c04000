"""The analysts' modeler page (bpmn-js, served from the checkout's npm packages — nothing is loaded
from the internet), its templates, version downloads, and the vendor files it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, send_from_directory
from flask_babel import gettext as _
from lxml import etree
from sqlalchemy import func, select

from engine import definitions
from engine.models import RUNNING, ProcessDefinition, ProcessInstance
from engine.people import Group

from . import config
from .access import permission_required
from .extensions import db
from .views_helpers import engine, localtime

bp = Blueprint("modeler", __name__)
NODE_MODULES = config.PROJECT_ROOT / "node_modules"
# Only these folders of the npm packages are served (the browser bundles and their assets).
VENDOR_DIRS = ("bpmn-js/dist/", "bpmn-js-properties-panel/dist/", "@bpmn-io/properties-panel/dist/assets/")
MODELER_BUNDLE = "bpmn-js/dist/bpmn-modeler.production.min.js"
MIGRATION_LIST_LIMIT = 100


@bp.get("/vendor/<path:filename>")
def vendor(filename: str):
    """A file of an allowed npm package folder (versions are pinned, so browsers may cache)."""
    if ".." in filename or not filename.startswith(VENDOR_DIRS):
        abort(404)
    return send_from_directory(NODE_MODULES, filename, max_age=86400)


def _templates_dir() -> Path:
    return Path(current_app.config["KEFU_BPMN_DIR"]) / "templates"


def templates() -> list[dict[str, str]]:
    """The starting diagrams in ``bpmn/templates`` with their process names."""
    found = []
    for path in sorted(_templates_dir().glob("*.bpmn")):
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
        process = root.find(f"{{{definitions.BPMN_NS}}}process")
        found.append({"name": path.stem, "title": (process.get("name") if process is not None else None)
                      or path.stem})
    return found


def _summary(summary: str | None) -> str:
    """A deployment's note; the bundled diagrams' own note (engine.runtime) in words."""
    if summary and summary.startswith("bundled "):
        return _("Shipped with Kefu: %(file)s", file=summary[len("bundled "):])
    return summary or ""


def _deployer(name: str | None) -> str:
    return _("the system") if name in (None, "", "system") else name


@bp.get("/modeler")
@permission_required("deploy_process")
def page():
    versions = list(db.session.scalars(select(ProcessDefinition).order_by(
        ProcessDefinition.key, ProcessDefinition.version.desc())))
    processes: dict[str, dict[str, Any]] = {}
    for d in versions:
        entry = processes.setdefault(d.key, {"key": d.key, "name": d.name, "versions": []})
        entry["versions"].append({"version": d.version, "deployed_by": _deployer(d.deployed_by),
                                  "deployed_at": localtime(d.deployed_at), "summary": _summary(d.summary)})
    latest = {key: p["versions"][0]["version"] for key, p in processes.items()}
    operations = getattr(engine(), "operations", None) or {}
    data = {
        "processes": list(processes.values()),
        "templates": templates(),
        "groups": [{"code": g.code, "name": g.name} for g in db.session.scalars(select(Group).order_by(Group.id))],
        "operations": [{"name": op.name, "title": op.title, "required": list(op.required),
                        "optional": list(op.optional)} for op in sorted(operations.values(), key=lambda o: o.name)],
        "behind": [{"id": i.id, "reference": i.reference, "key": i.process_key, "version": i.definition.version,
                    "latest": latest[i.process_key]} for i in cases_behind()],
        "strings": strings(),
    }
    installed = (NODE_MODULES / MODELER_BUNDLE).exists()
    return render_template("modeler.html", data=data, processes=data["processes"], installed=installed,
                           behind=data["behind"])


def cases_behind() -> list[ProcessInstance]:
    """Running cases on an older version than their process's latest (candidates for moving)."""
    newest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("v"))
              .group_by(ProcessDefinition.key).subquery())
    older = (select(ProcessDefinition.id).join(newest, newest.c.key == ProcessDefinition.key)
             .where(ProcessDefinition.version < newest.c.v))
    return list(db.session.scalars(
        select(ProcessInstance).where(ProcessInstance.status == RUNNING,
                                      ProcessInstance.definition_id.in_(older))
        .order_by(ProcessInstance.id.desc()).limit(MIGRATION_LIST_LIMIT)))


@bp.get("/modeler/templates/<name>.bpmn")
@permission_required("deploy_process")
def template(name: str):
    if not any(t["name"] == name for t in templates()):
        abort(404)
    return send_from_directory(_templates_dir(), f"{name}.bpmn", mimetype="application/xml")


@bp.get("/modeler/<key>/v<int:version>.bpmn")
@permission_required("deploy_process")
def download(key: str, version: int):
    definition = db.session.scalars(select(ProcessDefinition).where(
        ProcessDefinition.key == key, ProcessDefinition.version == version)).first()
    if definition is None:
        abort(404)
    return Response(definition.bpmn_xml, mimetype="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{key}-v{version}.bpmn"'})


def strings() -> dict[str, str]:
    """The modeler script's words in the user's language (``{name}`` placeholders filled in JS)."""
    return {
        "loading": _("Loading…"),
        "opened": _("Opened %(name)s, version %(version)s.", name="{name}", version="{version}"),
        "fromTemplate": _("New diagram from the template %(name)s: give the process an ID and a name.",
                          name="{name}"),
        "imported": _("Imported %(file)s.", file="{file}"),
        "importFailed": _("Could not open the diagram: %(error)s", error="{error}"),
        "checking": _("Checking…"),
        "deploying": _("Deploying…"),
        "valid": _("No problems found: the diagram can be deployed."),
        "deployed": _("Deployed %(key)s as version %(version)s.", key="{key}", version="{version}"),
        "problems": _("%(n)s problem(s): the marked elements need attention.", n="{n}"),
        "requestFailed": _("The request failed (%(status)s).", status="{status}"),
        "wholeDiagram": _("(whole diagram)"),
        "unsaved": _("Changes not deployed will be lost. Continue?"),
        "panelTitle": _("Kefu properties"),
        "selectElement": _("Select an element on the diagram to edit what Kefu reads from it."),
        "nothingHere": _("Kefu reads nothing from this kind of element."),
        "group": _("Group"),
        "chooseGroup": _("(choose a group)"),
        "unknownGroup": _("Not a known group: %(name)s", name="{name}"),
        "lane": _("Lane"),
        "noLane": _("Not in any lane: put the task into a lane named after a group."),
        "camundaGroups": _("Camunda candidate groups: %(groups)s — put the task into that group's lane.",
                           groups="{groups}"),
        "camundaForm": _("Camunda form key: %(key)s — choose a Kefu form below.", key="{key}"),
        "form": _("Form"),
        "formFile": _("Form file"),
        "newForm": _("New form"),
        "schema": _("JSON Schema"),
        "preview": _("Preview"),
        "badJson": _("Not valid JSON: %(error)s", error="{error}"),
        "formMissing": _("Form %(name)s is not known yet: write its schema here.", name="{name}"),
        "timeLimit": _("Time limit of the step"),
        "duration": _("Duration"),
        "durationHint": _("ISO 8601, e.g. PT2H (2 hours), PT24H, P3D (3 days)"),
        "calendar": _("Calendar"),
        "cal24x7": _("7×24 hours"),
        "calWorkdays": _("Working days"),
        "warn": _("Warning at"),
        "warnHint": _("share of the limit, e.g. 0.8"),
        "escalations": _("Escalations"),
        "escalationsHint": _("e.g. 1.0:leader,1.5:manager (leader at 100 %, managers at 150 %)"),
        "dueVar": _("Deadline variable"),
        "dueVarHint": _("a case variable with an earlier deadline (optional)"),
        "groupVar": _("Group variable"),
        "groupVarHint": _("a case variable naming the group at run time (optional)"),
        "prefix": _("Case number prefix"),
        "operation": _("Connector operation"),
        "chooseOperation": _("(choose an operation)"),
        "noOperations": _("No connector operations are installed."),
        "parameters": _("Parameters"),
        "paramHint": _("Python expression: a variable such as customer_phone, or \"text\" in quotes"),
        "resultVar": _("Result variable"),
        "waitResult": _("Wait for the result before going on"),
        "timer": _("Timer"),
        "timerKind": _("Kind"),
        "timeDuration": _("Duration"),
        "timeDate": _("Date"),
        "timeCycle": _("Cycle"),
        "expression": _("Expression"),
        "timerHint": _("Python expression: \"PT2H\" in quotes, or a variable"),
        "message": _("Message"),
        "messageName": _("Message name"),
        "migrationPreview": _("Preview"),
        "migrate": _("Move to the latest version"),
        "moved": _("Moved to version %(version)s.", version="{version}"),
        "waitingOn": _("Waits on"),
        "changes": _("Changes"),
        "noChanges": _("No element changes."),
        "added": _("added"),
        "removed": _("removed"),
        "changed": _("changed"),
    }
