"""Roaming complaint transfer (漫游投诉转递, DESIGN.md "Roaming complaint transfer"): signing and
the receiving side's checks on one deployment, then two real deployments (two servers, two
databases, two company codes) exchanging dispatches and receipts end to end — a partner down for
an hour, duplicate delivery, a late receipt."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from connectors.base import PermanentError, TransientError
from connectors.roaming import PartnerLink, RoamingClient, encode, signing
from tests.conftest import ROOT

SECRET = "test-secret-YN-GD"
GD_PHONE = "13000200001"   # homed in 广东 (GD) by the partners file below
YN_PHONE = "13800000009"   # no partner homes it
INTAKE = {"customer_phone": GD_PHONE, "complainant_name": "王先生", "contact_phone": GD_PHONE,
          "channel": "phone", "category": "network", "description": "在昆明漫游期间无法上网"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _partners_file(path: Path, entries: list[dict[str, Any]]) -> str:
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _make_app(tmp: Path, company: str, partners: str):
    """A deployment: its own SQLite database, company code and partners file, the bundled
    diagrams and the demo accounts."""
    from web import create_app
    from web.demo import create_accounts
    from web.extensions import db

    tmp.mkdir(parents=True, exist_ok=True)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'kefu.db'}",
                      "WTF_CSRF_ENABLED": False, "KEFU_BILLING_URL": f"sqlite:///{tmp / 'billing.db'}",
                      "KEFU_BILLING_DEMO": False, "KEFU_COMPANY_CODE": company, "KEFU_PARTNERS": partners})
    now = datetime.now(UTC)
    with app.app_context():
        db.create_all()
        create_accounts(db.session, now)
        app.extensions["kefu_engine"].deploy_directory(db.session, ROOT / "bpmn", now=now)
        db.session.commit()
    return app


def _dispatch(serial: str = "MY20261123000001", **changes: str) -> dict[str, str]:
    now = datetime.now(UTC)
    body = {"company_code": "GD", "serial_no": serial, "to_company": "YN", "dispatcher_name": "坐席 李明",
            "dispatcher_phone": "13000200999", "customer_phone": "13008710001", "complainant_name": "张先生",
            "complainant_phone": "13008710001", "category": "billing", "problem": "在广州漫游时话费异常",
            "first_reply_due": (now + timedelta(hours=2)).isoformat(),
            "final_reply_due": (now + timedelta(days=3)).isoformat(), "dispatched_at": now.isoformat()}
    return {**body, **changes}


def _signed(client, path: str, body: dict[str, Any] | bytes, *, company: str = "GD", secret: str = SECRET,
            at: float | None = None, signature: str | None = None):
    raw = body if isinstance(body, bytes) else encode(body)
    headers = signing.headers(company, secret, raw, now=at)
    if signature is not None:
        headers[signing.SIGNATURE_HEADER] = signature
    return client.post(path, data=raw, headers=headers)


@pytest.fixture
def yn(tmp_path, monkeypatch):
    """One deployment (YN) with one partner (GD) that is not running."""
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    partners = _partners_file(tmp_path / "partners.json", [
        {"code": "GD", "name": "广东联通", "url": "http://127.0.0.1:9", "secret": SECRET, "prefixes": ["1300020"]}])
    app = _make_app(tmp_path / "yn", "YN", partners)
    yield app
    from web.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _token(client, user: str = "agent1") -> dict[str, str]:
    token = client.post("/api/v1/auth/token", json={"username": user, "password": "kefu-demo"}).get_json()["token"]
    return {"Authorization": f"Bearer {token}"}


# -- signing -------------------------------------------------------------------------------------
def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    import hashlib
    import hmac

    body = encode({"a": "中文"})
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signing.sign("k", 1700000000, body) == expected == expected.lower()
    assert signing.valid("k", "1700000000", body, expected)
    assert signing.valid("k", "1700000000", body, expected.upper())  # hex is hex
    assert not signing.valid("k", "1700000001", body, expected)
    assert not signing.valid("other", "1700000000", body, expected)
    assert not signing.valid("k", "1700000000", body + b" ", expected)
    assert signing.fresh("1000", now=1300) and signing.fresh("1600", now=1300)
    assert not signing.fresh("999", now=1300) and not signing.fresh("1601", now=1300)
    assert not signing.fresh(None) and not signing.fresh("12abc")


def test_the_docs_worked_example_signatures_are_right():
    """docs/roaming-exchange.md cannot drift: every example's signature is recomputed here."""
    text = (ROOT / "docs" / "roaming-exchange.md").read_text(encoding="utf-8")
    examples = re.findall(r"^secret\s+(\S+)\ntimestamp\s+(\d+)\nbody\s+(\{.*\})\nsignature\s+([0-9a-f]{64})$",
                          text, re.MULTILINE)
    assert len(examples) == 2
    for secret, timestamp, body, signature in examples:
        assert signing.sign(secret, timestamp, body.encode("utf-8")) == signature
        fields = json.loads(body)
        assert len(fields) in (13, 7)
        assert encode(fields) == body.encode("utf-8")  # the example is what the client sends
        assert f"X-Kefu-Signature: {signature}" in text or len(fields) == 7


