"""The agents' web inbox: my tasks, my groups' tasks, and the page where a task is worked."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from engine import definitions
from engine.access import allowed
from engine.assignment import auto_assigned_to
from engine.clock import utcnow
from engine.errors import Conflict, PeerUnavailable, ValidationFailed
from engine.models import HumanTask, inbox_query, instance_events
from engine.people import Group, User
from processes import urging

from . import desk_filters
from . import inbox_bulk as bulk
from .errors import localized_fields, page_message
from .extensions import db
from .request_limits import db_int
from .schema_forms import coerce, field_catalog, fields_of
from .step_notices import Notice, notices_of
from .views_helpers import engine, locale

bp = Blueprint("inbox", __name__)
PAGE_SIZE = 50


@bp.get("/")
@login_required
def home():
    if allowed(current_user, "see_every_task") and not current_user.groups:
        return redirect(url_for("escalations.page"))
    return redirect(url_for("inbox.tasks"))


@bp.get("/inbox")
@login_required
def tasks():
    view = _inbox_rows_view()
    led = bulk.led_groups(current_user)
    return render_template("inbox.html", **view, led_members=bulk.members_of(led),
                           choices=bulk.inbox_choices(current_user), views=bulk.my_views("inbox"),
                           processes=definitions.latest_versions(db.session))


@bp.get("/inbox/rows")
@login_required
def rows():
    """The inbox's rows alone, for the page's self-refresh (web/static/inbox.js)."""
    view = _inbox_rows_view()
    response = current_app.make_response(render_template("_inbox_rows.html", **view))
    response.headers["X-Kefu-Total"] = str(view["total"])
    response.headers["Cache-Control"] = "no-store"
    return response


def _inbox_rows_view() -> dict[str, Any]:
    """One page of the steps the query string asks for (scope, filters, sort) and their facts."""
    scope = request.args.get("scope", "mine")
    scope = scope if scope in ("mine", "group") else "mine"
    page = max(1, request.args.get("page", 1, type=db_int))
    now = utcnow()
    filters = desk_filters.parse(request.args)
    query = desk_filters.filter_tasks(inbox_query(current_user.id, current_user.group_ids, scope), filters, now)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = list(db.session.scalars(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)))
    return {"tasks": rows, "scope": scope, "page": page, "total": total, "now": now, "filters": filters,
            "pages": max(1, -(-total // PAGE_SIZE)), "names": _people_and_groups(rows),
            "urges": urging.urge_counts(db.session, [t.id for t in rows]),
            "auto": auto_assigned_to(db.session, [t.id for t in rows]),  # 系统分配 (engine/assignment.py)
            "facts": bulk.case_facts([t.instance_id for t in rows]),
            "query": request.query_string.decode("utf-8", "replace"), "countdown": desk_filters.countdown}


@bp.post("/inbox/bulk")
@login_required
def bulk_action():
    """Claim or assign the ticked steps; each refusal is shown with its case and reason."""
    action = request.form.get("action", "claim")
    ids = [i for i in (request.form.getlist("task_id", type=db_int)) if i > 0]
    back = bulk.back_url(request.form.get("back"), url_for("inbox.tasks", scope="group"))
    if action not in ("claim", "assign") or not ids:
        flash(_("Tick the steps first."), "error")
        return redirect(back)
    done, refused = bulk.run(action, ids, request.form.get("assignee_id", type=db_int))
    if done:
        flash(_("%(n)s steps claimed.", n=done) if action == "claim" else _("%(n)s steps assigned.", n=done),
              "success")
    for row in refused:
        flash(_("%(case)s %(step)s: %(reason)s", case=row.reference, step=row.title, reason=row.reason)
              if row.reference else row.reason, "error")
    return redirect(back)


def _people_and_groups(rows: list[HumanTask]) -> dict[str, dict[int, str]]:
    user_ids = {t.assignee_id for t in rows if t.assignee_id}
    group_ids = {t.group_id for t in rows if t.group_id}
    users = {u.id: u.display_name for u in db.session.scalars(select(User).where(User.id.in_(user_ids)))}
    en = locale().startswith("en")
    groups = {g.id: (g.name_en if en and g.name_en else g.name)
              for g in db.session.scalars(select(Group).where(Group.id.in_(group_ids)))}
    return {"users": users, "groups": groups}


@bp.get("/tasks/<int:task_id>")
@login_required
def task(task_id: int, errors: dict[str, str] | None = None, values: dict | None = None):
    eng = engine()
    task = eng.get_task(db.session, task_id, current_user)
    instance = task.instance
    schema = eng.form_of(db.session, task)
    data = eng.task_data(db.session, task) if task.status == "open" else {}
    forms = eng.specs.get(db.session, instance.definition_id)[2]
    members = []
    group = db.session.get(Group, task.group_id) if task.group_id else None
    if group is not None and (current_user.id in group.leader_ids or allowed(current_user, "administer")):
        members = sorted(group.members, key=lambda u: u.username)
    return render_template(
        "task.html", task=task, instance=instance, schema=schema, group=group, members=members,
        fields=fields_of(schema, values if values is not None else data, errors or {}, locale(),
                         context=form_context(instance, data)),
        case_data=data, catalog=field_catalog(forms, locale()),
        notices=notices_of(schema, data, locale()) if task.status == "open" else [],
        typed=_typed_back(schema, values) if task.assignee_id not in (None, current_user.id) else [],
        events=instance_events(db.session, instance.id)[-15:],
        assignee=db.session.get(User, task.assignee_id) if task.assignee_id else None)


def _open_task_ids(instance_id: int) -> list[int]:
    return list(db.session.scalars(select(HumanTask.id).where(HumanTask.instance_id == instance_id,
                                                              HumanTask.status == "open")))


def _outcome(instance_id: int, before: set[int]) -> list[Notice]:
    """What the steps the completion opened declare about it (``x-notices``, web/step_notices.py),
    whoever holds them: a wrong password, a refusal, billing's reason."""
    eng, found = engine(), []
    for task_id in _open_task_ids(instance_id):
        if task_id in before:
            continue
        opened = db.session.get(HumanTask, task_id)
        schema = eng.form_of(db.session, opened)
        if schema and schema.get("x-notices"):
            found += notices_of(schema, eng.task_data(db.session, opened), locale())
    return found


