"""A step's outcome in words: refusals and warnings the process wrote into the case data, declared
by the form of the step that deals with them and shown as an amber/red notice on that task and as
the flash after the step before it was completed.

A form declares them with ``x-notices``, a list of::

    {"message": "standing.message_zh",        # dotted path to the text in the case data
     "when": {"standing.can_accept": false},  # optional: every path must hold this value (or one of a list)
     "severity": "error",                     # warning (amber, the default) | error (red) | info
     "title": "不能受理", "x-title-en": "Cannot be accepted"}   # optional headline

A notice shows only when its message has a value, so a step opened for the first time shows
nothing and a retry after a refusal shows why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _

SEVERITIES = ("warning", "error", "info")
_MISSING = object()


@dataclass(frozen=True)
class Notice:
    severity: str  # warning | error | info (the flash and notice classes of kefu.css)
    title: str
    message: str


def value_at(data: dict[str, Any], path: str) -> Any:
    """``standing.reasons_zh`` → ``data["standing"]["reasons_zh"]``; ``_MISSING`` when absent."""
    node: Any = data
    for part in str(path).split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def as_text(value: Any) -> str:
    """A message's value as a sentence: lists joined the Chinese way, nothing for dicts."""
    if value is _MISSING or value is None or isinstance(value, dict | bool):
        return ""
    if isinstance(value, list | tuple):
        return "；".join(t for t in (as_text(v) for v in value) if t)
    return str(value).strip()


def _holds(when: Any, data: dict[str, Any]) -> bool:
    if not isinstance(when, dict):
        return True
    for path, expected in when.items():
        value = value_at(data, path)
        allowed = expected if isinstance(expected, list) else [expected]
        if value is _MISSING or not any(value == a and type(value) is type(a) for a in allowed):
            return False
    return True


def notices_of(schema: dict[str, Any] | None, data: dict[str, Any], locale: str) -> list[Notice]:
    """The notices a task's form declares that apply to the case data now."""
    found = []
    for entry in (schema or {}).get("x-notices") or []:
        if not isinstance(entry, dict) or not _holds(entry.get("when"), data):
            continue
        path = entry.get("message-en") if locale.startswith("en") and entry.get("message-en") else entry.get("message")
        message = as_text(value_at(data, str(path or "")))
        if not message:
            continue
        severity = entry.get("severity") if entry.get("severity") in SEVERITIES else "warning"
        title = entry.get("x-title-en") if locale.startswith("en") and entry.get("x-title-en") else entry.get("title")
        found.append(Notice(severity, str(title or _default_title(severity)), message))
    return found


def _default_title(severity: str) -> str:
    return {"error": _("Cannot go on"), "info": _("For your information")}.get(severity, _("Attention"))
