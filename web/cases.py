"""Cases (process instances): recording a new one, its page with the whole history, the list,
and pausing a case that waits on the customer (挂起)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from engine import definitions, migration
from engine.access import visible_cases
from engine.clock import utcnow
from engine.errors import Conflict, ValidationFailed
from engine.models import (
    HumanTask,
    ProcessInstance,
    instance_events,
    open_tasks_of_instance,
    record_event,
)
from engine.people import User
from processes import roaming, urging
from processes.telephony import Call, CallCase
from slas.models import Escalation, clocks_of_instance

from . import desk_filters
from .access import permission_required
from .errors import localized_fields, page_message
from .extensions import db
from .inbox_bulk import case_choices, case_facts, my_views
from .request_limits import db_int
from .schema_forms import coerce, field_catalog, fields_of
from .search import open_steps
from .views_helpers import engine, locale

bp = Blueprint("cases", __name__)
HISTORY_LIMIT = 20
CASES_PAGE = 50
# History events that link this case to another, shown at the top of the case page: a complaint
# transferred to the home province and the transfer case it started (processes/roaming.py).
LINKED_KINDS = (roaming.TRANSFERRED, roaming.TRANSFERRED_FROM)


def customer_history(phone: str | None, exclude: int | None = None):
    """This customer's earlier cases of every process (a complaint matters when taking a request),
    newest first."""
    if not phone:
        return []
    query = (select(ProcessInstance).where(ProcessInstance.customer_phone == phone.strip())
             .order_by(ProcessInstance.id.desc()).limit(HISTORY_LIMIT))
    if exclude:
        query = query.where(ProcessInstance.id != exclude)
    return list(db.session.scalars(query))


def _start_schema(key: str) -> tuple[definitions.ProcessDefinition, dict, dict]:
    definition = definitions.latest_version(db.session, key)
    if definition is None:
        abort(404)
    spec, _subs, forms = engine().specs.get(db.session, definition.id)
    start = next((t for t in spec.task_specs.values() if type(t).__name__ == "StartEvent"), None)
    form_name = definitions.properties_of(start).get(definitions.FORM_PROPERTY) if start else None
    return definition, forms.get(form_name or "", {}), forms


@bp.get("/complaints/new")
@login_required
def new_complaint():
    return redirect(url_for("cases.new", key="complaint", **request.args))


def _call_of_current_user(value: str | None) -> Call | None:
    """The call ``?call=`` names, when it is one of the signed-in agent's calls."""
    try:
        call_id = db_int(value or "")
    except ValueError:
        return None
    call = db.session.get(Call, call_id)
    if call is None or call.agent_id != current_user.id:
        return None
    return call


def _prefill(schema: dict, args: dict) -> dict:
    """Start-form values from the query string (a customer page, a screen pop): the fields the
    form knows; the contact number defaults to the customer's number."""
    properties = schema.get("properties") or {}
    values = {k: v for k, v in args.items() if k in properties}
    if "contact_phone" in properties and not values.get("contact_phone") and values.get("customer_phone"):
        values["contact_phone"] = values["customer_phone"]
    return values


def _link_call(call: Call, instance: ProcessInstance) -> None:
    """Link a case started during a call to that call, on the case's history."""
    now = utcnow()
    db.session.add(CallCase(call_id=call.id, instance_id=instance.id, linked_at=now))
    word = "来电" if call.direction == "inbound" else "去电"
    record_event(db.session, "call_linked", at=now, instance_id=instance.id, actor=current_user.display_name,
                 message=f"{word} {call.customer_number}（分机 {call.extension or '-'}）",
                 data={"call": call.id, "call_id": call.call_id, "direction": call.direction})


