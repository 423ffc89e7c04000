"""Validating task data against a task's form (a JSON Schema).

Errors come back per field, each with a stable code and parameters so that the web layer can
word them in the user's language; ``fields`` carries the English wording for API clients.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker, validators

from .errors import ValidationFailed

_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a date-time needs a time zone offset")
    return True


@lru_cache(maxsize=512)
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    """A schema's ``pattern`` with JSON Schema's (ECMA 262) ``$``: the end of the text only. Python's
    ``$`` also matches before a final newline, so a number with a newline after it passed ``^[0-9]{11}$``."""
    out, in_class, escaped = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            out.append(r"\Z")
            continue
        out.append(char)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    if validator.is_type(instance, "string") and not _ecma_pattern(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = validators.extend(Draft202012Validator, {"pattern": _pattern})


ENGLISH = {
    "required": "This field is required.",
    "maxLength": "At most {limit} characters.",
    "minLength": "At least {limit} characters.",
    "choice": "Not one of the allowed values.",
    "type": "Must be of type {expected}.",
    "minimum": "Must be at least {limit}.",
    "maximum": "Must be at most {limit}.",
    "format": "Not a valid date and time with time zone.",
    "unknown": "Unknown field.",
    "invalid": "Invalid value.",
    "pattern": "Not in the expected form. {hint_en}",
}


def validate_form(schema: dict[str, Any], data: Any) -> dict[str, Any]:
    """Check ``data`` against ``schema``; return the data or raise ``ValidationFailed``.

    Without a schema only an object is required. Unknown fields are refused when the schema
    says ``additionalProperties: false``.
    """
    if not isinstance(data, dict):
        raise ValidationFailed("data must be a JSON object", {"data": "must be an object"})
    if not schema:
        return dict(data)
    validator = _Validator(schema, format_checker=_FORMATS)
    codes: dict[str, dict[str, Any]] = {}
    for error in validator.iter_errors(data):
        for field, code, params in _describe(error):
            codes.setdefault(field, {"code": code, "params": params})
    if codes:
        fields = {f: ENGLISH[c["code"]].format(**c["params"]) for f, c in codes.items()}
        exc = ValidationFailed("the form has errors: " + ", ".join(sorted(fields)), fields)
        exc.codes = codes  # type: ignore[attr-defined]
        raise exc
    return dict(data)


def write_only_fields(schema: dict[str, Any] | None) -> frozenset[str]:
    """The top-level fields a form marks ``"writeOnly": true`` (e.g. a service password): the
    engine hands them to the step they are submitted with and keeps them nowhere — not in the
    case's data, not in the audit trail (see docs/bpmn-conventions.md, "Secrets")."""
    properties = (schema or {}).get("properties") or {}
    return frozenset(name for name, node in properties.items()
                     if isinstance(node, dict) and node.get("writeOnly") is True)


def _describe(error: jsonschema.ValidationError) -> list[tuple[str, str, dict[str, Any]]]:
    path = [str(p) for p in error.absolute_path]
    field = path[0] if path else ""
    kind = error.validator
    if kind == "required":
        missing = [p for p in error.validator_value if p not in (error.instance or {})]
        return [(".".join([*path, m]), "required", {}) for m in missing]
    if kind == "additionalProperties":
        allowed = set((error.schema.get("properties") or {}).keys())
        return [(k, "unknown", {}) for k in (error.instance or {}) if k not in allowed]
    if kind in ("maxLength", "minLength", "minimum", "maximum"):
        return [(field, kind, {"limit": error.validator_value})]
    if kind in ("exclusiveMinimum",):
        return [(field, "minimum", {"limit": f"> {error.validator_value}"})]
    if kind in ("exclusiveMaximum",):
        return [(field, "maximum", {"limit": f"< {error.validator_value}"})]
    if kind in ("enum", "const", "oneOf", "anyOf"):
        return [(field, "choice", {})]
    if kind == "type":
        return [(field, "type", {"expected": error.validator_value})]
    if kind == "format":
        return [(field, "format", {})]
    if kind == "pattern":  # the form says what it expects (``x-pattern-hint``, ``x-pattern-hint-en``)
        node = error.schema if isinstance(error.schema, dict) else {}
        return [(field, "pattern", {"hint": str(node.get("x-pattern-hint", "")),
                                    "hint_en": str(node.get("x-pattern-hint-en", ""))})]
    if kind in ("if", "then", "allOf"):
        return []  # the nested errors are reported on their own
    return [(field or "data", "invalid", {})]
