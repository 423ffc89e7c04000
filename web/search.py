"""The global search (header box → ``/search?q=``) over the cases the user may see, and the
users' saved views of the inbox and the case list (processes/saved_views.py)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from engine.clock import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.models import OPEN, HumanTask, ProcessInstance
from engine.people import User
from processes import desk_search, saved_views

from .extensions import db
from .inbox_bulk import back_url, case_facts
from .request_limits import db_int

bp = Blueprint("search", __name__)
PAGE_SIZE = 30
MAX_QUERY = 100


def open_steps(instances: list[ProcessInstance]) -> dict[int, list[tuple[HumanTask, User | None]]]:
    """Each case's open steps with who holds them (two queries for the whole page)."""
    ids = [i.id for i in instances]
    if not ids:
        return {}
    tasks = list(db.session.scalars(select(HumanTask).where(HumanTask.instance_id.in_(ids),
                                                            HumanTask.status == OPEN).order_by(HumanTask.id)))
    holders = {u.id: u for u in db.session.scalars(
        select(User).where(User.id.in_({t.assignee_id for t in tasks if t.assignee_id})))}
    steps: dict[int, list[tuple[HumanTask, User | None]]] = {}
    for task in tasks:
        steps.setdefault(task.instance_id, []).append((task, holders.get(task.assignee_id or 0)))
    return steps


@bp.get("/search")
@login_required
def results():
    q = request.args.get("q", "").strip()[:MAX_QUERY]
    page = max(1, request.args.get("page", 1, type=db_int))
    total, rows = (desk_search.search(db.session, current_user, q, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
                   if q else (0, []))
    if total == 1 and page == 1 and rows[0].reference and rows[0].reference.upper() == q.upper():
        return redirect(url_for("cases.show", instance_id=rows[0].id))  # a case number: straight there
    return render_template("search.html", q=q, rows=rows, total=total, page=page,
                           pages=max(1, -(-total // PAGE_SIZE)), steps=open_steps(rows),
                           facts=case_facts([r.id for r in rows]))


@bp.post("/views")
@login_required
def save_view():
    page = request.form.get("page", "")
    back = back_url(request.form.get("back"), url_for("inbox.tasks"))
    try:
        view = saved_views.save(db.session, current_user.id, page, request.form.get("name", ""),
                                request.form.get("query", ""), utcnow())
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        reasons = {"too_many": _("You have many saved views already; delete one first."),
                   "maxLength": _("This filter set is too long to save.")}
        code = next(iter(exc.fields.values()), "")
        flash(reasons.get(code, _("Give the view a name of at most 40 characters.")), "error")
        return redirect(back)
    flash(_("View saved: %(name)s.", name=view.name), "success")
    return redirect(back)


@bp.post("/views/<int:view_id>/delete")
@login_required
def delete_view(view_id: int):
    back = back_url(request.form.get("back"), url_for("inbox.tasks"))
    try:
        view = saved_views.delete(db.session, current_user.id, view_id)
        db.session.commit()
    except NotFound:
        db.session.rollback()
        flash(_("This view no longer exists."), "error")
        return redirect(back)
    flash(_("View deleted: %(name)s.", name=view.name), "success")
    return redirect(back)
