"""The API's OpenAPI 3.1 document (DESIGN.md "OpenAPI"), generated from the app's routes.

Every ``/api/v1`` rule of ``app.url_map`` becomes an operation, whether or not its view says more:
the path parameters are typed from the rule's converters (``int`` → an integer from 1 to the
database's largest id), the security from the view's guard (``guards.py`` marks its wrappers), the
error responses are the contract's, all one ``Error`` schema. What a view takes and answers is
declared next to it with :func:`documented`; a view without it still appears, with a generic
JSON-object body and answer, so that a new route can never be missing.

``GET /api/v1/openapi.json`` serves the document (no sign-in; built once per app, with an ETag).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.routing import (
    AnyConverter,
    BaseConverter,
    FloatConverter,
    IntegerConverter,
    PathConverter,
    Rule,
    UnicodeConverter,
    UUIDConverter,
)

from .guards import GUARD_ATTR

Schema = dict[str, Any]
View = TypeVar("View", bound=Callable[..., Any])

PREFIX = "/api/v1"
JSON = "application/json"
DOC_ATTR = "kefu_openapi"      # where @documented keeps a view's declaration
ERROR_STATUSES = (400, 403, 404, 409, 422)  # any operation (+ 401 behind a guard): the contract's
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECURITY_SCHEME = "bearerAuth"


class Ref(dict[str, Any]):
    """A named schema: written as ``{"$ref": "#/components/schemas/<name>"}``, its body listed once
    under ``components.schemas`` by the generator (so declaring it registers nothing)."""

    def __init__(self, name: str, schema: Schema) -> None:
        super().__init__({"$ref": f"#/components/schemas/{name}"})
        self.name = name
        self.schema = schema


def component(name: str, schema: Schema) -> Schema:
    return Ref(name, schema)


# -- small schema builders the modules share -------------------------------------------------------
def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: Mapping[str, Schema], required: Iterable[str] | None = None, *,
        additional: bool | Schema = True) -> Schema:
    """An object with ``properties``; every one of them required unless ``required`` says which."""
    return {"type": "object", "properties": dict(properties),
            "required": list(properties if required is None else required),
            "additionalProperties": additional}


def items_of(item: Schema, **extra: Schema) -> Schema:
    """The contract's list answer ``{"items": [...]}`` (plus ``extra`` properties)."""
    return obj({"items": {"type": "array", "items": item}, **extra}, ["items"])


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
INSTANT = {"type": "string", "format": "date-time"}
ANY_OBJECT = {"type": "object"}
ID = {"type": "integer", "minimum": 1}

ERROR = component("Error", {
    "type": "object", "required": ["error", "message", "fields"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. validation_failed"},
        "message": {"type": "string", "description": "what went wrong, for people"},
        "fields": {"type": "object", "description": "field → what is wrong with it"},
    },
    "additionalProperties": True,  # some errors add detail, e.g. a deployment's ``errors``
})


@dataclass(frozen=True)
class Doc:
    """What a view declares about itself (see :func:`documented`)."""

    summary: str
    request: Schema | None = None
    request_media: str = JSON
    request_required: bool = True
    response: Schema | None = None
    response_media: tuple[str, ...] = (JSON,)
    status: tuple[int, ...] = (200,)
    statuses: tuple[int, ...] = ()
    query: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, Schema] = field(default_factory=dict)


def documented(summary: str, *, request: Schema | None = None, request_media: str = JSON,
               request_required: bool = True, response: Schema | None = None,
               response_media: Iterable[str] = (JSON,), status: int | Iterable[int] = 200,
               statuses: Iterable[int] = (), query: Mapping[str, Schema] | None = None,
               headers: Mapping[str, Schema] | None = None) -> Callable[[View], View]:
    """Declare what a view takes and answers, for the OpenAPI document.

    ``request``: the body's schema (None: the view reads no body); ``response``: the success
    answer's schema, for each of ``status`` (204: no body); ``statuses``: error statuses beyond
    the contract's 400/401/403/404/409/422 (e.g. 429, 503); ``query``/``headers``: parameters by
    name (query ones optional unless their schema says ``"x-required": True``; headers required)."""
    doc = Doc(summary, request, request_media, request_required, response, tuple(response_media),
              (status,) if isinstance(status, int) else tuple(status), tuple(statuses),
              dict(query or {}), dict(headers or {}))

    def mark(view: View) -> View:
        setattr(view, DOC_ATTR, doc)
        return view

    return mark


# -- the generator ---------------------------------------------------------------------------------
_ARGUMENT = re.compile(r"<(?:[A-Za-z_]\w*(?:\([^)]*\))?:)?([A-Za-z_]\w*)>")


def api_rules(app: Flask) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if r.rule == PREFIX or r.rule.startswith(PREFIX + "/")]


def operations(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, lower-case method) of every ``/api/v1`` route the app answers."""
    return {(openapi_path(r), m.lower()) for r in api_rules(app) for m in _methods(r)}


def openapi_path(rule: Rule) -> str:
    return _ARGUMENT.sub(r"{\1}", rule.rule)


def _methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def converter_schema(converter: BaseConverter) -> Schema:
    """A path parameter's schema from its converter (the values that match the rule)."""
    if isinstance(converter, IntegerConverter):
        schema: Schema = {"type": "integer", "minimum": max(1, converter.min or 1)}
        if converter.max is not None:
            schema["maximum"] = converter.max
        return schema
    if isinstance(converter, FloatConverter):
        return {"type": "number", "minimum": 0}
    if isinstance(converter, UUIDConverter):
        return {"type": "string", "format": "uuid"}
    if isinstance(converter, AnyConverter):
        return {"type": "string", "enum": sorted(converter.items)}
    if isinstance(converter, PathConverter):
        return {"type": "string", "minLength": 1}
    if isinstance(converter, UnicodeConverter):
        # one path segment: no '/', and never '.' or '..', which clients resolve away
        return {"type": "string", "minLength": 1, "pattern": r"^(?!\.\.?$)[^/]+$"}
    return {"type": "string"}


