"""The managers' dunning page (欠费催缴): each month's round with its subscribers per stage and the
amounts due and recovered. Rounds are opened by the scheduler or through the API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from engine import access
from processes import dunning

from .extensions import db

bp = Blueprint("dunning", __name__)

STAGE_LABELS = {
    "pending": _l("Waiting to start"),
    "calling": _l("IVR dunning call"),
    "waiting": _l("Waiting for payment"),
    "recalled": _l("Called again"),
    "overdue": _l("Waiting until one month overdue"),
    "one_way": _l("One-way suspended, dunned by hand"),
    "two_way": _l("Two-way suspended, filed as malicious arrears"),
    "paid": _l("Paid"),
    "unrecovered": _l("Not recovered"),
}
STATUS_LABELS = {dunning.OPENING: _l("Starting"), dunning.OPEN: _l("Dunning in progress"), dunning.CLOSED: _l("Finished")}


def yuan(fen: int) -> str:
    """``12345`` fen → ``123.45``."""
    return f"{fen // 100:,}.{fen % 100:02d}"


@bp.get("/dunning")
@login_required
def page() -> Any:
    if not access.allowed(current_user, "run_dunning"):
        abort(403)
    rounds = [dunning.round_summary(db.session, row) for row in dunning.rounds(db.session)]
    return render_template("dunning.html", rounds=rounds, stages=STAGE_LABELS, statuses=STATUS_LABELS, yuan=yuan)
