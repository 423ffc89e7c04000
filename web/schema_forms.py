"""Render a task's JSON Schema as HTML form fields, and turn posted form values into typed data.

The schema is the single description of a form: labels (``title`` / ``x-title-en``), choices
(``oneOf`` of ``const``), widgets (``x-widget``) and limits all come from it. A choice may be
offered only when it applies: ``"x-choice-when": {"transfer_home": "home_province"}`` on a field
shows the choice ``transfer_home`` only when the page's context (the case's data and what the
product adds to it, ``app.extensions["kefu_form_context"]``) has a non-empty ``home_province``.
It only hides the choice: whatever enforces it runs when the step is completed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Asia/Shanghai")


@dataclass
class Field:
    name: str
    label: str
    kind: str  # text | textarea | select | checkbox | number | datetime
    required: bool
    value: Any = None
    choices: list[tuple[str, str]] = field(default_factory=list)
    description: str = ""
    max_length: int | None = None
    error: str | None = None
    # (choice, what to ask the customer when it is chosen): ``x-prompts`` (陈述要素), shown by kefu.js
    prompts: list[tuple[str, str]] = field(default_factory=list)
    # required only in some cases (the schema's ``allOf`` of ``if``/``then``/``else``): the star
    # follows the controlling field in the browser (kefu.js); ``required_now`` is its first state
    conditions: list[Condition] = field(default_factory=list)
    required_now: bool = False


@dataclass(frozen=True)
class Condition:
    """``field`` required when ``control``'s value is one of ``values`` (or, ``negate``, is not)."""
    control: str
    values: tuple[str, ...]
    negate: bool = False

    def holds(self, values: dict[str, Any]) -> bool:
        return (_as_text(values.get(self.control)) in self.values) != self.negate

    @property
    def as_json(self) -> list[Any]:
        """What kefu.js reads to follow the control: ``[control, values, negate]``."""
        return [self.control, list(self.values), self.negate]


def label_of(node: dict[str, Any], locale: str, fallback: str = "") -> str:
    if locale.startswith("en") and node.get("x-title-en"):
        return str(node["x-title-en"])
    return str(node.get("title") or fallback)


def choices_of(node: dict[str, Any], locale: str) -> list[tuple[str, str]]:
    options = node.get("oneOf") or node.get("anyOf") or []
    if options and all("const" in o for o in options):
        return [(str(o["const"]), label_of(o, locale, str(o["const"]))) for o in options]
    if "enum" in node:
        return [(str(v), str(v)) for v in node["enum"]]
    return []