def document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s ``/api/v1`` routes."""
    components: dict[str, Schema] = {}
    paths: dict[str, dict[str, Any]] = {}
    used_ids: set[str] = set()
    for rule in sorted(api_rules(app), key=lambda r: (r.rule, r.endpoint)):
        view = app.view_functions[rule.endpoint]
        methods = _methods(rule)
        for method in methods:
            operation_id = rule.endpoint.rsplit(".", 1)[-1] + ("_" + method.lower() if len(methods) > 1 else "")
            while operation_id in used_ids:
                operation_id += "_"
            used_ids.add(operation_id)
            operation = _operation(rule, method, view, operation_id)
            paths.setdefault(openapi_path(rule), {})[method.lower()] = _plain(operation, components)
    responses = {_response_name(s): {"description": HTTPStatus(s).phrase,
                                     "content": {JSON: {"schema": _plain(ERROR, components)}}}
                 for s in sorted({*ERROR_STATUSES, 401, 413, 429, 503})}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kefu REST API", "version": "1",
                 "description": "Bearer tokens from POST /api/v1/auth/token; JSON in and out; errors are "
                                '{"error", "message", "fields"}. Generated from the code.'},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "responses": responses,
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "http", "scheme": "bearer",
                "description": "a token from POST /api/v1/auth/token (reading also takes the signed-in "
                               "browser session)"}},
        },
    }


def _operation(rule: Rule, method: str, view: Callable[..., Any], operation_id: str) -> dict[str, Any]:
    doc: Doc | None = getattr(view, DOC_ATTR, None)
    guard = getattr(view, GUARD_ATTR, None)
    description = inspect.getdoc(view) or ""
    module = (getattr(view, "__module__", "") or "").rsplit(".", 1)[-1]
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": doc.summary if doc else description.split("\n\n")[0] or operation_id.replace("_", " "),
        "tags": [module] if module else [],
        "security": [{SECURITY_SCHEME: []}] if guard else [],
    }
    if description:
        operation["description"] = description
    if doc is None:
        operation["x-kefu-undeclared"] = True  # generic body and answer: no @documented yet
    parameters = [{"name": name, "in": "path", "required": True, "schema": converter_schema(conv)}
                  for name, conv in rule._converters.items()]
    if doc is not None:
        for name, schema in doc.query.items():
            required = bool(schema.get("x-required"))
            schema = {k: v for k, v in schema.items() if k != "x-required"}
            parameters.append({"name": name, "in": "query", "required": required, "schema": schema})
        parameters += [{"name": name, "in": "header", "required": True, "schema": schema}
                       for name, schema in doc.headers.items()]
    if parameters:
        operation["parameters"] = parameters
    if method in BODY_METHODS:
        if doc is None:
            operation["requestBody"] = {"required": False, "content": {JSON: {"schema": ANY_OBJECT}}}
        elif doc.request is not None:
            operation["requestBody"] = {"required": doc.request_required,
                                        "content": {doc.request_media: {"schema": doc.request}}}
    responses: dict[str, Any] = {}
    for status in doc.status if doc else (200,):
        answer: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if status != 204:
            schema = (doc.response if doc else None) or ANY_OBJECT
            media = doc.response_media if doc else (JSON,)
            answer["content"] = {m: {"schema": schema if m == JSON else STRING} for m in media}
        responses[str(status)] = answer
    errors = {*ERROR_STATUSES, *(doc.statuses if doc else ())}
    if "requestBody" in operation:
        errors.add(413)  # beyond the app's MAX_CONTENT_LENGTH
    if guard:
        errors.add(401)
    for status in sorted(errors):
        responses[str(status)] = {"$ref": f"#/components/responses/{_response_name(status)}"}
    operation["responses"] = responses
    return operation


def _response_name(status: int) -> str:
    return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")


def _plain(value: Any, components: dict[str, Schema]) -> Any:
    """``value`` as plain JSON data, each named schema replaced by its ``$ref`` and listed in
    ``components`` (a name given to two different schemas is a programming error)."""
    if isinstance(value, Ref):
        if value.name not in components:
            components[value.name] = {}  # placeholder: a schema may refer to itself
            components[value.name] = _plain(value.schema, components)
        elif components[value.name] and components[value.name] != _plain(value.schema, {}):
            raise ValueError(f"two schemas are named {value.name}")
        return dict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, components) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, components) for v in value]
    return value


# -- serving it -------------------------------------------------------------------------------------
def register(bp: Blueprint) -> None:
    bp.get("/openapi.json")(openapi_json)


@documented("This document: the OpenAPI 3.1 description of every /api/v1 route",
            response={"type": "object", "required": ["openapi", "paths"]})
def openapi_json() -> Response:
    """Public and cacheable: built once per app (the routes do not change once it serves)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cached: tuple[bytes, str] | None = app.extensions.get("kefu_openapi")
    if cached is None:
        body = json.dumps(document(app), ensure_ascii=False, indent=1).encode("utf-8")
        cached = (body, hashlib.sha256(body).hexdigest()[:32])
        app.extensions["kefu_openapi"] = cached
    response = Response(cached[0], mimetype=JSON)
    response.set_etag(cached[1])
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response.make_conditional(request)
