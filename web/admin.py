"""Administrators' pages: connector incidents (with retry), SMS texts (templates) and the SMS log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from engine import outbox, peer_events, worker
from engine.clock import utcnow
from engine.errors import KefuError
from engine.models import ProcessInstance
from processes import file_exchange
from processes.sms_templates import (
    DEFAULTS,
    MAX_BODY,
    MAX_TEXT,
    SmsTemplate,
    TemplateProblem,
    template_problem,
)

from . import views_helpers
from .access import permission_required
from .case_text import reason_in_words
from .extensions import db
from .incident_words import incident_words

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/incidents")
@permission_required("administer")
def incidents():
    rows = outbox.open_incidents(db.session)
    operations = views_helpers.engine().operations
    askable = {r.id for r in rows if r.kind == outbox.OUTCOME_UNKNOWN
               and getattr(operations.get(r.operation), "query", None) is not None}
    accepted: dict[int, list[str]] = {}
    for ref in db.session.scalars(select(peer_events.PeerReference).where(
            peer_events.PeerReference.job_id.in_([r.job_id for r in rows] or [-1])).order_by(peer_events.PeerReference.id)):
        accepted.setdefault(ref.job_id, []).append(ref.ref)
    cases = _cases(r.instance_id for r in rows)
    words = {r.id: incident_words(r, cases.get(r.instance_id), r.id in askable) for r in rows}
    return render_template("admin_incidents.html", incidents=rows, cases=cases, askable=askable,
                           accepted=accepted, words=words)


@bp.post("/incidents/<int:incident_id>/ask")
@permission_required("administer")
def ask_peer(incident_id: int):
    """Ask the peer what became of a call whose outcome is unknown (SMPP query_sm for texts)."""
    try:
        answer = worker.ask_peer(db.session, views_helpers.engine().operations, incident_id,
                                 actor=current_user.username, now=utcnow())
        db.session.commit()
        flash(_("Incident %(id)s: %(answer)s", id=incident_id, answer=answer.summary_zh),
              "ok" if answer.has is not None else "error")
    except KefuError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("admin.incidents"))


@bp.post("/incidents/<int:incident_id>/confirm")
@permission_required("administer")
def confirm(incident_id: int):
    """Close an 'outcome unknown' incident as done — only when the peer confirms it has the call."""
    try:
        now = utcnow()
        answer = worker.ask_peer(db.session, views_helpers.engine().operations, incident_id,
                                 actor=current_user.username, now=now)
        if answer.has is not True:
            db.session.commit()  # the question stays on the case's history
            flash(_("Not confirmed: %(answer)s", answer=answer.summary_zh), "error")
        else:
            outbox.confirm_incident(db.session, incident_id, actor=current_user.username, now=now,
                                    result=answer.result)
            db.session.commit()
            flash(_("Confirmed as done; the case continues without calling the peer again."), "ok")
    except KefuError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("admin.incidents"))


@bp.post("/incidents/<int:incident_id>/retry")
@permission_required("administer")
def retry(incident_id: int):
    try:
        outbox.retry_incident(db.session, incident_id, actor=current_user.username, now=utcnow())
        db.session.commit()
        flash(_("The job is queued again; it runs within a few seconds."), "ok")
    except KefuError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("admin.incidents"))


@bp.get("/sms")
@permission_required("administer")
def sms_log():
    jobs = list(db.session.scalars(select(outbox.ConnectorJob).where(outbox.ConnectorJob.operation == "sms.send")
                                   .order_by(outbox.ConnectorJob.id.desc()).limit(200)))
    refs: dict[int, list[peer_events.PeerReference]] = {}
    for ref in db.session.scalars(select(peer_events.PeerReference).where(
            peer_events.PeerReference.job_id.in_([j.id for j in jobs] or [-1]))):
        refs.setdefault(ref.job_id, []).append(ref)
    replies = peer_events.recent_inbound(db.session, "sms_mo", 50)
    smsc = current_app.extensions.get("kefu_demo_smsc")
    received = smsc.messages()[-50:][::-1] if smsc is not None else None
    return render_template("admin_sms.html", jobs=jobs, refs=refs, replies=replies, received=received,
                           cases=_cases([j.instance_id for j in jobs] + [r.instance_id for r in replies]),
                           titles={code: title for code, (title, _body, _sample) in DEFAULTS.items()},
                           reason=reason_in_words, reply_outcome=_reply_outcome)


def _reply_outcome(outcome: str | None) -> str:
    """What became of a customer's reply, in words (the tick stores a short English note)."""
    if not outcome:
        return _("Waiting to be handed to a case")
    if outcome.startswith("delivered to case"):
        return _("Handed to case %(case)s", case=outcome.removeprefix("delivered to case").strip())
    if outcome.startswith("no case waits"):
        return _("No case was waiting for a reply from this number")
    if outcome.startswith("failed"):
        return _("Could not be handed to the case: %(reason)s", reason=reason_in_words(outcome))
    return _("Not for a case")


