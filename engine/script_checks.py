"""Deployment-time check of every expression and script a diagram carries.

Reads the BPMN XML (what the analyst wrote, element by element) rather than the parsed spec, so
that every place SpiffWorkflow evaluates is covered by one table: scripts, pre/post scripts,
conditions, timers, loop cardinalities, message payloads and correlations, service-task
parameters and ``kefu.priority``. Each is compiled for the sandbox (:mod:`engine.scripting`);
what cannot pass is refused with the id of the element that holds it.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from .scripting import check_script

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"

# (namespace, tag) of elements whose text is evaluated, and the mode it is compiled in.
_TEXT_ELEMENTS: dict[tuple[str, str], str] = {
    (BPMN, "script"): "exec",
    (SPIFF, "preScript"): "exec",
    (SPIFF, "postScript"): "exec",
    (BPMN, "conditionExpression"): "eval",
    (BPMN, "condition"): "eval",
    (BPMN, "timeDuration"): "eval",
    (BPMN, "timeDate"): "eval",
    (BPMN, "timeCycle"): "eval",
    (BPMN, "loopCardinality"): "eval",
    (BPMN, "completionCondition"): "eval",
    (BPMN, "formalExpression"): "eval",
    (SPIFF, "messagePayload"): "eval",
}
# Properties whose value is an expression (read by Kefu itself).
_EXPRESSION_PROPERTIES = frozenset(("kefu.priority",))


def script_errors(root: Any) -> list[dict[str, str | None]]:
    """``{element_id, message}`` for every expression or script of the diagram the sandbox refuses."""
    errors: list[dict[str, str | None]] = []
    for node in root.iter(etree.Element):
        qname = etree.QName(node)
        mode = _TEXT_ELEMENTS.get((qname.namespace or "", qname.localname))
        source = (node.text or "").strip() if mode else None
        if qname.namespace == SPIFF and qname.localname == "parameter" or (qname.namespace == SPIFF and qname.localname == "property"
              and node.get("name") in _EXPRESSION_PROPERTIES):
            mode, source = "eval", (node.get("value") or "").strip()
        if not mode or not source:
            continue
        problem = check_script(source, "eval" if mode == "eval" else "exec")
        if problem:
            errors.append({"element_id": _owner_id(node), "message": f"script refused: {problem}"})
    return errors


def _owner_id(node: Any) -> str | None:
    """The id of the element around ``node`` the analyst sees: the task, flow or event (not its
    event definition, loop characteristics or Spiff parameter, which carry ids of their own)."""
    while node is not None:
        qname = etree.QName(node)
        if (node.get("id") and qname.namespace != SPIFF
                and not qname.localname.endswith(("EventDefinition", "LoopCharacteristics"))):
            return node.get("id")
        node = node.getparent()
    return None
