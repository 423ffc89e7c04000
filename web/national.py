"""Escalating a complaint to the national centre (上报全国中心) from its case page; the rule and the
exchange are processes/national.py's (over the roaming exchange's transport)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from engine.access import allowed
from engine.clock import utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import RUNNING, SUSPENDED, ProcessInstance
from processes import national

from .extensions import db
from .views_helpers import engine

bp = Blueprint("national", __name__)

PROBLEMS = {"required": _l("Give the reason the national center is needed."),
            "too_long": _l("The reason has at most %(n)s characters.")}


def _partners() -> Any:
    return current_app.extensions["kefu_roaming"].partners


@bp.app_template_global()
def national_escalation(instance: ProcessInstance) -> dict[str, Any] | None:
    """For the case page: ``{centre, waiting, answered, may_escalate}`` for a complaint when a
    national centre is configured and the case was escalated or this user may escalate it."""
    if instance.process_key != "complaint" or not current_user.is_authenticated:
        return None
    centre = _partners().national_centre()
    if centre is None:
        return None
    waiting = national.open_escalation(db.session, _partners(), instance.id)
    answered = national.last_answer(db.session, _partners(), instance.id)
    may_escalate = (waiting is None and instance.status in (RUNNING, SUSPENDED)
                    and allowed(current_user, "escalate_national"))
    if waiting is None and answered is None and not may_escalate:
        return None
    return {"centre": centre.name, "waiting": waiting, "answered": answered, "may_escalate": may_escalate,
            "suspended": instance.status == SUSPENDED}


@bp.post("/cases/<int:instance_id>/national")
@login_required
def escalate(instance_id: int):
    back = url_for("cases.show", instance_id=instance_id)
    eng = engine()
    try:
        instance = eng.get_instance(db.session, instance_id, current_user)
        national.escalate(db.session, _partners(), instance, eng.workflow_data(db.session, instance),
                          request.form.get("reason", ""), engine=eng, actor=current_user, now=utcnow())
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        code = next(iter(exc.fields.values()), "")
        flash(_("Not escalated: %(reason)s", reason=str(PROBLEMS.get(code, code)) % {"n": national.REASON_MAX}),
              "error")
        return redirect(back)
    except Conflict:
        db.session.rollback()
        flash(_("Not escalated: the complaint is closed or suspended, or already waits for the national center."),
              "error")
        return redirect(back)
    except Forbidden:
        db.session.rollback()
        flash(_("Not escalated: only a leader or a manager may escalate a complaint to the national center."),
              "error")
        return redirect(back)
    except NotFound:
        db.session.rollback()
        raise
    flash(_("The complaint is sent to the national center; its answer will appear in the case history."), "success")
    return redirect(back)