@bp.get("/exchanges")
@permission_required("watch_exchanges")
def exchanges():
    return render_template("admin_exchanges.html", rows=file_exchange.exchanges(db.session),
                           labels=file_exchange.LABELS, directions=file_exchange.DIRECTIONS)


@bp.post("/sms/demo-reply")
@permission_required("administer")
def demo_reply():
    """Demo only: make the loopback SMSC deliver a customer's reply, as a real phone would."""
    from .demo_peers import send_demo_reply

    phone, text = (request.form.get("phone") or "").strip(), (request.form.get("text") or "").strip()
    try:
        send_demo_reply(current_app._get_current_object(), phone, text)
        flash(_("The SMS centre delivered the reply; the next tick hands it to the case."), "ok")
    except Exception as exc:  # noqa: BLE001 - shown to the admin
        flash(str(exc), "error")
    return redirect(url_for("admin.sms_log"))


@bp.get("/sms/templates")
@permission_required("administer")
def templates(edited: dict[str, str] | None = None, problems: dict[str, str] | None = None):
    stored = {t.code: t for t in db.session.scalars(select(SmsTemplate))}
    rows = [stored.get(code) or SmsTemplate(code=code, title=title, body=body)
            for code, (title, body, _sample) in DEFAULTS.items()]
    rows += [t for code, t in sorted(stored.items()) if code not in DEFAULTS]
    return render_template("admin_sms_templates.html", templates=rows, samples=DEFAULTS,
                           edited=edited or {}, problems=problems or {})


@bp.post("/sms/templates/<code>")
@permission_required("administer")
def save_template(code: str):
    body = (request.form.get("body") or "").strip()
    problem = template_problem(code, body) if body else TemplateProblem("empty")
    if problem:
        # Refused in words, on the form, with what was typed kept for the correction.
        title = DEFAULTS.get(code, (code,))[0]
        reason = template_problem_words(problem)
        flash(_("Template %(code)s was not saved: %(reason)s", code=title, reason=reason), "error")
        return templates(edited={code: body}, problems={code: reason}), 422
    row = db.session.get(SmsTemplate, code)
    if row is None:
        row = SmsTemplate(code=code, title=DEFAULTS.get(code, (code,))[0])
        db.session.add(row)
    row.body, row.updated_at, row.updated_by = body, utcnow(), current_user.username
    db.session.commit()
    flash(_("Template %(code)s saved.", code=code), "ok")
    return redirect(url_for("admin.templates"))


def template_problem_words(problem: TemplateProblem) -> str:
    """What is wrong with an SMS template and where, as an administrator reads it."""
    words = {
        "unclosed_value": _("a value's {{ is not closed with }}"),
        "empty_value": _("there is no value's name between {{ and }}"),
        "bad_char": _("“%(char)s” cannot be inside {{ }}: is the }} missing before it?", char=problem.detail),
        "unclosed_block": _("{%% %(tag)s %%} has no {%% end%(tag)s %%}", tag=problem.detail),
        "unknown_tag": _("{%% %(tag)s %%} is not a known instruction (or has no opening one)", tag=problem.detail),
        "unknown_filter": _("there is no filter named %(name)s", name=problem.detail),
        "unknown_value": _("there is no value named %(name)s for this text (the values it may use are listed "
                           "above the text)", name=problem.detail),
        "not_allowed": _("a text template may not use %(what)s: only values, conditions ({%% if %%}) and "
                         "simple filters such as default, trim and truncate", what=problem.detail),
        "body_too_long": _("the template is %(n)s characters long; at most %(max)s", n=problem.detail,
                           max=MAX_BODY),
        "unsafe": _("it asks for something a text may not do (too long a repetition or a protected name)"),
        "too_long": _("the text would be %(n)s characters long; at most %(max)s", n=problem.detail, max=MAX_TEXT),
        "empty": _("The text is empty."),
    }
    reason = str(words.get(problem.kind, _("it is not a valid template")))
    return _("line %(line)s: %(reason)s", line=problem.line, reason=reason) if problem.line else reason


def _cases(ids: Any) -> dict[int, ProcessInstance]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {i.id: i for i in db.session.scalars(select(ProcessInstance).where(ProcessInstance.id.in_(wanted)))}