@bp.route("/cases/new/<key>", methods=["GET", "POST"])
@login_required
def new(key: str):
    definition, schema, forms = _start_schema(key)
    errors: dict[str, str] = {}
    values: dict = _prefill(schema, request.args)
    call = _call_of_current_user(request.args.get("call"))
    status = 200
    if request.method == "POST":
        data = coerce(schema, request.form)
        try:
            instance = engine().start(db.session, key, data, actor=current_user, now=utcnow())
            if call is not None:
                _link_call(call, instance)
            db.session.commit()
        except ValidationFailed as exc:
            db.session.rollback()
            errors, values, status = localized_fields(exc), dict(request.form), 422
            flash(_("Please correct the marked fields."), "error")
        else:
            flash(_("Recorded as %(ref)s.", ref=instance.reference), "success")
            mine = db.session.scalars(select(HumanTask).where(
                HumanTask.instance_id == instance.id, HumanTask.status == "open",
                HumanTask.assignee_id == current_user.id).limit(1)).first()
            if mine is not None:
                return redirect(url_for("inbox.task", task_id=mine.id))
            return redirect(url_for("cases.show", instance_id=instance.id))
    return render_template("case_new.html", definition=definition, key=key, call=call,
                           fields=fields_of(schema, values, errors, locale()),
                           history=customer_history(values.get("customer_phone")),
                           catalog=field_catalog(forms, locale())), status


@bp.get("/cases/history")
@login_required
def history_fragment():
    key = request.args.get("key", "complaint")
    definition = definitions.latest_version(db.session, key)
    forms = engine().specs.get(db.session, definition.id)[2] if definition else {}
    return render_template("_history.html", history=customer_history(request.args.get("customer_phone")),
                           catalog=field_catalog(forms, locale()))


@bp.get("/cases/<int:instance_id>")
@login_required
def show(instance_id: int):
    eng = engine()
    instance = eng.get_instance(db.session, instance_id, current_user)
    forms = eng.specs.get(db.session, instance.definition_id)[2]
    tasks = open_tasks_of_instance(db.session, instance.id)
    users = {u.id: u for u in db.session.scalars(
        select(User).where(User.id.in_({t.assignee_id for t in tasks if t.assignee_id})))}
    escalations = list(db.session.scalars(select(Escalation).where(
        Escalation.instance_id == instance.id).order_by(Escalation.id)))
    events = instance_events(db.session, instance.id)
    return render_template(
        "case.html", instance=instance, data=eng.workflow_data(db.session, instance),
        catalog=field_catalog(forms, locale()), tasks=tasks, urges=urging.urge_counts(db.session, [t.id for t in tasks]),
        clocks=clocks_of_instance(db.session, instance.id), escalations=escalations,
        events=events, users=users, diagram=_diagram(instance),
        history=customer_history(instance.customer_phone, exclude=instance.id),
        roaming=_roaming_view(instance.id),
        linked=[e for e in events if e.kind in LINKED_KINDS and e.data and e.data.get("link_id")])


@bp.post("/cases/<int:instance_id>/tasks/<int:task_id>/urge")
@login_required
def urge(instance_id: int, task_id: int):
    """催办 from the case page: the holder (or the group's leader) is told; refused in words when
    the step was urged a moment ago."""
    gap = timedelta(minutes=int(current_app.config.get("KEFU_URGE_MINUTES") or 30))
    try:
        urging.urge(db.session, task_id, current_user, request.form.get("note", "")[:500], utcnow(), gap)
        db.session.commit()
        flash(_("The step was urged; its holder has been told."), "success")
    except (Conflict, urging.TooSoon) as exc:
        db.session.rollback()
        flash(page_message(429 if isinstance(exc, urging.TooSoon) else 409, exc.message)[1]
              or _("The step cannot be urged now."), "error")
    return redirect(url_for("cases.show", instance_id=instance_id))


def _roaming_view(instance_id: int) -> dict | None:
    """The case's roaming transfer, with both sides' state in words (web/roaming.py)."""
    from flask import current_app

    from .roaming import case_view, exchange

    return case_view(instance_id, exchange(current_app._get_current_object()).partners)


