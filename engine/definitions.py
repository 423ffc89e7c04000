"""Deploying BPMN definitions: parse, check, store a new version; parsed specs cached per version.

A deployment never touches running instances: they keep the version they started on.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask as UserTaskMixin
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import DefinitionInvalid
from .models import ProcessDefinition
from .people import find_group
from .script_checks import script_errors
from .serialization import dump_specs, load_specs
from .service_tasks import is_service_task, make_parser

FORM_PROPERTY = "formJsonSchemaFilename"
GROUP_VAR_PROPERTY = "kefu.group_var"
MAX_BPMN_BYTES = 2_000_000

# A check an outside package (e.g. slas) adds: (element_id, properties) -> error message or None.
PropertyCheck = Callable[[str, dict[str, str]], str | None]


@dataclass(frozen=True)
class ParsedDefinition:
    key: str
    name: str
    spec: BpmnProcessSpec
    subprocess_specs: dict[str, BpmnProcessSpec]


def properties_of(task_spec: Any) -> dict[str, str]:
    """The ``spiffworkflow:properties`` of an element (empty when it has none)."""
    extensions = getattr(task_spec, "extensions", None) or {}
    return dict(extensions.get("properties") or {})


def is_user_task(task_spec: Any) -> bool:
    return isinstance(task_spec, UserTaskMixin)


def parse_bpmn(xml: bytes) -> ParsedDefinition:
    """Parse one BPMN file holding one executable process; errors name the element."""
    if len(xml) > MAX_BPMN_BYTES:
        raise DefinitionInvalid([{"element_id": None, "message": "BPMN file is too large"}])
    try:
        root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise DefinitionInvalid([{"element_id": None, "message": f"XML is not well-formed: {exc}"}]) from exc
    parser = make_parser()
    try:
        parser.add_bpmn_xml(root, filename="upload.bpmn")
        ids = parser.get_process_ids()
        if len(ids) != 1:
            raise DefinitionInvalid([{"element_id": None,
                                      "message": f"expected one executable process, found {len(ids)}"}])
        key = ids[0]
        spec = parser.get_spec(key)
        subprocess_specs = parser.get_subprocess_specs(key)
    except ValidationException as exc:
        raise DefinitionInvalid([{"element_id": getattr(exc, "id", None), "message": str(exc)}]) from exc
    return ParsedDefinition(key=key, name=spec.description or key, spec=spec,
                            subprocess_specs=subprocess_specs)


def check_definition(session: Session, parsed: ParsedDefinition, forms: dict[str, Any],
                     checks: Iterable[PropertyCheck] = (),
                     operations: Mapping[str, Any] | None = None) -> list[dict[str, str | None]]:
    """Errors that make a parsed definition unfit to run here (lanes, forms, properties, service
    tasks' connector operations when ``operations`` — name → connectors.base.Operation — is given)."""
    errors: list[dict[str, str | None]] = []
    for spec in [parsed.spec, *parsed.subprocess_specs.values()]:
        for task_spec in spec.task_specs.values():
            element_id = getattr(task_spec, "bpmn_id", None)
            if element_id is None:
                continue
            props = properties_of(task_spec)
            if operations is not None and is_service_task(task_spec):
                errors.extend(_operation_errors(element_id, task_spec, operations))
            for check in checks:
                message = check(element_id, props)
                if message:
                    errors.append({"element_id": element_id, "message": message})
            if not is_user_task(task_spec):
                continue
            if not task_spec.lane:
                errors.append({"element_id": element_id, "message": "user task is not in a lane"})
            elif find_group(session, task_spec.lane) is None:
                errors.append({"element_id": element_id,
                               "message": f"lane '{task_spec.lane}' names no group"})
            errors.extend(_form_errors(element_id, props, forms))
    return errors


def _operation_errors(element_id: str, task_spec: Any, operations: Mapping[str, Any]) -> list[dict]:
    operation = operations.get(task_spec.operation_name)
    if operation is None:
        return [{"element_id": element_id,
                 "message": f"no installed connector offers the operation '{task_spec.operation_name}'"}]
    missing = [name for name in operation.required if name not in (task_spec.operation_params or {})]
    if missing:
        return [{"element_id": element_id,
                 "message": f"operation '{operation.name}' needs the parameter(s) {', '.join(missing)}"}]
    return []


def _form_errors(element_id: str, props: dict[str, str], forms: dict[str, Any]) -> list[dict]:
    form_name = props.get(FORM_PROPERTY)
    if not form_name:
        return [{"element_id": element_id, "message": "user task has no form (formJsonSchemaFilename)"}]
    schema = forms.get(form_name)
    if schema is None:
        return [{"element_id": element_id, "message": f"form '{form_name}' was not supplied"}]
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [{"element_id": element_id, "message": f"form '{form_name}' is not a valid schema: {exc.message}"}]
    return []


BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
_FLOW_NODES = frozenset((
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "serviceTask", "scriptTask", "manualTask", "sendTask", "receiveTask",
    "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess",
    "exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"))
# Inside an ad-hoc subprocess elements need no flows, so only these containers are checked.
_FLOW_SCOPES = ("process", "subProcess", "transaction")


def flow_errors(xml: bytes) -> list[dict[str, str | None]]:
    """Unreachable elements and dead ends, scope by scope (the parser silently drops elements no
    flow reaches, so this reads the XML): every element must be reachable from a start event,
    and every element but an end event must have an outgoing flow."""
    root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    errors: list[dict[str, str | None]] = []
    for scope in root.iter(*(f"{{{BPMN_NS}}}{tag}" for tag in _FLOW_SCOPES)):
        errors.extend(_scope_flow_errors(scope))
    return errors


def _local(node: Any) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _definition(node: Any, kind: str) -> Any:
    return node.find(f"{{{BPMN_NS}}}{kind}EventDefinition")


def _scope_flow_errors(scope: Any) -> list[dict[str, str | None]]:
    nodes = {n.get("id"): n for n in scope if _local(n) in _FLOW_NODES and n.get("id")}
    # Event subprocesses and compensation handlers are started by events, not by flows.
    exempt = {i for i, n in nodes.items() if n.get("triggeredByEvent") == "true"
              or n.get("isForCompensation") == "true"
              or (_local(n) == "boundaryEvent" and _definition(n, "compensate") is not None)}
    following: dict[str, list[str]] = {i: [] for i in nodes}
    has_outgoing: set[str] = set()
    for flow in scope.iterchildren(f"{{{BPMN_NS}}}sequenceFlow"):
        source, target = flow.get("sourceRef"), flow.get("targetRef")
        if source in following:
            following[source].append(target)
            has_outgoing.add(source)
    catches = {}
    for node_id, node in nodes.items():
        link = _definition(node, "link")
        if link is not None and _local(node) == "intermediateCatchEvent":
            catches[link.get("name")] = node_id
    for node_id, node in nodes.items():
        link = _definition(node, "link")
        if link is not None and _local(node) == "intermediateThrowEvent":
            following[node_id].append(catches.get(link.get("name"), ""))
            has_outgoing.add(node_id)  # a link jumps on without a drawn flow
        if _local(node) == "boundaryEvent" and node.get("attachedToRef") in following:
            following[node.get("attachedToRef")].append(node_id)
    reached: set[str] = set()
    todo = [i for i, n in nodes.items() if _local(n) == "startEvent"]
    while todo:
        node_id = todo.pop()
        if node_id in reached or node_id not in nodes:
            continue
        reached.add(node_id)
        todo.extend(following[node_id])
    errors: list[dict[str, str | None]] = []
    for node_id, node in nodes.items():
        if node_id in exempt:
            continue
        if node_id not in reached:
            errors.append({"element_id": node_id,
                           "message": "unreachable: no path from a start event leads here"})
        elif _local(node) != "endEvent" and node_id not in has_outgoing:
            errors.append({"element_id": node_id,
                           "message": "dead end: not an end event and has no outgoing flow"})
    return errors


def deploy(session: Session, xml: bytes, forms: dict[str, Any], *, now: datetime,
           deployed_by: str | None = None, summary: str = "",
           checks: Iterable[PropertyCheck] = (),
           operations: Mapping[str, Any] | None = None) -> ProcessDefinition:
    """Validate and store a new version of a definition; nothing is stored unless all checks pass.

    ``forms`` maps form file names to schemas; forms the diagram names that are not given are taken
    from the previous version.
    """
    parsed = parse_bpmn(xml)
    previous = latest_version(session, parsed.key)
    if previous is not None:
        forms = {**previous.forms, **forms}
    root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    errors = (flow_errors(xml) + script_errors(root)
              + check_definition(session, parsed, forms, checks, operations))
    if errors:
        raise DefinitionInvalid(errors)
    used = _used_forms(parsed)
    definition = ProcessDefinition(
        key=parsed.key, version=(previous.version + 1) if previous else 1, name=parsed.name,
        bpmn_xml=xml.decode("utf-8"), forms={k: v for k, v in forms.items() if k in used},
        spec_json=dump_specs(parsed.spec, parsed.subprocess_specs),
        sha256=content_hash(xml, forms, parsed),
        deployed_by=deployed_by, deployed_at=now, summary=summary[:500])
    session.add(definition)
    session.flush()
    return definition


def content_hash(xml: bytes, forms: dict[str, Any], parsed: ParsedDefinition) -> str:
    """Identity of a diagram together with the forms it uses (to skip redeploying the same)."""
    used = _used_forms(parsed)
    payload = json.dumps({k: forms[k] for k in sorted(used) if k in forms}, sort_keys=True)
    return hashlib.sha256(xml + payload.encode()).hexdigest()


def _used_forms(parsed: ParsedDefinition) -> set[str]:
    names = set()
    for spec in [parsed.spec, *parsed.subprocess_specs.values()]:
        for task_spec in spec.task_specs.values():
            name = properties_of(task_spec).get(FORM_PROPERTY)
            if name:
                names.add(name)
    return names


def latest_version(session: Session, key: str) -> ProcessDefinition | None:
    return session.scalars(select(ProcessDefinition).where(ProcessDefinition.key == key)
                           .order_by(ProcessDefinition.version.desc()).limit(1)).first()


def latest_versions(session: Session) -> list[ProcessDefinition]:
    """The newest version of every deployed key."""
    newest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("v"))
              .group_by(ProcessDefinition.key).subquery())
    return list(session.scalars(
        select(ProcessDefinition).join(newest, (ProcessDefinition.key == newest.c.key)
                                       & (ProcessDefinition.version == newest.c.v))
        .order_by(ProcessDefinition.key)))


