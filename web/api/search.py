"""REST API: the global search — ``GET /api/v1/search?q=`` over the cases the caller may see
(case number, phone, name, words of the description or request; processes/desk_search.py)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from engine.errors import ValidationFailed
from processes import desk_search

from ..extensions import db
from .guards import api_login_required
from .openapi import INTEGER, STRING, documented, items_of
from .shapes import INSTANCE, LIST_LIMIT, instance_summary

MAX_QUERY = 100


def register(bp: Blueprint) -> None:
    bp.get("/search")(search_cases)


@documented("Search the cases the caller may see (number, phone, name, words), newest first",
            response=items_of(INSTANCE, total=INTEGER),
            query={"q": {**STRING, "x-required": True, "maxLength": MAX_QUERY},
                   "limit": {**INTEGER, "minimum": 1, "maximum": LIST_LIMIT},
                   "offset": {**INTEGER, "minimum": 0}})
@api_login_required
def search_cases():
    q = request.args.get("q", "").strip()
    if not q or len(q) > MAX_QUERY:
        raise ValidationFailed(f"q: give 1 to {MAX_QUERY} characters to search for", {"q": "required"})
    limit, offset = _number("limit", 50, 1, LIST_LIMIT), _number("offset", 0, 0, 10**9)
    total, rows = desk_search.search(db.session, g.api_user, q, limit=limit, offset=offset)
    return jsonify({"items": [instance_summary(i) for i in rows], "total": total})


def _number(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValidationFailed(f"{name}: a whole number from {low} to {high}", {name: "invalid"})
    return value
