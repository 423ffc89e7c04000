"""Roaming complaint transfer in the product (漫游投诉转递): wiring the partners, the connector and
the product's operation from configuration, the words a case page shows for the other side's
state, and the managers' statistics page."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from flask import Blueprint, Flask, render_template, request
from flask_babel import lazy_gettext as _l

from connectors.base import Registry
from connectors.roaming import PartnerLink, RoamingClient
from connectors.roaming import operations as roaming_operations
from engine.clock import utcnow
from processes import national, roaming, roaming_complaints, roaming_partners

from .access import permission_required
from .extensions import app_sessions, db
from .request_limits import db_int

bp = Blueprint("roaming", __name__)

# Our side's state and the other side's, in words, by (direction, status).
OUR_STATE = {
    (roaming.OUT, roaming.SENT): _l("Dispatch sent, waiting for the success mark"),
    (roaming.OUT, roaming.ACKNOWLEDGED): _l("Dispatch delivered"),
    (roaming.OUT, roaming.ANSWERED): _l("Receipt received; reply to the customer"),
    (roaming.OUT, roaming.CLOSED): _l("Closed"),
    (roaming.OUT, roaming.FAILED): _l("Dispatch not delivered; an administrator is looking into it"),
    (roaming.IN, roaming.ACKNOWLEDGED): _l("Dispatch received and confirmed; being handled here"),
    (roaming.IN, roaming.ANSWERED): _l("Receipt sent, waiting for the success mark"),
    (roaming.IN, roaming.CLOSED): _l("Closed"),
    (roaming.IN, roaming.FAILED): _l("Receipt not delivered; an administrator is looking into it"),
}
OTHER_STATE = {
    (roaming.OUT, roaming.SENT): _l("Has not confirmed the dispatch yet"),
    (roaming.OUT, roaming.ACKNOWLEDGED): _l("Confirmed the dispatch and is handling the complaint"),
    (roaming.OUT, roaming.ANSWERED): _l("Has handled the complaint and sent its receipt"),
    (roaming.OUT, roaming.CLOSED): _l("Has handled the complaint and sent its receipt"),
    (roaming.OUT, roaming.FAILED): _l("Has not received the dispatch"),
    (roaming.IN, roaming.ACKNOWLEDGED): _l("Waiting for our receipt"),
    (roaming.IN, roaming.ANSWERED): _l("Has not confirmed our receipt yet"),
    (roaming.IN, roaming.CLOSED): _l("Confirmed our receipt"),
    (roaming.IN, roaming.FAILED): _l("Has not received our receipt"),
}
DIRECTIONS = {roaming.OUT: _l("Sent to the home province"), roaming.IN: _l("Received from the visited province")}
NATIONAL = _l("Escalated to the national center")
# The receiving end of a national escalation (processes/national.py, kind_of): its own words.
TITLES = {national.ROAMING: _l("Roaming complaint transfer"),
          national.ESCALATION_OUT: _l("Escalation to the national center"),
          national.ESCALATION_IN: _l("Escalation from a province to the national center"),
          national.NATIONAL_DISPATCH: _l("Dispatch from the national center"),
          national.DISPATCH_DOWN: _l("Dispatch from the national center to a province")}
DISPATCHED_DOWN = _l("Dispatched to the province")  # 下发至省公司: the centre's own dispatch
KIND_DIRECTIONS = {national.ESCALATION_OUT: NATIONAL,
                   national.ESCALATION_IN: _l("Escalated here by the province"),
                   national.NATIONAL_DISPATCH: _l("Dispatched here by the national center"),
                   national.DISPATCH_DOWN: DISPATCHED_DOWN}
# At the national centre every dispatch goes down to a province and every one received is an escalation.
CENTRE_DIRECTIONS = {roaming.OUT: DISPATCHED_DOWN, roaming.IN: KIND_DIRECTIONS[national.ESCALATION_IN]}


def add_roaming(app: Flask, registry: Registry) -> None:
    """The partners (KEFU_COMPANY_CODE, KEFU_PARTNERS; without the file the loopback demo), the
    roaming connector's operations, ``roaming.send`` and the complaint's ``roaming.home`` /
    ``roaming.transfer_complaint``; ``app.extensions["kefu_roaming"]``; the task pages' variable
    ``home_province`` (a complaint's number homed at a partner) that offers the transfer."""
    partners = roaming_partners.load_partners(str(app.config.get("KEFU_COMPANY_CODE") or "YN"),
                                     str(app.config.get("KEFU_PARTNERS") or "") or None,
                                     f"http://127.0.0.1:{app.config.get('KEFU_PORT') or 5000}")
    client = RoamingClient(partners.company, lambda: {p.code: PartnerLink(p.code, p.url, p.secret)
                                                      for p in partners.entries.values()})
    registry.add(roaming_operations(client))
    registry.add(roaming.operations(partners))
    registry.add(roaming_complaints.complaint_operations(partners, app_sessions(app), lambda: app.extensions["kefu_engine"]))
    app.extensions["kefu_roaming"] = roaming.Roaming(partners, lambda: app.extensions["kefu_engine"])
    app.extensions.setdefault("kefu_form_context", []).append(partial(_form_context, partners))


def _form_context(partners: roaming_partners.Partners, instance: Any, data: dict[str, Any]) -> dict[str, Any]:
    """What a task page may offer by the case's data: ``home_province``, the partner homing the
    customer's number (the complaint's choice 转递归属地省处理, ``x-choice-when`` in its form)."""
    partner = roaming_complaints.transfer_home(partners, data.get("customer_phone"), data.get("roaming_company"))
    return {"home_province": partner.name if partner else ""}


def exchange(app: Flask) -> roaming.Roaming:
    return app.extensions["kefu_roaming"]


def case_view(instance_id: int, partners: roaming_partners.Partners) -> dict[str, Any] | None:
    """What a case page shows of its roaming transfer (None for a case without one)."""
    row = roaming.transfer_of_instance(db.session, instance_id)
    if row is None:
        return None
    key = (row.direction, row.status)
    kind = national.kind_of(partners, row)
    return {"row": row, "title": TITLES[kind], "direction": KIND_DIRECTIONS.get(kind, DIRECTIONS[row.direction]),
            "partner": partners.name_of(row.partner), "ours": OUR_STATE.get(key, row.status),
            "theirs": OTHER_STATE.get(key, row.status), "receipt": row.receipt or {}}


def row_direction(partners: roaming_partners.Partners, row: roaming.RoamingTransfer) -> str:
    """A transfer's direction in words: a national escalation (either end) reads as one."""
    return str(KIND_DIRECTIONS.get(national.kind_of(partners, row), DIRECTIONS[row.direction]))


@bp.get("/roaming")
@permission_required("report_roaming")
def statistics() -> Any:
    days = max(1, min(366, request.args.get("days", 30, type=db_int)))
    partners = exchange_partners()
    lines = roaming.statistics(db.session, since=utcnow() - timedelta(days=days))
    totals = {d: [line for line in lines if line.direction == d] for d in (roaming.OUT, roaming.IN)}
    centre = national.is_centre(partners)
    return render_template("roaming.html", lines=lines, totals=totals, days=days, partners=partners, centre=centre,
                           directions=CENTRE_DIRECTIONS if centre else DIRECTIONS, rows=roaming.transfers(db.session, limit=50),
                           ours=OUR_STATE, row_direction=partial(row_direction, partners))


def exchange_partners() -> roaming_partners.Partners:
    from flask import current_app

    return exchange(current_app._get_current_object()).partners


def start_demo_roaming(app: Flask, port: int) -> str | None:
    """``serve --demo`` without ``KEFU_PARTNERS``: loop every partner back to this server on
    ``port`` and, once, transfer a sample roaming complaint so that the exchange shows. The line
    to print, or None when real partners are configured."""
    from dataclasses import replace

    from engine.people import user_by_name

    exchange_ = exchange(app)
    partners = exchange_.partners
    if not partners.loopback:
        return None
    url = f"http://127.0.0.1:{port}"
    partners.entries.update({code: replace(p, url=url) for code, p in partners.entries.items()})
    if roaming.transfers(db.session, limit=1):
        return f"KEFU_PARTNERS is not set: roaming partners are looped back to {url}"
    sample = {"customer_phone": "13000200001", "complainant_name": "林先生", "contact_phone": "13000200001",
              "channel": "phone", "category": "network", "description": "在本省漫游期间无法使用数据业务。",
              "request": "尽快恢复"}
    exchange_.engine.start(db.session, roaming.PROCESS_KEY, sample, actor=user_by_name(db.session, "agent1"),
                           now=utcnow())
    db.session.commit()
    return (f"KEFU_PARTNERS is not set: roaming partners are looped back to {url}; a sample roaming "
            f"complaint (13000200001, 广东联通) is being transferred — see 漫游投诉")