# -- the receiving side ------------------------------------------------------------------------------
def test_forged_stale_unknown_and_malformed_requests_are_refused(yn):
    client = yn.test_client()
    path = "/api/v1/roaming/dispatches"
    forged = _signed(client, path, _dispatch(), signature="0" * 64)
    assert (forged.status_code, forged.get_json()["error"]) == (401, "bad_signature")
    wrong_key = _signed(client, path, _dispatch(), secret="not-the-secret")
    assert (wrong_key.status_code, wrong_key.get_json()["error"]) == (401, "bad_signature")
    now = time.time()
    for skew in (-301, 301):
        stale = _signed(client, path, _dispatch(), at=now + skew)
        assert (stale.status_code, stale.get_json()["error"]) == (401, "stale_timestamp")
    unknown = _signed(client, path, _dispatch(), company="SH")
    assert (unknown.status_code, unknown.get_json()["error"]) == (403, "unknown_company")
    missing = _signed(client, path, {k: v for k, v in _dispatch().items() if k != "problem"})
    assert missing.status_code == 422 and set(missing.get_json()["fields"]) == {"problem"}
    bad = _signed(client, path, _dispatch(category="weather", final_reply_due="tomorrow"))
    assert bad.status_code == 422 and set(bad.get_json()["fields"]) == {"category", "final_reply_due"}
    assert _signed(client, path, b"not json").status_code == 422
    elsewhere = _signed(client, path, _dispatch(to_company="BJ"))
    assert elsewhere.status_code == 422 and "to_company" in elsewhere.get_json()["fields"]
    impostor = _signed(client, path, _dispatch(company_code="BJ"))
    assert impostor.status_code == 422 and "company_code" in impostor.get_json()["fields"]
    # Just inside the 300 s window is fine.
    assert _signed(client, path, _dispatch(), at=now - 299).status_code == 200


def test_a_dispatch_is_acknowledged_once_and_starts_one_complaint(yn):
    from engine.models import ProcessInstance
    from processes.roaming import RoamingTransfer
    from web.extensions import db

    client = yn.test_client()
    body = _dispatch()
    first = _signed(client, "/api/v1/roaming/dispatches", body)
    assert first.status_code == 200 and first.get_json() == {"ack": "ok", "serial_no": body["serial_no"]}
    again = _signed(client, "/api/v1/roaming/dispatches", body)  # a duplicate delivery
    assert again.status_code == 200 and again.get_json() == first.get_json()
    with yn.app_context():
        rows = list(db.session.scalars(select(RoamingTransfer)))
        assert [(r.direction, r.company_code, r.serial_no, r.status) for r in rows] == [
            ("in", "GD", body["serial_no"], "acknowledged")]
        assert db.session.scalar(select(func.count()).select_from(ProcessInstance)
                                 .where(ProcessInstance.process_key == "complaint")) == 1
        instance = db.session.get(ProcessInstance, rows[0].instance_id)
        data = yn.extensions["kefu_engine"].workflow_data(db.session, instance)
        assert (data["channel"], data["roaming_serial_no"], data["final_reply_due"]) == (
            "roaming", body["serial_no"], body["final_reply_due"])
        from engine.models import open_tasks_of_instance

        (triage,) = open_tasks_of_instance(db.session, instance.id)
        # The first-reply step is due by the dispatch's first-reply deadline (it is earlier than 2 h).
        assert abs((triage.due_at - datetime.fromisoformat(body["first_reply_due"])).total_seconds()) < 2
    items = client.get("/api/v1/roaming/transfers", headers=_token(client)).get_json()["items"]
    assert [(i["direction"], i["partner"], i["status"]) for i in items] == [("in", "GD", "acknowledged")]


