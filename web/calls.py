"""Agents' calls in the browser: the screen-pop stream, the recent calls, and the demo's simulated
inbound call.

The stream is Server-Sent Events: it sends the signed-in user's screen pops newer than the last
one the browser saw (``Last-Event-ID`` on a reconnection, ``?after=`` from a new page), wakes
when a commit in this process added pops and checks the database every second for pops other
processes wrote, and ends after ``KEFU_POP_STREAM_SECONDS`` so that a server thread is never held
for long; the browser reconnects after ``retry`` milliseconds.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from engine.access import allowed
from engine.clock import utcnow
from engine.models import ProcessInstance
from engine.people import User
from processes.telephony import Call, CallCase, customer_url, last_pop_id, pop_json, pop_signal, pops_after

from .access import permission_required
from .extensions import db
from .request_limits import db_int

bp = Blueprint("calls", __name__)
POLL_SECONDS = 1.0        # the database check for pops written by other processes
# A comment line on every wake: it keeps proxies from closing an idle stream, and writing is how
# the server learns that the browser left (an agent moving on to the next page): the thread is
# free within a second instead of holding on until the stream's end (a quick agent, or a page
# sweep, would otherwise hold every server thread).
HEARTBEAT_SECONDS = POLL_SECONDS
MAX_POP_AGE = timedelta(minutes=2)  # a pop the browser missed for longer is no news any more
RECENT_CALLS = 100
_PHONE = re.compile(r"^\+?\d{3,20}\Z", re.ASCII)


@bp.app_context_processor
def _pop_stream() -> dict[str, Any]:
    """What base.html needs to open the stream: only users with an extension get screen pops."""

    def pop_stream() -> dict[str, Any] | None:
        if not current_user.is_authenticated or not current_user.extension:
            return None
        try:
            last = last_pop_id(db.session, current_user.id)
        except Exception:  # noqa: BLE001 - an error page must render even when the database fails
            last = 0
        return {"url": url_for("calls.stream"), "last": last}

    def customer_link(phone: str, call: int | None = None) -> str:
        return customer_url(phone, call, reason="call")

    return {"pop_stream": pop_stream, "customer_link": customer_link}


def _start_after(user_id: int) -> int:
    for value in (request.headers.get("Last-Event-ID"), request.args.get("after")):
        try:
            return max(0, db_int(value or ""))
        except ValueError:
            continue
    return last_pop_id(db.session, user_id)


@bp.get("/calls/stream")
@login_required
def stream():
    app = current_app._get_current_object()
    user_id = current_user.id
    after = _start_after(user_id)
    seconds = float(app.config.get("KEFU_POP_STREAM_SECONDS", 25))
    db.session.remove()  # the stream must not hold a connection while it waits

    def events() -> Iterator[str]:
        nonlocal after
        yield "retry: 1000\n\n"
        deadline = time.monotonic() + seconds
        beat = time.monotonic()
        while True:
            generation = pop_signal.generation  # read before querying: no commit slips between
            with app.app_context():
                try:
                    rows = [pop_json(p) for p in pops_after(db.session, user_id, after,
                                                            since=utcnow() - MAX_POP_AGE)]
                finally:
                    db.session.remove()
            for row in rows:
                after = row["id"]
                yield f"id: {row['id']}\nevent: pop\ndata: {json.dumps(row, ensure_ascii=False)}\n\n"
            now = time.monotonic()
            if now >= deadline:
                return
            if now - beat >= HEARTBEAT_SECONDS:
                beat = now
                yield ": keep-alive\n\n"
            pop_signal.wait(generation, min(POLL_SECONDS, deadline - now))

    return Response(events(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _recent_calls(limit: int = RECENT_CALLS) -> tuple[list[Call], dict[int, list[ProcessInstance]], dict]:
    """Recent calls (an agent sees their own, supervisors everyone's), their cases and agents."""
    query = select(Call).order_by(Call.started_at.desc(), Call.id.desc()).limit(limit)
    if not allowed(current_user, "watch_calls"):
        query = query.where(Call.agent_id == current_user.id)
    calls = list(db.session.scalars(query))
    cases: dict[int, list[ProcessInstance]] = {c.id: [] for c in calls}
    if calls:
        for link, instance in db.session.execute(
                select(CallCase, ProcessInstance).join(ProcessInstance, ProcessInstance.id == CallCase.instance_id)
                .where(CallCase.call_id.in_(list(cases))).order_by(CallCase.id)):
            cases[link.call_id].append(instance)
    agents = {u.id: u for u in db.session.scalars(
        select(User).where(User.id.in_({c.agent_id for c in calls if c.agent_id})))}
    return calls, cases, agents


@bp.get("/calls")
@login_required
def index():
    calls, cases, agents = _recent_calls()
    return render_template("calls.html", calls=calls, cases=cases, agents=agents,
                           demo=_demo_peer() is not None)


def _demo_peer() -> Any:
    return current_app.extensions.get("kefu_demo_ami")


@bp.route("/calls/simulate", methods=["GET", "POST"])
@permission_required("handle_calls")
def simulate():
    peer = _demo_peer()
    caller = request.form.get("caller", "13800000001").strip()
    extension = request.form.get("extension", current_user.extension or "8001").strip()
    if request.method == "POST":
        if peer is None:
            flash(_("Simulated calls exist only in the demo (KEFU_AMI_URL unset)."), "error")
        elif not _PHONE.match(caller) or not extension.isdigit():
            flash(_("Give the caller's number and an extension (digits)."), "error")
        else:
            pbx = current_app.extensions.get("kefu_pbx")
            if pbx is not None:  # a process started without the scheduler has not opened the link yet
                pbx.start()
                pbx.client().wait_connected(2.0)
            call_id = peer.ring_inbound(caller, extension)
            flash(_("The demo PBX rings extension %(ext)s with a call from %(caller)s (%(id)s).",
                    ext=extension, caller=caller, id=call_id), "success")
            return redirect(url_for("calls.simulate"))
    calls, cases, agents = _recent_calls(20)
    live = peer.inbound_calls() if peer is not None else {}
    extensions = list(db.session.scalars(select(User).where(User.extension.is_not(None), User.active)
                                         .order_by(User.extension)))
    return render_template("calls_simulate.html", demo=peer is not None, caller=caller, extension=extension,
                           calls=calls, cases=cases, agents=agents, live=live, extensions=extensions)


@bp.post("/calls/simulate/<call_id>/<action>")
@permission_required("handle_calls")
def simulate_action(call_id: str, action: str):
    peer = _demo_peer()
    if peer is None or action not in ("answer", "hangup"):
        flash(_("Simulated calls exist only in the demo (KEFU_AMI_URL unset)."), "error")
        return redirect(url_for("calls.simulate"))
    try:
        getattr(peer, action)(call_id)
    except KeyError:
        flash(_("That call has already ended."), "error")
    return redirect(request.referrer or url_for("calls.simulate"))
