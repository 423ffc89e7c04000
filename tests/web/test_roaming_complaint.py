"""A complaint recorded here for a number homed in another province is transferred from its
first-reply step (转递归属地省处理): the choice is offered only for such numbers and refused on the
resolution field otherwise; choosing it starts one ``roaming_transfer`` case (an outbox job, run
twice it still starts one), links the two cases and closes the complaint at 已转递归属地.

The app fixture runs the loopback demo's partners (processes/roaming_partners.json): this
deployment is YN, 13000200001 is homed in 广东 (GD), 13800000009 is YN's own."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from engine.clock import utcnow
from tests.conftest import INTAKE, ROOT, T0

GD_PHONE = "13000200001"
ROAMING_INTAKE = {**INTAKE, "customer_phone": GD_PHONE, "contact_phone": GD_PHONE,
                  "description": "在昆明漫游期间无法上网"}
TRANSFER = {"resolution": "transfer_home", "first_reply": "您的投诉已转您的归属地广东联通处理。"}


def _start(client, token, intake: dict[str, Any]) -> tuple[int, int]:
    """A complaint recorded by agent1; (case id, its first-reply task id)."""
    started = client.post("/api/v1/processes/complaint/instances", json={"data": intake}, headers=token("agent1"))
    assert started.status_code == 201, started.get_json()
    case = started.get_json()["id"]
    tasks = client.get("/api/v1/tasks?scope=mine", headers=token("agent1")).get_json()["items"]
    (triage,) = [t for t in tasks if t["instance_id"] == case]
    return case, triage["id"]


def _signed_in(app, username: str = "agent1"):
    browser = app.test_client()
    browser.post("/login", data={"username": username, "password": "kefu-demo"})
    return browser


def _transfer_job(session, case: int):
    from engine import outbox

    return session.scalar(select(outbox.ConnectorJob).where(
        outbox.ConnectorJob.instance_id == case, outbox.ConnectorJob.operation == "roaming.transfer_complaint"))


def test_a_number_homed_at_a_partner_is_transferred_once_and_the_cases_are_linked(app, client, token):
    from connectors.base import Call
    from engine import outbox
    from engine.models import ProcessInstance, instance_events
    from processes.roaming import RoamingTransfer
    from web.extensions import db

    case, triage = _start(client, token, ROAMING_INTAKE)
    browser = _signed_in(app)
    page = browser.get(f"/tasks/{triage}").get_data(as_text=True)
    assert 'value="transfer_home"' in page and "转递归属地省处理" in page  # offered: homed in GD

    done = client.post(f"/api/v1/tasks/{triage}/complete", json={"data": TRANSFER}, headers=token("agent1"))
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["instance_status"] == "running"  # waits until the transfer case exists
    with app.app_context():
        job = _transfer_job(db.session, case)
        assert job is not None and job.status == outbox.QUEUED and job.params["customer_phone"] == GD_PHONE
        assert "request" in job.params and job.params["description"] == "在昆明漫游期间无法上网"
        job_id, key, params = job.id, job.key, dict(job.params)
        report = app.extensions["kefu_engine"].run_jobs(db.session, utcnow())
        assert report.incidents == 0
        db.session.expire_all()
        assert db.session.get(outbox.ConnectorJob, job_id).status == outbox.DONE
        db.session.commit()  # the job opens a unit of work of its own

        # The same job run again (a crash before its outcome was stored) starts no second transfer.
        operation = app.extensions["kefu_connectors"].operations["roaming.transfer_complaint"]
        again = operation.run(params, Call(job_id=job_id, key=key, attempt=2, now=utcnow(), instance_id=case))
        assert again["created"] is False

        transfers = list(db.session.scalars(select(ProcessInstance).where(
            ProcessInstance.process_key == "roaming_transfer")))
        assert len(transfers) == 1
        transfer = transfers[0]
        assert again["instance_id"] == transfer.id and again["reference"] == transfer.reference
        assert transfer.started_by == db.session.scalar(
            select(ProcessInstance.started_by).where(ProcessInstance.id == case))  # agent1 chose it
        data = app.extensions["kefu_engine"].workflow_data(db.session, transfer)
        assert (data["origin_id"], data["customer_phone"], data["channel"]) == (case, GD_PHONE, "phone")
        assert data["origin_reference"].startswith("TS")

        # The transfer dispatched to 广东: the row and its signed dispatch queued.
        (row,) = db.session.scalars(select(RoamingTransfer))
        assert (row.direction, row.partner, row.status, row.instance_id) == ("out", "GD", "sent", transfer.id)
        assert row.dispatch["dispatcher_name"] == "坐席一 王芳"
        dispatch = db.session.get(outbox.ConnectorJob, row.job_id)
        assert (dispatch.operation, dispatch.status) == ("roaming.dispatch", outbox.QUEUED)
        assert db.session.scalar(select(func.count()).select_from(outbox.ConnectorJob).where(
            outbox.ConnectorJob.operation == "roaming.dispatch")) == 1

        # The complaint closed at 已转递归属地, its history naming the transfer case.
        complaint = db.session.get(ProcessInstance, case)
        assert complaint.status == "completed"
        events = instance_events(db.session, case)
        (transferred,) = [e for e in events if e.kind == "roaming_transferred"]
        assert transferred.data["link_id"] == transfer.id and transferred.data["partner"] == "GD"
        assert [e.message for e in events if e.kind == "completed"] == ["已转递归属地"]
        transfer_id, transfer_ref, complaint_ref = transfer.id, transfer.reference, complaint.reference

    complaint_page = browser.get(f"/cases/{case}").get_data(as_text=True)
    link = f'href="/cases/{transfer_id}">{transfer_ref}</a>'
    assert f"已转递归属地省处理：<a {link}（广东联通）" in complaint_page
    # at the top, in the history, and among the caller's other cases (every process)
    assert complaint_page.count(link) == 3
    transfer_page = browser.get(f"/cases/{transfer_id}").get_data(as_text=True)
    assert f'由投诉转来：<a href="/cases/{case}">{complaint_ref}</a>' in transfer_page


def test_a_local_number_choosing_the_transfer_is_refused_on_the_resolution_field(app, client, token):
    from engine import outbox
    from engine.models import HumanTask, ProcessInstance
    from web.extensions import db

    case, triage = _start(client, token, INTAKE)  # 13800000009: YN's own number segment
    browser = _signed_in(app)
    page = browser.get(f"/tasks/{triage}").get_data(as_text=True)
    assert 'value="dispatch"' in page and 'value="transfer_home"' not in page  # not offered

    refused = client.post(f"/api/v1/tasks/{triage}/complete", json={"data": TRANSFER}, headers=token("agent1"))
    body = refused.get_json()
    assert (refused.status_code, body["error"]) == (422, "not_roaming")
    assert set(body["fields"]) == {"resolution"}

    # Through the page: the step is shown again with the reason on the field, in Chinese.
    form = browser.post(f"/tasks/{triage}/complete", data=TRANSFER)
    assert form.status_code == 422
    text = form.get_data(as_text=True)
    field = re.search(r'<div class="field has-error" data-field="resolution">.*?</div>', text, re.DOTALL)
    assert field is not None and "客户号码不属于外省号段，不能转递归属地省处理。" in field.group(0)

    with app.app_context():  # nothing of the refused step was kept
        assert db.session.get(HumanTask, triage).status == "open"
        assert db.session.get(ProcessInstance, case).status == "running"
        assert _transfer_job(db.session, case) is None
        assert db.session.scalar(select(func.count()).select_from(outbox.ConnectorJob).where(
            outbox.ConnectorJob.instance_id == case, outbox.ConnectorJob.element_id == "notify_first_reply")) == 0
    # The other choices still work.
    done = client.post(f"/api/v1/tasks/{triage}/complete", headers=token("agent1"),
                       json={"data": {"resolution": "answer_now", "first_reply": "已答复"}})
    assert done.status_code == 200 and done.get_json()["instance_status"] == "completed"


def test_a_complaint_received_from_a_partner_is_not_transferred_again(app, ctx):
    from engine.errors import ValidationFailed
    from engine.models import open_tasks_of_instance
    from engine.people import user_by_name

    session, engine = ctx
    agent = user_by_name(session, "agent1")
    # The loopback demo answers for 广东 too: a dispatch it received is a GD number's complaint.
    instance = engine.start(session, "complaint", {**ROAMING_INTAKE, "channel": "roaming"}, actor=agent, now=T0,
                            server_data={"roaming_company": "GD", "roaming_serial_no": "MY20261123000009"})
    session.commit()
    (triage,) = open_tasks_of_instance(session, instance.id)
    try:
        engine.complete_task(session, triage.id, TRANSFER, actor=agent, now=T0 + timedelta(minutes=5))
    except ValidationFailed as exc:
        session.rollback()
        assert exc.codes == {"resolution": {"code": "received_from_partner", "params": {}}}
    else:
        raise AssertionError("a received complaint was transferred again")


def _before_the_transfer(xml: str) -> str:
    """The complaint diagram as it was before the transfer branch (the version running cases
    were started on)."""
    xml = re.sub(r"\s*<!-- 漫游投诉.*?</bpmn:endEvent>", "", xml, count=1, flags=re.DOTALL)
    xml = re.sub(r'\s*<bpmn:sequenceFlow id="flow_transfer".*?</bpmn:sequenceFlow>', "", xml, flags=re.DOTALL)
    xml = re.sub(r'\s*<bpmn:sequenceFlow id="flow_(check_transfer|transferred)"[^>]*/>', "", xml)
    xml = re.sub(r"\s*<bpmn:(flowNodeRef|outgoing)>(check_home|transfer_home|end_transferred|flow_transfer)"
                 r"</bpmn:(flowNodeRef|outgoing)>", "", xml)
    xml = re.sub(r'\s*<bpmndi:BPMN(Shape|Edge) id="(check_home|transfer_home|end_transferred|flow_transfer'
                 r'|flow_check_transfer|flow_transferred)_di".*?</bpmndi:BPMN(Shape|Edge)>', "", xml, flags=re.DOTALL)
    assert not re.search(r"check_home|transfer_home|end_transferred|flow_transfer|flow_check_transfer", xml)
    return xml


def test_a_case_waiting_at_first_reply_moves_to_the_version_with_the_transfer(store, operations_catalog):
    import copy
    import json

    from engine import migration, outbox
    from engine.models import ProcessInstance, open_tasks_of_instance
    from engine.people import user_by_name
    from engine.runtime import Engine
    from slas.clocks import SlaListener

    session, _bare = store
    engine = Engine(listeners=[SlaListener()], operations=operations_catalog)
    forms = {p.name: json.loads(p.read_text("utf-8")) for p in (ROOT / "bpmn" / "forms").glob("*.json")}
    old_forms = copy.deepcopy(forms)
    resolution = old_forms["complaint_triage.schema.json"]["properties"]["resolution"]
    resolution["oneOf"] = [c for c in resolution["oneOf"] if c["const"] != "transfer_home"]
    del resolution["x-choice-when"]
    xml = (ROOT / "bpmn" / "complaint.bpmn").read_text("utf-8")
    engine.deploy(session, _before_the_transfer(xml).encode(), old_forms, now=T0)
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "complaint", ROAMING_INTAKE, actor=agent, now=T0)
    session.commit()
    engine.deploy(session, xml.encode(), forms, now=T0)
    session.commit()

    plan = migration.preview(engine, session, instance)
    assert plan.allowed and (plan.from_version, plan.to_version) == (1, 2)
    assert plan.waiting == [{"element_id": "triage", "name": "首次答复"}]
    assert {(c.element_id, c.change) for c in plan.changes} == {
        ("check_home", "added"), ("transfer_home", "added"), ("end_transferred", "added"),
        ("gw_resolution", "changed")}
    migration.migrate(engine, session, instance.id, actor=user_by_name(session, "admin"), now=T0,
                      lock_version=plan.lock_version)
    session.commit()
    engine.workflows.clear()
    session.expire_all()
    (triage,) = open_tasks_of_instance(session, instance.id)
    engine.complete_task(session, triage.id, TRANSFER, actor=agent, now=T0 + timedelta(minutes=5))
    session.commit()
    assert session.get(ProcessInstance, instance.id).definition.version == 2
    jobs = [j.operation for j in session.scalars(select(outbox.ConnectorJob).where(
        outbox.ConnectorJob.instance_id == instance.id))]
    assert "roaming.transfer_complaint" in jobs