class SpecCache:
    """Parsed specs by definition id: a version never changes, so entries never go stale."""

    def __init__(self) -> None:
        self._specs: dict[int, tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec], dict]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, definition_id: int):
        """``(spec, subprocess_specs, forms)`` of a definition version."""
        entry = self._specs.get(definition_id)
        if entry is None:
            definition = session.get(ProcessDefinition, definition_id)
            if definition is None:
                raise LookupError(definition_id)
            spec, subs = load_specs(definition.spec_json)
            entry = (spec, subs, dict(definition.forms))
            with self._lock:
                self._specs[definition_id] = entry
        return entry


def changed_bundle(session: Session, directory: Path) -> list[tuple[str, bytes, dict[str, Any]]]:
    """(file name, BPMN, forms) of every ``*.bpmn`` in ``directory`` (forms from ``forms/``) not
    deployed before. Any version with the same content counts: an analyst's later version must
    survive a restart, not be overwritten by the bundled file again."""
    forms = {p.name: json.loads(p.read_text("utf-8")) for p in sorted((directory / "forms").glob("*.json"))}
    changed = []
    for path in sorted(directory.glob("*.bpmn")):
        xml = path.read_bytes()
        parsed = parse_bpmn(xml)
        digest = content_hash(xml, forms, parsed)
        if not session.scalar(select(ProcessDefinition.id).where(ProcessDefinition.key == parsed.key,
                                                                 ProcessDefinition.sha256 == digest).limit(1)):
            changed.append((path.name, xml, forms))
    return changed
