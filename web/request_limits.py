"""One layer between the network and the views for what requests may carry: JSON bodies that
parse into plain, bounded, encodable data, and ids that fit the database's integers (32-bit INTEGER on PostgreSQL).
Anything else is refused as bad input (a 4xx), never met deeper down as a 500."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.routing import IntegerConverter

MAX_DEPTH = 32          # nesting of a JSON body: forms are flat; 32 leaves room, not 5,000
MAX_ID = 2**31 - 1      # the largest id the database stores (INTEGER columns: 32 bits on PostgreSQL)


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON with a refusal (``ValueError``, so ``get_json`` treats it as malformed JSON) of
    bodies nested beyond :data:`MAX_DEPTH` or holding text that is not valid Unicode (a lone
    surrogate such as ``\\ud800`` parses, but can be neither stored nor shown)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None
        _check(value)
        return value


def _check(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise ValueError(f"the JSON is nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("the JSON holds a NUL character, which no text field may contain")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the JSON holds text that is not valid Unicode (a lone surrogate)") from None


class IdConverter(IntegerConverter):
    """``<int:…>`` in every route: a number beyond what the database stores matches no route (404)
    instead of overflowing the database driver."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def _refuse_nul() -> Any:
    """Query strings and forms: a NUL character is never valid text (PostgreSQL refuses it)."""
    values = [*request.args.values(), *(request.form.values() if request.mimetype in _FORMS else ())]
    if any("\x00" in value for value in values):
        from .errors import error_response

        return error_response(400, "bad_request", "the request holds a NUL character")
    return None


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def install(app: Flask) -> None:
    """Before any route is added."""
    app.before_request(_refuse_nul)
    app.json = BoundedJSONProvider(app)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Chinese stays readable
    app.url_map.converters["int"] = IdConverter


def db_int(text: str) -> int:
    """``type=`` for query and form numbers: an integer the database can store (else ValueError,
    which makes ``request.args.get`` fall back to its default)."""
    value = int(text)
    if not -MAX_ID <= value <= MAX_ID:
        raise ValueError("out of range")
    return value
