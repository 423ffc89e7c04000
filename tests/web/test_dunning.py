"""Dunning (欠费催缴): a round per billing month from billing's unpaid bills, one ``dunning`` case
per subscriber, IVR calls through the loopback AMI peer within the dunning hours, payments read
from ``kf_payments`` and delivered through the message correlation index, one-way then two-way
suspension orders, the 催费组 task, the malicious-arrears file, and the REST API."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from connectors.billing.schema import bills, payments, service_orders, subscriptions
from engine import outbox
from engine.models import HumanTask, ProcessInstance, open_tasks_of_instance
from engine.people import Group
from engine.workflow_cache import WorkflowCache
from processes import dunning
from processes.dunning import DunningEntry, DunningRound
from processes.file_exchange import FileExchange
from processes.tick import tick

MONTH = "2026-11"
DUE = date(2026, 12, 20)
OPEN_AT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)    # Monday 10:00 in Beijing
NIGHT = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)     # Monday 21:00 in Beijing
ONE_MONTH = datetime(2027, 1, 20, 1, 0, tzinfo=UTC)  # due date + 1 month, 09:00 in Beijing
TWO_MONTHS = datetime(2027, 2, 20, 1, 0, tzinfo=UTC)
SOON = timedelta(seconds=1)


@pytest.fixture(autouse=True)
def _reload_every_step(app):
    """Every step starts from the stored state (no cached workflow)."""
    app.extensions["kefu_engine"].workflows = WorkflowCache(0)


@pytest.fixture
def dun(pbx_app, ctx, billing):
    """(session, engine, the dunning service, three subscribers with unpaid bills of MONTH)."""
    session, engine = ctx
    service = pbx_app.extensions["kefu_dunning"]
    with billing.connect(write=True) as conn:
        subs = conn.execute(select(subscriptions.c.id, subscriptions.c.phone)
                            .where(subscriptions.c.status == "active").order_by(subscriptions.c.id).limit(4)).all()
        next_id = conn.scalar(select(func.max(bills.c.id))) + 1
        rows = [(subs[0], 12345, 0, "unpaid"), (subs[1], 5000, 1000, "partly_paid"),
                (subs[2], 8800, 0, "unpaid"), (subs[3], 3000, 3000, "paid")]
        for offset, (sub, total, paid, status) in enumerate(rows):
            conn.execute(insert(bills).values(id=next_id + offset, subscription_id=sub.id, bill_month=MONTH,
                                              total_fen=total, paid_fen=paid, status=status, due_date=DUE,
                                              issued_at=datetime(2026, 12, 2, 1, 0, tzinfo=UTC)))
    return session, engine, service, [(s.id, s.phone) for s in subs[:3]]


def _pay(gateway, subscription_id: int, amount: int, at: datetime) -> None:
    with gateway.connect(write=True) as conn:
        next_id = (conn.scalar(select(func.max(payments.c.id))) or 0) + 1
        conn.execute(insert(payments).values(id=next_id, subscription_id=subscription_id, paid_at=at,
                                             amount_fen=amount, channel="bank", reference=f"T{next_id}"))


def _orders(gateway, phone: str) -> list[tuple[str, dict]]:
    """The service orders written for ``phone`` since the round opened (the demo has older ones)."""
    with gateway.connect() as conn:
        rows = conn.execute(select(service_orders.c.request_type, service_orders.c.params)
                            .where(service_orders.c.phone == phone, service_orders.c.requested_at >= OPEN_AT)
                            .order_by(service_orders.c.id)).all()
    return [(r.request_type, json.loads(r.params)) for r in rows]


def _entry(session, phone: str) -> DunningEntry:
    session.expire_all()
    return session.scalars(select(DunningEntry).where(DunningEntry.phone == phone)).one()


def _tick(session, engine, service, now):
    report = tick(session, engine, now, dunning=service)
    session.expire_all()
    return report


def test_a_round_opens_from_unpaid_bills_once_per_month_one_case_per_subscriber(dun):
    session, engine, service, subs = dun
    row, created = service.open_round(session, engine, MONTH, OPEN_AT, opened_by="manager1")
    assert created and (row.subscribers, row.amount_due) == (3, 12345 + 4000 + 8800)
    again, created = service.open_round(session, engine, MONTH, OPEN_AT + timedelta(hours=1))
    assert not created and again.id == row.id
    entries = list(session.scalars(select(DunningEntry).where(DunningEntry.round_id == row.id)))
    assert sorted(e.phone for e in entries) == sorted(p for _, p in subs)
    instances = [session.get(ProcessInstance, e.instance_id) for e in entries]
    assert {i.process_key for i in instances} == {"dunning"} and len({i.id for i in instances}) == 3
    assert {i.customer_phone for i in instances} == {p for _, p in subs}
    summary = dunning.round_summary(session, row)
    assert summary["status"] == "open" and summary["stages"]["calling"] == 3
    assert summary["amount_recovered"] == 0


def test_a_large_round_is_opened_in_batches_by_the_tick(dun, monkeypatch):
    session, engine, service, _ = dun
    monkeypatch.setattr(service, "settings", dunning.DunningSettings(hours=service.settings.hours,
                                                                      request_batch=2, tick_batch=2))
    row, _ = service.open_round(session, engine, MONTH, OPEN_AT)
    assert row.status == "opening"
    assert dunning.round_summary(session, row)["stages"]["pending"] == 1
    _tick(session, engine, service, OPEN_AT + SOON)
    row = session.get(DunningRound, row.id)
    assert row.status == "open"
    assert session.scalar(select(func.count()).select_from(DunningEntry)
                          .where(DunningEntry.instance_id.is_not(None))) == 3


def test_the_ivr_call_is_placed_only_within_the_dunning_hours(dun, ami_peer):
    session, engine, service, subs = dun
    service.open_round(session, engine, MONTH, NIGHT)
    _tick(session, engine, service, NIGHT + SOON)
    assert ami_peer.actions("Originate") == []
    morning = datetime(2026, 12, 8, 1, 0, tzinfo=UTC) + SOON  # Tuesday 09:00 in Beijing
    _tick(session, engine, service, morning)
    _tick(session, engine, service, morning)
    originates = ami_peer.actions("Originate")
    assert sorted(a["channel"] for a in originates) == sorted(f"Local/{p}@from-internal" for _, p in subs)
    assert {(a["exten"], a["context"]) for a in originates} == {("dunning", "kefu-ivr")}
    assert _entry(session, subs[0][1]).stage == "waiting"


def test_busy_is_retried_a_bounded_number_of_times_then_called_again_after_the_recall_days(dun, ami_peer):
    session, engine, service, subs = dun
    phone = subs[0][1]
    ami_peer.script_originate(phone, "busy")
    service.open_round(session, engine, MONTH, OPEN_AT)
    now = OPEN_AT
    for _ in range(3):
        _tick(session, engine, service, now)
        now += timedelta(minutes=30) + SOON
    _tick(session, engine, service, now)
    mine = [a for a in ami_peer.actions("Originate") if phone in a["channel"]]
    assert len(mine) == 3 and _entry(session, phone).stage == "waiting"
    ami_peer.script_originate(phone, "answer")
    later = OPEN_AT + timedelta(days=7, hours=2)
    _tick(session, engine, service, later)
    _tick(session, engine, service, later)
    assert len([a for a in ami_peer.actions("Originate") if phone in a["channel"]]) == 4
    assert _entry(session, phone).stage == "overdue"


def test_a_payment_closes_the_case_through_the_correlation_index(dun):
    session, engine, service, subs = dun
    sid, phone = subs[1]
    row, _ = service.open_round(session, engine, MONTH, OPEN_AT)
    _tick(session, engine, service, OPEN_AT + SOON)
    _tick(session, engine, service, OPEN_AT + SOON)  # the calls' results reach the cases
    entry = _entry(session, phone)
    assert engine.waiting_for_message(session, "dunning_paid", phone).id == entry.instance_id
    _pay(billing_gateway(service), sid, 1500, OPEN_AT + timedelta(hours=2))  # not enough
    _tick(session, engine, service, OPEN_AT + timedelta(hours=3))
    assert _entry(session, phone).amount_paid == 1500 and _entry(session, phone).stage == "waiting"
    _pay(billing_gateway(service), sid, 2500, OPEN_AT + timedelta(hours=4))
    _tick(session, engine, service, OPEN_AT + timedelta(hours=5))
    entry = _entry(session, phone)
    instance = session.get(ProcessInstance, entry.instance_id)
    assert instance.status == "completed" and instance.next_timer_at is None
    assert entry.stage == "paid" and entry.amount_paid == 4000
    assert engine.waiting_for_message(session, "dunning_paid", phone) is None
    assert not [j for j in outbox.jobs_of_instance(session, instance.id) if j.status == "queued"]
    assert _orders(billing_gateway(service), phone) == []  # never suspended: nothing to resume
    summary = dunning.round_summary(session, session.get(DunningRound, row.id))
    assert summary["amount_recovered"] == 4000 and summary["stages"]["paid"] == 1


def billing_gateway(service):
    return service.gateway


def _to_one_month(session, engine, service):
    service.open_round(session, engine, MONTH, OPEN_AT)
    _tick(session, engine, service, OPEN_AT + SOON)
    _tick(session, engine, service, OPEN_AT + SOON)
    recall = OPEN_AT + timedelta(days=7, minutes=5)
    _tick(session, engine, service, recall)
    _tick(session, engine, service, recall)
    _tick(session, engine, service, ONE_MONTH + SOON)
    _tick(session, engine, service, ONE_MONTH + SOON)


def test_one_month_overdue_suspends_one_way_once_and_opens_a_task_for_the_dunning_group(dun):
    session, engine, service, subs = dun
    sid, phone = subs[0]
    _to_one_month(session, engine, service)
    _tick(session, engine, service, ONE_MONTH + timedelta(minutes=5))
    assert _orders(service.gateway, phone) == [("suspend", {"mode": "one_way", "reason": "arrears"})]
    entry = _entry(session, phone)
    assert entry.stage == "one_way"
    (task,) = open_tasks_of_instance(session, entry.instance_id)
    assert task.name == "manual_dunning"
    assert session.get(Group, task.group_id).name == "催费组"

    _pay(service.gateway, sid, 12345, ONE_MONTH + timedelta(days=2))
    _tick(session, engine, service, ONE_MONTH + timedelta(days=2, hours=1))
    _tick(session, engine, service, ONE_MONTH + timedelta(days=2, hours=1))
    assert _orders(service.gateway, phone) == [("suspend", {"mode": "one_way", "reason": "arrears"}),
                                               ("resume", {"note": "欠费已缴清"})]
    instance = session.get(ProcessInstance, entry.instance_id)
    assert instance.status == "completed"
    assert session.get(HumanTask, task.id).status != "open"
    assert _entry(session, phone).stage == "paid"


def test_two_months_overdue_suspends_two_way_and_files_the_malicious_arrears_entry(dun):
    session, engine, service, subs = dun
    _, phone = subs[2]
    _to_one_month(session, engine, service)
    _tick(session, engine, service, TWO_MONTHS + SOON)
    _tick(session, engine, service, TWO_MONTHS + SOON)
    assert _orders(service.gateway, phone) == [
        ("suspend", {"mode": "one_way", "reason": "arrears"}), ("suspend", {"mode": "two_way", "reason": "arrears"})]
    entry = _entry(session, phone)
    assert entry.stage == "two_way"
    (upload,) = [j for j in outbox.jobs_of_instance(session, entry.instance_id) if j.operation == "ftp.upload"]
    assert upload.params["name"] == f"EQDA_202611_{phone}.txt"
    text = base64.b64decode(upload.params["content_b64"]).decode()
    assert f"{phone}|{MONTH}|8800|2026-12-20|two_way|" in text
    (exchange,) = session.scalars(select(FileExchange).where(FileExchange.instance_id == entry.instance_id))
    assert exchange.kind == "malicious_arrears" and exchange.direction == "up"
    assert open_tasks_of_instance(session, entry.instance_id) == []  # the manual task ended with the month


def test_the_api_opens_a_round_once_and_reports_its_figures(dun, client, token):
    _session, _engine, _service, _subs = dun
    first = client.post("/api/v1/dunning/rounds", json={"month": MONTH}, headers=token("manager1"))
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["month"] == MONTH and body["subscribers"] == 3 and body["amount_due"] == 25145
    again = client.post("/api/v1/dunning/rounds", json={"month": MONTH}, headers=token("admin"))
    assert again.status_code == 200 and again.get_json()["id"] == body["id"]
    bad = client.post("/api/v1/dunning/rounds", json={"month": "2026-13"}, headers=token("manager1"))
    assert bad.status_code == 422 and "month" in bad.get_json()["fields"]
    assert client.post("/api/v1/dunning/rounds", json={"month": MONTH},
                       headers=token("agent1")).status_code == 403
    got = client.get(f"/api/v1/dunning/rounds/{body['id']}", headers=token("manager1"))
    assert got.status_code == 200
    figures = got.get_json()
    assert figures["stages"]["calling"] == 3 and figures["amount_recovered"] == 0
    assert set(figures) == {"id", "month", "status", "subscribers", "amount_due", "amount_recovered", "stages"}
    assert client.get("/api/v1/dunning/rounds/999", headers=token("manager1")).status_code == 404
    assert client.get(f"/api/v1/dunning/rounds/{body['id']}", headers=token("agent1")).status_code == 403


def test_the_scheduler_opens_last_months_round_on_the_dunning_day(dun):
    session, engine, service, _ = dun
    _tick(session, engine, service, datetime(2026, 12, 4, 2, 0, tzinfo=UTC))
    assert session.scalar(select(DunningRound.id).where(DunningRound.month == MONTH)) is None
    _tick(session, engine, service, datetime(2026, 12, 5, 2, 0, tzinfo=UTC))
    row = session.scalars(select(DunningRound).where(DunningRound.month == MONTH)).one()
    assert row.subscribers == 3 and row.opened_by is None


def test_the_managers_page_lists_rounds_in_chinese_with_amounts_in_yuan(dun, client):
    session, engine, service, _ = dun
    service.open_round(session, engine, MONTH, OPEN_AT)
    client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    assert client.get("/dunning").status_code == 403
    client.post("/logout")
    client.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    page = client.get("/dunning").get_data(as_text=True)
    assert "欠费催缴批次" in page and MONTH in page and "251.45" in page and "语音催缴 3" in page
    assert "calling" not in page and "amount_due" not in page
