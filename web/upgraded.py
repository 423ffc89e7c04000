"""Upgraded complaints (越级/升级投诉) on the desk: flagging one from its case page (leaders,
managers) and the managers' separate list of the upgraded complaints they supervise (督办). The
rule lives in slas/upgrades.py."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from engine.access import allowed
from engine.clock import utcnow
from engine.errors import Conflict, ValidationFailed
from engine.models import RUNNING, SUSPENDED, HumanTask, ProcessInstance
from engine.people import User
from slas import upgrades
from slas.models import UpgradedCase

from .access import permission_required
from .extensions import db
from .views_helpers import engine

bp = Blueprint("upgraded", __name__)

SOURCES = {"hotline_10015": _l("10015 complaints hotline"), "ministry": _l("The ministry (MIIT)"),
           "national_center": _l("The national centre")}


@bp.app_template_global()
def upgrade_panel(instance: ProcessInstance) -> dict[str, Any] | None:
    """For the case page: the complaint's upgrade (if any) and whether this user may flag it."""
    if instance.process_key != upgrades.PROCESS_KEY or not current_user.is_authenticated:
        return None
    row = db.session.get(UpgradedCase, instance.id)
    may_flag = (row is None and instance.status in (RUNNING, SUSPENDED) and allowed(current_user, "flag_upgraded"))
    if row is None and not may_flag:
        return None
    supervisor = db.session.get(User, row.supervisor_id) if row is not None and row.supervisor_id else None
    return {"row": row, "source": str(SOURCES.get(row.source, "")) if row else "", "may_flag": may_flag,
            "supervisor": supervisor.display_name if supervisor else "", "sources": list(SOURCES.items())}


@bp.post("/cases/<int:instance_id>/upgrade")
@permission_required("flag_upgraded")
def flag(instance_id: int):
    back = url_for("cases.show", instance_id=instance_id)
    instance = engine().get_instance(db.session, instance_id, current_user)
    try:
        upgrades.flag(db.session, instance, request.form.get("source", ""), actor=current_user, now=utcnow(),
                      note=request.form.get("note", ""))
        db.session.commit()
    except ValidationFailed:
        db.session.rollback()
        flash(_("Not upgraded: choose where the complaint came from."), "error")
        return redirect(back)
    except Conflict:
        db.session.rollback()
        flash(_("Not upgraded: the complaint is closed or already upgraded."), "error")
        return redirect(back)
    flash(_("The complaint is upgraded: stricter time limits apply to its next steps, and a manager supervises it."),
          "success")
    return redirect(back)


@bp.get("/upgraded")
@permission_required("supervise_upgraded")
def page():
    """The managers' list of upgraded complaints still open (督办), with their open steps."""
    rows = upgrades.upgraded_cases(db.session, open_only=request.args.get("all") != "1")
    ids = [instance.id for _row, instance in rows]
    steps: dict[int, list[HumanTask]] = {}
    for task in db.session.scalars(select(HumanTask).where(HumanTask.instance_id.in_(ids or [-1]),
                                                           HumanTask.status == "open")):
        steps.setdefault(task.instance_id, []).append(task)
    people = {u.id: u.display_name for u in db.session.scalars(select(User).where(User.id.in_(
        {r.supervisor_id for r, _i in rows if r.supervisor_id} | {r.flagged_by for r, _i in rows if r.flagged_by})))}
    return render_template("upgraded.html", rows=rows, steps=steps, people=people, sources=SOURCES,
                           show_all=request.args.get("all") == "1", now=utcnow())
