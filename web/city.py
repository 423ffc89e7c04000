"""The city level on the desk: transferring a step to a city's remote seat (转接到地市远程坐席)
from the task page. The rule and the history line are processes/city_transfer.py's."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from engine.access import may_see_task
from engine.clock import utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import HumanTask
from engine.people import Group
from processes import city_transfer

from .extensions import db

bp = Blueprint("city", __name__)

PROBLEMS = {"not_city_group": _l("Choose a city center's group."),
            "required": _l("Give the reason for the transfer."),
            "too_long": _l("The reason has at most %(n)s characters.")}


@bp.app_template_global()
def city_transfer_groups(task: HumanTask) -> list[Group]:
    """For the task page: the city groups this user may send the step to (none: no form)."""
    if not current_user.is_authenticated or not city_transfer.may_transfer(db.session, current_user, task):
        return []
    return [g for g in city_transfer.city_groups(db.session) if g.id != task.group_id]


@bp.post("/tasks/<int:task_id>/city-transfer")
@login_required
def transfer(task_id: int):
    try:
        task = city_transfer.transfer_to_city(db.session, task_id, request.form.get("group", ""),
                                              request.form.get("reason", ""), actor=current_user, now=utcnow())
        group = db.session.get(Group, task.group_id)
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        code = next(iter(exc.fields.values()), "")
        flash(_("The step was not transferred: %(reason)s",
                reason=str(PROBLEMS.get(code, code)) % {"n": city_transfer.REASON_MAX}), "error")
        return redirect(url_for("inbox.task", task_id=task_id))
    except Conflict:
        db.session.rollback()
        flash(_("The step was not transferred: it is done or already with that city."), "error")
        return redirect(url_for("inbox.task", task_id=task_id))
    except Forbidden:
        db.session.rollback()
        flash(_("The step was not transferred: only whoever holds it, its group or a leader may transfer it."),
              "error")
        return redirect(url_for("inbox.task", task_id=task_id))
    except NotFound:
        db.session.rollback()
        raise
    flash(_("The step is transferred to %(group)s; its remote seats take it from their group inbox.",
            group=group.name if group else ""), "success")
    if may_see_task(db.session, current_user, task):
        return redirect(url_for("inbox.task", task_id=task_id))
    return redirect(url_for("inbox.tasks", scope="mine"))