def _typed_back(schema: dict[str, Any], values: dict | None) -> list[tuple[str, str]]:
    """What a refused submission carried, by field title, so that nothing typed is lost when the
    step turned out to be held by someone else (secrets are never echoed)."""
    if not values:
        return []
    fields = fields_of(schema, values, {}, locale())
    shown = []
    for f in fields:
        raw = values.get(f.name)
        if f.kind == "secret" or raw in (None, ""):
            continue
        if f.kind == "checkbox":
            text = _("Yes")
        else:
            text = dict(f.choices).get(str(raw), str(raw)) if f.choices else str(f.value if f.kind == "datetime" else raw)
        shown.append((f.label, text))
    return shown


def form_context(instance: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The case's data with what the product adds for its forms' conditional choices
    (``app.extensions["kefu_form_context"]``, e.g. the roaming exchange's ``home_province``)."""
    context = dict(data)
    for provide in current_app.extensions.get("kefu_form_context", []):
        context.update(provide(instance, data))
    return context


@bp.post("/tasks/<int:task_id>/claim")
@login_required
def claim(task_id: int):
    engine().claim(db.session, task_id, current_user, utcnow())
    db.session.commit()
    flash(_("Task claimed."), "success")
    return redirect(url_for("inbox.task", task_id=task_id))


@bp.post("/tasks/<int:task_id>/unclaim")
@login_required
def unclaim(task_id: int):
    engine().unclaim(db.session, task_id, current_user, utcnow())
    db.session.commit()
    flash(_("Task returned to the group."), "success")
    return redirect(url_for("inbox.tasks", scope="group"))


@bp.post("/tasks/<int:task_id>/assign")
@login_required
def assign(task_id: int):
    assignee = db.session.get(User, request.form.get("assignee_id", type=db_int) or 0)
    if assignee is None:
        flash(_("Choose a member of the group."), "error")
        return redirect(url_for("inbox.task", task_id=task_id))
    engine().assign(db.session, task_id, assignee, current_user, utcnow())
    db.session.commit()
    flash(_("Task assigned to %(name)s.", name=assignee.display_name), "success")
    return redirect(url_for("inbox.task", task_id=task_id))


@bp.post("/tasks/<int:task_id>/complete")
@login_required
def complete(task_id: int):
    eng = engine()
    step = eng.get_task(db.session, task_id, current_user)
    schema = eng.form_of(db.session, step)
    data = coerce(schema, request.form)
    before = set(_open_task_ids(step.instance_id))
    try:
        eng.complete_task(db.session, task_id, data, actor=current_user, now=utcnow())
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        flash(_("Please correct the marked fields."), "error")
        return task(task_id, errors=localized_fields(exc), values=dict(request.form)), 422
    except (Conflict, PeerUnavailable) as exc:
        # A refusal is shown as one, on the task, with what was typed kept for another try.
        db.session.rollback()
        status = 409 if isinstance(exc, Conflict) else 503
        headline, reason = page_message(status, exc.message)
        flash(reason or headline, "error")
        return task(task_id, values=dict(request.form)), status
    outcome = _outcome(step.instance_id, before)
    for notice in outcome:  # a refusal or warning is said as one, never as a green "done"
        flash(_("%(step)s submitted. %(title)s: %(message)s", step=step.title, title=notice.title,
                message=notice.message), notice.severity)
    if not outcome:
        flash(_("Step done: %(title)s.", title=step.title), "success")
    next_task = db.session.scalars(
        select(HumanTask).where(HumanTask.instance_id == step.instance_id, HumanTask.status == "open",
                                HumanTask.assignee_id == current_user.id).limit(1)).first()
    if next_task is not None:
        return redirect(url_for("inbox.task", task_id=next_task.id))
    return redirect(url_for("inbox.tasks"))