def _diagram(instance: ProcessInstance) -> dict:
    """What the case's diagram highlights: done, active and failed elements, flows taken."""
    states = migration.diagram_states(engine(), db.session, instance)
    try:  # connector incidents (engine.outbox) mark their service tasks
        from engine.outbox import incident_elements
    except ImportError:
        incidents: set[str] = set()
    else:
        incidents = incident_elements(db.session, instance.id)
    return {**states, "incidents": sorted(incidents),
            "bpmn_url": url_for("api.definition_bpmn", key=instance.process_key,
                                version=instance.definition.version)}


@bp.post("/cases/<int:instance_id>/suspend")
@login_required
def suspend(instance_id: int):
    try:
        engine().suspend(db.session, instance_id, request.form.get("reason", ""),
                         actor=current_user, now=utcnow())
    except ValidationFailed:
        db.session.rollback()
        flash(_("Give the reason the case waits on the customer."), "error")
        return redirect(request.referrer or url_for("cases.show", instance_id=instance_id))
    db.session.commit()
    flash(_("The case is suspended; its time limits are paused."), "success")
    return redirect(request.referrer or url_for("cases.show", instance_id=instance_id))


@bp.post("/cases/<int:instance_id>/resume")
@login_required
def resume(instance_id: int):
    engine().resume(db.session, instance_id, actor=current_user, now=utcnow())
    db.session.commit()
    flash(_("The case is resumed; its time limits run again."), "success")
    return redirect(request.referrer or url_for("cases.show", instance_id=instance_id))


@bp.get("/cases")
@permission_required("manage_cases")
def index():
    """The case list: the filters of web/desk_filters.py plus status, number and overdue,
    sorted and paginated in SQL."""
    args = request.args
    now = utcnow()
    filters = desk_filters.parse(args, default_sort="created")
    query = desk_filters.filter_cases(select(ProcessInstance), filters, now)
    query = query.where(visible_cases(db.session, current_user))  # a city leader: the city's cases
    if args.get("status"):
        query = query.where(ProcessInstance.status == args["status"])
    if args.get("phone"):
        query = query.where(ProcessInstance.customer_phone == args["phone"].strip())
    if args.get("overdue"):
        overdue_ids = select(HumanTask.instance_id).where(HumanTask.status == "open",
                                                          HumanTask.due_at < now)
        query = query.where(ProcessInstance.id.in_(overdue_ids))
    figure = _report_figure(args)
    if figure is not None:
        query = query.where(ProcessInstance.id.in_(figure.pop("ids")))
    page = max(1, args.get("page", 1, type=db_int))
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = list(db.session.scalars(query.limit(CASES_PAGE).offset((page - 1) * CASES_PAGE)))
    return render_template("cases.html", cases=rows, args=args, figure=figure, filters=filters, total=total,
                           page=page, pages=max(1, -(-total // CASES_PAGE)), steps=open_steps(rows),
                           facts=case_facts([c.id for c in rows]), choices=case_choices(),
                           views=my_views("cases"), query=request.query_string.decode("utf-8", "replace"),
                           processes=definitions.latest_versions(db.session))


def _report_figure(args: Any) -> dict[str, Any] | None:
    """A figure of the complaint statistics the list is narrowed to (``?measure=…&by=…&key=…``
    with the report's ``from``/``to``; web/reports.py links here): its ids query and its words."""
    if not args.get("measure"):
        return None
    if args.get("report"):  # the other services' statistics (web/service_reports.py)
        from .service_reports import figure

        return figure(args)
    from processes import complaint_facts

    from .reports import DIMENSION_TITLES, MEASURE_TITLES, label_of, labels

    try:
        period = complaint_facts.check_period(args.get("from"), args.get("to"), args.get("by") or "day")
        ids = complaint_facts.drill_down(period, args.get("key") or None, args["measure"])
    except (ValidationFailed, ValueError):
        abort(422)
    key = args.get("key")
    where = (f"{DIMENSION_TITLES[period.by]}：{label_of(period.by, None if key == complaint_facts.NONE_KEY else key, labels())}"
             if key else "")
    return {"ids": ids, "measure": MEASURE_TITLES[args["measure"]], "where": where,
            "start": period.start, "end": period.end}
