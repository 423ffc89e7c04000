"""The connector incidents page in words: which call, in which step, what happened and what the
administrator can do — never the operation's code, the element id or the worker's English note
(that stays available under 技术细节 for whoever maintains the connection)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine import outbox
from engine.models import ProcessInstance

from . import views_helpers
from .case_text import operation_title, reason_in_words
from .extensions import db

KINDS = {
    outbox.OUTCOME_UNKNOWN: _l("Outcome unknown"),
    outbox.REFUSED: _l("Refused by the peer"),
    outbox.UNDELIVERED: _l("Result not delivered"),
    outbox.UNRECORDED: _l("Outcome not stored"),
    outbox.EXHAUSTED: _l("Retries used up"),
}


@dataclass(frozen=True)
class IncidentWords:
    what: str       # the call, e.g. 发送短信
    step: str       # the step's name on the diagram
    kind: str       # 结果不明 …
    happened: str   # what happened, in a sentence
    advice: str     # what to do


def incident_words(incident: Any, instance: ProcessInstance | None, askable: bool) -> IncidentWords:
    """One incident as the administrator reads it."""
    if incident.kind == outbox.OUTCOME_UNKNOWN:
        happened = _("Kefu stopped while handing this call to the other system: it may or may not "
                     "have happened.")
        advice = (_("Ask the other system first: if it has the call, confirm it; if not, retry.") if askable
                  else _("The other system cannot be asked afterwards. Find out first whether it happened "
                         "(for a phone call: ask the agent or the customer); retry only if it did not — "
                         "a retry calls again."))
    else:
        happened = reason_in_words(incident.message or "") or _("the other system reported an error")
        advice = _("Retry once the cause is mended; the case continues when the call succeeds.")
    return IncidentWords(operation_title(incident.operation), step_name(instance, incident.element_id),
                         str(KINDS.get(incident.kind, incident.kind)), happened, advice)


def step_name(instance: ProcessInstance | None, element_id: str | None) -> str:
    """The name the diagram gives ``element_id`` (the element id itself only when it has none)."""
    if instance is None or not element_id:
        return "—"
    try:
        spec, subprocesses, _forms = views_helpers.engine().specs.get(db.session, instance.definition_id)
    except Exception:  # noqa: BLE001 - a definition that no longer parses must not hide the incident
        return element_id
    for process in (spec, *subprocesses.values()):
        for task_spec in process.task_specs.values():
            if getattr(task_spec, "bpmn_id", None) == element_id:
                return task_spec.bpmn_name or element_id
    return element_id