def test_a_receipt_for_an_unknown_dispatch_is_404(yn):
    client = yn.test_client()
    receipt = {"company_code": "GD", "dispatch_company_code": "YN", "dispatch_serial_no": "MY20990101000001",
               "responder_name": "坐席 李明", "responder_phone": "13000200999", "result": "已处理",
               "replied_at": datetime.now(UTC).isoformat()}
    response = _signed(client, "/api/v1/roaming/receipts", receipt)
    assert (response.status_code, response.get_json()["error"]) == (404, "unknown_dispatch")
    short = _signed(client, "/api/v1/roaming/receipts", {**receipt, "result": ""})
    assert short.status_code == 422 and set(short.get_json()["fields"]) == {"result"}


def test_starting_a_transfer_needs_a_roaming_number_and_queues_the_dispatch(yn):
    from engine import outbox
    from processes.roaming import RoamingTransfer
    from slas.models import clocks_of_instance
    from web.extensions import db

    client = yn.test_client()
    agent = _token(client)
    local = client.post("/api/v1/processes/roaming_transfer/instances",
                        json={"data": {**INTAKE, "customer_phone": YN_PHONE}}, headers=agent)
    assert (local.status_code, local.get_json()["error"]) == (422, "not_roaming")
    started = client.post("/api/v1/processes/roaming_transfer/instances", json={"data": INTAKE}, headers=agent)
    assert started.status_code == 201, started.get_json()
    reference = started.get_json()["reference"]
    with yn.app_context():
        (row,) = db.session.scalars(select(RoamingTransfer))
        assert (row.direction, row.partner, row.serial_no, row.status) == ("out", "GD", reference, "sent")
        assert set(row.dispatch) == {"company_code", "serial_no", "to_company", "dispatcher_name",
                                     "dispatcher_phone", "customer_phone", "complainant_name",
                                     "complainant_phone", "category", "problem", "first_reply_due",
                                     "final_reply_due", "dispatched_at"}
        assert row.dispatch["dispatcher_name"] == "坐席一 王芳" and row.dispatch["to_company"] == "GD"
        job = db.session.get(outbox.ConnectorJob, row.job_id)
        assert (job.operation, job.key, job.params["partner"]) == (
            "roaming.dispatch", f"roaming-dispatch-YN-{reference}", "GD")
        titles = sorted(c.title for c in clocks_of_instance(db.session, row.instance_id))
        assert titles == ["归属地最终答复时限（广东联通）", "归属地首次答复时限（广东联通）"]
    # Agents see the transfer; a department handler may not; managers see the statistics page.
    assert client.get("/api/v1/roaming/transfers", headers=agent).get_json()["items"][0]["status"] == "sent"
    assert client.get("/api/v1/roaming/transfers", headers=_token(client, "net1")).status_code == 403


class _Answer(BaseHTTPRequestHandler):
    """A partner that answers every POST with the status and body the test set."""

    reply: tuple[int, dict[str, Any]] = (200, {"ack": "ok", "serial_no": "S1"})
    seen: list[dict[str, str]] = []  # noqa: RUF012 - the test's log

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        _Answer.seen.append({**{k: v for k, v in self.headers.items()}, "body": raw.decode()})
        status, body = _Answer.reply
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return


