"""The customer 360 pages (客户资料查询 / 话费查询): look a subscriber up by number."""

from __future__ import annotations

from flask import Blueprint
from flask_login import login_required

bp = Blueprint("customers", __name__)


@bp.get("/customers")
@login_required
def lookup():
    return "TODO"