def offered(node: dict[str, Any], choices: list[tuple[str, str]],
            context: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The choices of a field that apply in ``context`` (see ``x-choice-when``)."""
    when = node.get("x-choice-when")
    if not isinstance(when, dict) or not when:
        return choices
    context = context or {}
    return [(value, label) for value, label in choices if value not in when or context.get(str(when[value]))]


def fields_of(schema: dict[str, Any], values: dict[str, Any], errors: dict[str, str],
              locale: str, context: dict[str, Any] | None = None) -> list[Field]:
    """The form's fields in schema order, with current values and errors; ``context`` decides
    which conditional choices are offered (``x-choice-when``)."""
    required = set(schema.get("required", []))
    conditions = conditions_of(schema)
    out = []
    for name, node in (schema.get("properties") or {}).items():
        kind = _kind(node)
        value = values.get(name)
        if kind == "secret":
            value = None  # a secret is never sent back to the browser, not even after an error
        if kind == "datetime" and isinstance(value, str) and value:
            value = _to_local_input(value)
        description = node.get("x-description-en") if locale.startswith("en") else None
        choices = offered(node, choices_of(node, locale), context)
        out.append(Field(name=name, label=label_of(node, locale, name), kind=kind,
                         required=name in required, value=value, choices=choices,
                         description=str(description or node.get("description") or ""),
                         max_length=node.get("maxLength"), error=errors.get(name),
                         prompts=prompts_of(node, choices, locale), conditions=conditions.get(name, []),
                         required_now=any(c.holds(values) for c in conditions.get(name, []))))
    return out


def conditions_of(schema: dict[str, Any]) -> dict[str, list[Condition]]:
    """Per field, when it is required: read from ``allOf`` entries whose ``if`` tests one field's
    ``const``/``enum`` and whose ``then``/``else`` list ``required`` fields — the same rule the
    engine validates, so the star and the check cannot disagree."""
    found: dict[str, list[Condition]] = {}
    for rule in schema.get("allOf") or []:
        test = (rule.get("if") or {}).get("properties") if isinstance(rule, dict) else None
        if not isinstance(test, dict) or len(test) != 1:
            continue
        (control, node), = test.items()
        if not isinstance(node, dict):
            continue
        if "const" in node:
            values = (_as_text(node["const"]),)
        elif isinstance(node.get("enum"), list):
            values = tuple(_as_text(v) for v in node["enum"])
        else:
            continue
        for branch, negate in (("then", False), ("else", True)):
            for name in (rule.get(branch) or {}).get("required", []) if isinstance(rule.get(branch), dict) else []:
                found.setdefault(name, []).append(Condition(control, values, negate))
    return found


def _as_text(value: Any) -> str:
    """A value as the browser's form has it (a checkbox: "true" / "false")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def prompts_of(node: dict[str, Any], choices: list[tuple[str, str]], locale: str) -> list[tuple[str, str]]:
    """Per choice, the facts the agent must ask (``"x-prompts": {"billing": "号码、账期…"}``;
    ``x-prompts-en`` in English), for the choices offered."""
    prompts = node.get("x-prompts-en") if locale.startswith("en") and node.get("x-prompts-en") else node.get("x-prompts")
    if not isinstance(prompts, dict):
        return []
    return [(value, str(prompts[value])) for value, _label in choices if prompts.get(value)]


def _kind(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if node.get("writeOnly"):
        return "secret"
    if node.get("oneOf") or node.get("enum"):
        return "select"
    if kind == "boolean":
        return "checkbox"
    if kind in ("number", "integer"):
        return "number"
    if node.get("format") == "date-time":
        return "datetime"
    if node.get("x-widget") == "textarea":
        return "textarea"
    return "text"


def coerce(schema: dict[str, Any], form: Any) -> dict[str, Any]:
    """Typed data from posted form values; values that do not parse are kept as given so that
    validation reports them on their field."""
    data: dict[str, Any] = {}
    for name, node in (schema.get("properties") or {}).items():
        kind = node.get("type")
        if kind == "boolean":
            data[name] = form.get(name) in ("on", "true", "1", "yes")
            continue
        raw = form.get(name)
        if raw is None or str(raw).strip() == "":
            continue
        raw = str(raw).strip() if kind != "string" or node.get("x-widget") != "textarea" else str(raw)
        if kind == "integer":
            data[name] = _number(raw, int)
        elif kind == "number":
            data[name] = _number(raw, float)
        elif node.get("format") == "date-time":
            data[name] = _from_local_input(raw)
        else:
            data[name] = raw
    return data


def _number(raw: str, cast: type) -> Any:
    try:
        return cast(raw)
    except ValueError:
        return raw


def _from_local_input(raw: str) -> str:
    """``2026-11-23T10:00`` (a browser's local date-time) → ISO-8601 with the +08:00 offset."""
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=LOCAL)
    return parsed.isoformat()


def _to_local_input(value: str) -> str:
    """ISO-8601 → the browser's ``2026-11-23T10:00`` in Beijing time; a value without an offset
    (what the browser posted, shown again after a validation error) already is Beijing time."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=LOCAL)
    return parsed.astimezone(LOCAL).strftime("%Y-%m-%dT%H:%M")


def field_catalog(forms: dict[str, dict[str, Any]], locale: str) -> dict[str, tuple[str, dict[str, str]]]:
    """``field -> (label, {value: label})`` over all forms of a definition, for showing data."""
    catalog: dict[str, tuple[str, dict[str, str]]] = {}
    for schema in forms.values():
        for name, node in (schema.get("properties") or {}).items():
            catalog.setdefault(name, (label_of(node, locale, name), dict(choices_of(node, locale))))
    return catalog