def test_the_client_signs_and_sorts_answers_into_retry_or_refusal():
    server = HTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        client = RoamingClient("YN", lambda: {"GD": PartnerLink("GD", url, SECRET)}, timeout=2)
        body = {"company_code": "YN", "serial_no": "S1"}
        assert client.post("GD", "/api/v1/roaming/dispatches", body)["ack"] == "ok"
        sent = _Answer.seen[-1]
        assert sent["X-Kefu-Company"] == "YN"
        assert signing.valid(SECRET, sent["X-Kefu-Timestamp"], sent["body"].encode(), sent["X-Kefu-Signature"])
        for status, error, kind in ((503, "", TransientError), (429, "", TransientError),
                                    (401, "stale_timestamp", TransientError), (401, "bad_signature", PermanentError),
                                    (422, "validation_failed", PermanentError), (404, "unknown_dispatch", PermanentError),
                                    (200, "", PermanentError)):
            _Answer.reply = (status, {"error": error} if error or status != 200 else {"nothing": True})
            with pytest.raises(kind):
                client.post("GD", "/api/v1/roaming/dispatches", body)
        with pytest.raises(PermanentError):
            client.post("BJ", "/api/v1/roaming/dispatches", body)  # not a partner
    finally:
        _Answer.reply = (200, {"ack": "ok", "serial_no": "S1"})
        server.shutdown()
        server.server_close()
    down = RoamingClient("YN", lambda: {"GD": PartnerLink("GD", f"http://127.0.0.1:{_free_port()}", SECRET)})
    with pytest.raises(TransientError):
        down.post("GD", "/api/v1/roaming/dispatches", {"company_code": "YN", "serial_no": "S1"})


def test_the_loopback_demo_exchanges_with_itself(tmp_path, monkeypatch):
    """Without KEFU_PARTNERS every partner is this server: it sends, receives and answers."""
    from processes.roaming_partners import load_partners

    partners = load_partners("YN", None, "http://127.0.0.1:5000")
    assert partners.loopback and partners.home_of(GD_PHONE).code == "GD"
    assert partners.home_of("+86" + GD_PHONE).code == "GD"
    assert partners.home_of("13008710001") is None  # YN's own segment: not roaming
    assert partners.answers_for("GD") and partners.entries["YN"].url == "http://127.0.0.1:5000"


