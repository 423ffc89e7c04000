"""Where a reply template applies, in words: the processes that have templates and, for each, the kinds
of case its templates are keyed by (a complaint's category, an acceptance's request type, a
callback's kind), named as the process's deployed forms name them."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from engine import definitions
from processes import reply_templates

from .extensions import db
from .schema_forms import choices_of
from .views_helpers import engine, locale

PROCESS_LABELS = {"complaint": _l("Complaint"), "roaming_transfer": _l("Roaming complaint transfer"),
                  "business_acceptance": _l("Business acceptance"),
                  "outbound_callback": _l("Callback / return visit"), "dunning": _l("Dunning")}
CATEGORY_LABELS = {"": _l("Every category"), "billing": _l("Billing"), "network": _l("Network"),
                   "service": _l("Service"), "sales": _l("Sales"), "suggestion": _l("Suggestion"),
                   "other": _l("Other"), "installation": _l("Installation, moves and repair staff"),
                   "value_added": _l("Value-added services"), "appeal": _l("Escalated complaint / appeal")}
EVERY_KIND = _l("Every type")


def _choices(process: str, variable: str, language: str) -> list[tuple[str, str]]:
    """The choices of the first form of the process's newest version that asks for ``variable``."""
    definition = definitions.latest_version(db.session, process)
    if definition is None:
        return []
    forms: dict[str, dict[str, Any]] = engine().specs.get(db.session, definition.id)[2]
    for name in sorted(forms):
        node = ((forms[name] or {}).get("properties") or {}).get(variable)
        if isinstance(node, dict) and choices_of(node, language):
            return choices_of(node, language)
    return []


def kinds(process: str) -> dict[str, str]:
    """``{code: label}`` of the kinds a template of ``process`` may be kept for; "" = every kind."""
    variable = reply_templates.PROCESSES.get(process)
    if variable is None:
        return {"": str(EVERY_KIND)}
    choices = _choices(process, variable, locale())
    if variable == "category":  # the complaint categories' own short names
        codes = [code for code, _label in choices] or list(reply_templates.CATEGORIES)
        return {code: str(CATEGORY_LABELS.get(code, code)) for code in ["", *codes]}
    return {"": str(EVERY_KIND), **dict(choices)}


def scopes() -> list[tuple[str, str, dict[str, str]]]:
    """``(process, its label, its kinds)`` for every process that has templates."""
    return [(process, str(PROCESS_LABELS[process]), kinds(process)) for process in reply_templates.PROCESSES]


def kind_label(process: str, kind: str) -> str:
    """A template's kind in words (the code itself only for a kind no form offers any more)."""
    if reply_templates.PROCESSES.get(process) == "category":
        return str(CATEGORY_LABELS.get(kind or "", kind))
    if not kind:
        return str(EVERY_KIND)
    return kinds(process).get(kind, kind)