# -- two real deployments ------------------------------------------------------------------------
@dataclass
class Deployment:
    app: Any
    url: str
    port: int
    server: Any = None

    def start(self) -> Deployment:
        from waitress.server import create_server

        self.server = create_server(self.app, host="127.0.0.1", port=self.port, threads=4)
        threading.Thread(target=self.server.run, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def tick(self, at: datetime) -> list[tuple[int, int, str]]:
        """One tick as of ``at``; the escalations it raised as (case, level, target)."""
        from processes.tick import tick
        from web.extensions import db
        from web.scheduler import tick_settings

        with self.app.app_context():
            try:
                report = tick(db.session, self.app.extensions["kefu_engine"], at, **tick_settings(self.app))
                return [(e.instance_id, e.level, e.target) for e in report.scan.escalations]
            finally:
                db.session.remove()

    def api(self, user: str = "agent1") -> requests.Session:
        http = requests.Session()
        token = http.post(self.url + "/api/v1/auth/token", json={"username": user, "password": "kefu-demo"},
                          timeout=10).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        return http

    def transfers(self) -> list[dict[str, Any]]:
        return self.api().get(self.url + "/api/v1/roaming/transfers", timeout=10).json()["items"]


@pytest.fixture
def pair(tmp_path, monkeypatch) -> Iterator[tuple[Deployment, Deployment]]:
    """Yunnan (YN, visited) and Guangdong (GD, home) on loopback; GD's server is not started."""
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    yn_port, gd_port = _free_port(), _free_port()
    yn_file = _partners_file(tmp_path / "yn-partners.json", [
        {"code": "GD", "name": "广东联通", "url": f"http://127.0.0.1:{gd_port}", "secret": SECRET,
         "prefixes": ["1300020"]}])
    gd_file = _partners_file(tmp_path / "gd-partners.json", [
        {"code": "YN", "name": "云南联通", "url": f"http://127.0.0.1:{yn_port}", "secret": SECRET,
         "prefixes": ["1300871"]}])
    yn = Deployment(_make_app(tmp_path / "yn", "YN", yn_file), f"http://127.0.0.1:{yn_port}", yn_port).start()
    gd = Deployment(_make_app(tmp_path / "gd", "GD", gd_file), f"http://127.0.0.1:{gd_port}", gd_port)
    yield yn, gd
    from web.extensions import db

    for side in (yn, gd):
        side.stop()
        with side.app.app_context():
            db.session.remove()
            db.engine.dispose()


def _open_task(side: Deployment, instance_id: int, user: str = "agent1") -> dict[str, Any]:
    items = side.api(user).get(f"{side.url}/api/v1/tasks?scope=group", timeout=10).json()["items"]
    return next(t for t in items if t["instance_id"] == instance_id)


def _complete(side: Deployment, task_id: int, data: dict[str, Any], user: str = "agent1") -> None:
    http = side.api(user)
    assert http.post(f"{side.url}/api/v1/tasks/{task_id}/claim", timeout=10).status_code == 200
    response = http.post(f"{side.url}/api/v1/tasks/{task_id}/complete", json={"data": data}, timeout=10)
    assert response.status_code == 200, response.text


@pytest.mark.slow
def test_two_deployments_exchange_a_dispatch_and_a_receipt_with_the_partner_down_for_an_hour(pair):
    yn, gd = pair
    agent = yn.api()
    started = agent.post(yn.url + "/api/v1/processes/roaming_transfer/instances", json={"data": INTAKE}, timeout=10)
    assert started.status_code == 201, started.text
    case, serial = started.json()["id"], started.json()["reference"]

    # Guangdong is down: the dispatch is retried with backoff through an hour of ticks.
    t0 = datetime.now(UTC)
    for minutes in range(0, 70, 10):
        yn.tick(t0 + timedelta(minutes=minutes))
    (out,) = yn.transfers()
    assert (out["serial_no"], out["status"]) == (serial, "sent")
    with yn.app.app_context():
        from engine import outbox
        from web.extensions import db

        assert outbox.open_incidents(db.session) == []
        jobs = list(db.session.scalars(select(outbox.ConnectorJob).where(
            outbox.ConnectorJob.operation == "roaming.dispatch")))
        assert len(jobs) == 1 and jobs[0].attempts >= 6 and "not reachable" in (jobs[0].last_error or "")
        db.session.remove()

    # Guangdong comes up: the next due retry is acknowledged and Guangdong opens its own case.
    gd.start()
    yn.tick(t0 + timedelta(hours=2))
    assert yn.transfers()[0]["status"] == "acknowledged"
    (incoming,) = gd.transfers()
    assert (incoming["direction"], incoming["partner"], incoming["status"]) == ("in", "YN", "acknowledged")
    assert incoming["final_reply_due"] == out["final_reply_due"]
    home_case = incoming["instance_id"]

    # The sender's case page shows the other side's state in words.
    page = _page(yn, f"/cases/{case}")
    assert "广东联通：已确认收到派单，正在处理" in page

    # Guangdong answers at once (first reply closes the complaint): the receipt goes back.
    triage = _open_task(gd, home_case)
    _complete(gd, triage["id"], {"resolution": "answer_now", "first_reply": "已为客户开通数据漫游，客户确认可以上网。"})
    gd.tick(datetime.now(UTC))
    (answered,) = yn.transfers()
    assert answered["status"] == "answered" and answered["receipt"]["result"].startswith("已为客户开通")
    assert set(answered["receipt"]) == {"company_code", "dispatch_company_code", "dispatch_serial_no",
                                        "responder_name", "responder_phone", "result", "replied_at"}
    assert answered["receipt"]["responder_name"] == "坐席一 王芳"
    gd.tick(datetime.now(UTC))
    assert gd.transfers()[0]["status"] == "closed"  # Yunnan gave its success mark for the receipt

    # Yunnan's case continues with the receipt's result: reply to the customer and close.
    reply = _open_task(yn, case)
    _complete(yn, reply["id"], {"final_reply": "归属地已为您开通数据漫游。", "reply_method": "phone",
                                "satisfaction": "satisfied"})
    assert yn.transfers()[0]["status"] == "closed"
    assert "广东联通：已处理完毕并发回回单" in _page(yn, f"/cases/{case}")

    # The same dispatch delivered again: the same success mark, no second case.
    with yn.app.app_context():
        from processes.roaming import RoamingTransfer
        from web.extensions import db

        body = db.session.scalar(select(RoamingTransfer)).dispatch
        db.session.remove()
    raw = encode(body)
    again = requests.post(gd.url + "/api/v1/roaming/dispatches", data=raw, timeout=10,
                          headers=signing.headers("YN", SECRET, raw))
    assert again.status_code == 200 and again.json() == {"ack": "ok", "serial_no": serial}
    assert len(gd.transfers()) == 1
    stats = _page(yn, "/roaming", user="manager1")
    assert "广东联通" in stats and "按时答复" in stats


@pytest.mark.slow
def test_a_late_receipt_is_escalated_at_the_sender_and_still_accepted(pair):
    yn, gd = pair
    gd.start()
    now = datetime.now(UTC)
    data = {**INTAKE, "first_reply_due": (now + timedelta(minutes=30)).isoformat(),
            "final_reply_due": (now + timedelta(hours=1)).isoformat()}
    started = yn.api().post(yn.url + "/api/v1/processes/roaming_transfer/instances", json={"data": data}, timeout=10)
    assert started.status_code == 201, started.text
    case = started.json()["id"]
    yn.tick(datetime.now(UTC))
    (incoming,) = gd.transfers()

    # Two hours on, Guangdong has not answered: both partner clocks escalate on Yunnan's side.
    escalated = yn.tick(now + timedelta(hours=2))
    levels = sorted((level, target) for instance, level, target in escalated if instance == case)
    assert levels == [(1, "leader"), (1, "leader"), (2, "manager")]

    # Guangdong answers three hours late; Yunnan accepts the receipt and marks it late.
    later = now + timedelta(hours=3)
    with gd.app.app_context():
        from engine.models import open_tasks_of_instance
        from engine.people import user_by_name
        from web.extensions import db

        eng = gd.app.extensions["kefu_engine"]
        (triage,) = open_tasks_of_instance(db.session, incoming["instance_id"])
        agent = user_by_name(db.session, "agent1")
        eng.claim(db.session, triage.id, agent, later)
        eng.complete_task(db.session, triage.id, {"resolution": "answer_now", "first_reply": "已核实并退费。"},
                          actor=agent, now=later)
        db.session.commit()
        db.session.remove()
    gd.tick(later)
    (out,) = yn.transfers()
    assert out["status"] == "answered" and out["late"] is True
    assert out["receipt"]["result"] == "已核实并退费。"
    with yn.app.app_context():
        from slas.models import Escalation, clocks_of_instance
        from web.extensions import db

        assert {c.state for c in clocks_of_instance(db.session, case) if c.task_id is None} == {"stopped"}
        assert all(e.cleared_at is not None for e in db.session.scalars(
            select(Escalation).where(Escalation.instance_id == case)) if e.task_id is None)
        data = yn.app.extensions["kefu_engine"].workflow_data(db.session, db.session.get(
            __import__("engine.models", fromlist=["ProcessInstance"]).ProcessInstance, case))
        assert data["receipt_late"] is True and data["home_result"] == "已核实并退费。"
        db.session.remove()
    assert "逾期" in _page(yn, f"/cases/{case}")
    gd.tick(later)
    assert gd.transfers()[0]["status"] == "closed"


def _page(side: Deployment, path: str, user: str = "agent1") -> str:
    browser = requests.Session()
    login = browser.get(side.url + "/login", timeout=10).text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', login)
    form = {"username": user, "password": "kefu-demo", **({"csrf_token": csrf.group(1)} if csrf else {})}
    browser.post(side.url + "/login", data=form, timeout=10)
    response = browser.get(side.url + path, timeout=10)
    assert response.status_code == 200, response.text[:500]
    return response.text
