"""Screen pop (来电弹屏) and call records: the PBX wiring of the running product against the
loopback AMI peer over real TCP, the SSE stream, the CTI API and linking a started case to its call."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from engine import outbox, worker
from tests.conftest import FAST_AMI, T0

if TYPE_CHECKING:
    from flask import Flask

    from peers.ami import AmiPeer

CALLER = "13800000001"


def wait_until(predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)




def run_jobs(app: Flask, now: Any) -> worker.RunReport:
    from web.extensions import db

    with app.app_context():
        report = app.extensions["kefu_engine"].run_jobs(db.session, now)
        db.session.commit()
        return report


def enqueue_originate(app: Flask, phone: str = CALLER) -> int:
    from web.extensions import db

    with app.app_context():
        job = outbox.enqueue(db.session, "pbx.originate", {"agent_extension": "8001", "phone": phone},
                             key=f"test-{phone}", now=T0)
        db.session.commit()
        return job.id


def job_state(app: Flask, job_id: int) -> outbox.ConnectorJob:
    from web.extensions import db

    with app.app_context():
        job = db.session.get(outbox.ConnectorJob, job_id)
        db.session.expunge(job)
        return job


# --------------------------------------------------------------------------- the PBX wiring
def test_app_configured_with_ami_url_originates_through_the_outbox(db_url: str, tmp_path: Any,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    ami_peer: AmiPeer) -> None:
    """KEFU_AMI_URL in the app's config is all it takes: the job dials through the peer."""
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    from web import create_app
    from web.demo import create_accounts
    from web.extensions import db

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "KEFU_AMI_URL": ami_peer.url,
                      "KEFU_AMI_OPTIONS": FAST_AMI, "KEFU_BILLING_URL": f"sqlite:///{tmp_path / 'b.db'}"})
    try:
        with app.app_context():
            db.create_all()
            create_accounts(db.session, T0)
            db.session.commit()
        job_id = enqueue_originate(app)
        report = run_jobs(app, T0)
        assert report.done == 1, report
        job = job_state(app, job_id)
        assert job.status == "done" and job.result["outcome"] == "answered"
        sent = ami_peer.actions("Originate")[-1]
        assert sent["channel"] == "PJSIP/8001" and sent["exten"] == CALLER
    finally:
        app.extensions["kefu_connectors"].close()
        with app.app_context():
            db.engine.dispose()


def test_without_ami_url_originate_jobs_wait_and_retry(app: Flask) -> None:
    job_id = enqueue_originate(app)
    report = run_jobs(app, T0)
    assert report.retried == 1, report
    job = job_state(app, job_id)
    assert job.status == "queued" and "KEFU_AMI_URL is not configured" in (job.last_error or "")


def pbx_of(app: Flask) -> Any:
    return app.extensions["kefu_pbx"]


def rows(app: Flask, model: Any, *where: Any) -> list[Any]:
    from web.extensions import db

    with app.app_context():
        found = list(db.session.scalars(select(model).where(*where).order_by(model.id)))
        for row in found:
            db.session.expunge(row)
        return found


def user_id(app: Flask, username: str) -> int:
    from engine.people import user_by_name
    from web.extensions import db

    with app.app_context():
        return user_by_name(db.session, username).id


@pytest.fixture
def linked_app(pbx_app: Flask) -> Flask:
    """``pbx_app`` with its AMI link up, as ``serve`` starts it."""
    from web.connectors_setup import start_links

    start_links(pbx_app)
    assert pbx_of(pbx_app).client().wait_connected(2.0)
    return pbx_app


def test_outbound_call_of_a_job_is_recorded_when_it_ends(linked_app: Flask) -> None:
    from processes.telephony import Call

    enqueue_originate(linked_app, "13800000005")
    assert run_jobs(linked_app, T0).done == 1
    call = wait_until(lambda: rows(linked_app, Call, Call.ended_at.is_not(None)), timeout=3)[0]
    assert (call.direction, call.customer_number, call.extension, call.outcome) == \
        ("outbound", "13800000005", "8001", "answered")
    assert call.agent_id == user_id(linked_app, "agent1")


# --------------------------------------------------------------------------- inbound over AMI
def test_inbound_ringing_records_the_call_and_pops_for_that_agent_only(linked_app: Flask,
                                                                        ami_peer: AmiPeer) -> None:
    from processes.telephony import Call, ScreenPop

    agent1, agent2 = user_id(linked_app, "agent1"), user_id(linked_app, "agent2")
    call_id = ami_peer.ring_inbound(CALLER, "8001")
    pops = wait_until(lambda: rows(linked_app, ScreenPop))
    assert [(p.user_id, p.kind, p.title) for p in pops] == [(agent1, "inbound_call", f"来电 {CALLER}")]
    call = rows(linked_app, Call)[0]
    assert (call.call_id, call.direction, call.customer_number, call.extension, call.agent_id, call.source) == \
        (call_id, "inbound", CALLER, "8001", agent1, "ami")
    assert call.answered_at is None and call.ended_at is None
    assert pops[0].call_id == call.id
    assert pops[0].url.startswith(f"/customers/{CALLER}?") and f"call={call.id}" in pops[0].url
    assert pops[0].payload["caller"] == CALLER

    ami_peer.answer(call_id)
    ami_peer.hangup(call_id)
    done = wait_until(lambda: rows(linked_app, Call, Call.ended_at.is_not(None)))[0]
    assert done.outcome == "answered" and done.answered_at is not None
    assert done.hangup_cause == "16 Normal Clearing"
    assert done.recording_ref == f"/var/spool/asterisk/monitor/{call_id}.wav"
    assert rows(linked_app, ScreenPop, ScreenPop.user_id == agent2) == []


def test_a_caller_who_gives_up_is_recorded_as_abandoned(linked_app: Flask, ami_peer: AmiPeer) -> None:
    from processes.telephony import Call

    call_id = ami_peer.ring_inbound(CALLER, "8002")
    wait_until(lambda: rows(linked_app, Call))
    ami_peer.hangup(call_id)
    call = wait_until(lambda: rows(linked_app, Call, Call.ended_at.is_not(None)))[0]
    assert (call.outcome, call.answered_at, call.agent_id) == ("abandoned", None, user_id(linked_app, "agent2"))


def test_link_drop_during_a_call_reconnects_and_later_events_are_processed(linked_app: Flask,
                                                                           ami_peer: AmiPeer) -> None:
    from processes.telephony import Call, ScreenPop

    pbx = pbx_of(linked_app)
    call_id = ami_peer.ring_inbound(CALLER, "8001")
    wait_until(lambda: rows(linked_app, ScreenPop))
    ami_peer.drop_connections()
    wait_until(lambda: pbx.client().logins >= 2 and pbx.client().connected)
    ami_peer.answer(call_id)
    ami_peer.hangup(call_id)
    call = wait_until(lambda: rows(linked_app, Call, Call.ended_at.is_not(None)))[0]
    assert call.call_id == call_id and call.outcome == "answered"
    ami_peer.ring_inbound("13800000002", "8001")
    assert len(wait_until(lambda: len(rows(linked_app, ScreenPop)) == 2 and rows(linked_app, ScreenPop))) == 2


def test_refused_login_keeps_the_product_running_and_jobs_retry_until_fixed(app: Flask,
                                                                           client: Any) -> None:
    from peers.ami import AmiPeer
    from web.connectors_setup import start_links, use_pbx

    peer = AmiPeer(secret="right", auth_fail_delay=0.05).start()
    app.config["KEFU_AMI_OPTIONS"] = {**FAST_AMI, "connect_timeout": 0.3}
    pbx = use_pbx(app, peer.url.replace(":right@", ":wrong@"))
    try:
        start_links(app)
        job_id = enqueue_originate(app)
        assert run_jobs(app, T0).retried == 1
        job = job_state(app, job_id)
        assert job.status == "queued" and "not connected" in job.last_error
        client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
        assert client.get("/calls").status_code == 200  # the product runs on
        peer.secret = "wrong"  # the PBX account is fixed: the next reconnection logs in
        assert pbx.client().wait_connected(2.0)
        assert run_jobs(app, T0 + timedelta(hours=1)).done == 1
        assert job_state(app, job_id).result["outcome"] == "answered"
    finally:
        pbx.close()
        peer.stop()


# --------------------------------------------------------------------------- the browser's stream
def signed_in(app: Flask, username: str) -> Any:
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": "kefu-demo"})
    assert response.status_code == 302
    return client


class Stream:
    """Reads an SSE response of the test client in a thread; ``text`` grows as chunks arrive."""

    def __init__(self, client: Any, url: str = "/calls/stream", **kwargs: Any) -> None:
        import threading

        self.chunks: list[str] = []
        self.response = client.get(url, buffered=False, **kwargs)
        assert self.response.status_code == 200
        assert self.response.mimetype == "text/event-stream"
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for chunk in self.response.response:
            self.chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def pops(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(block.split("data: ", 1)[1]) for block in self.text.split("\n\n")
                if "event: pop" in block]

    def finish(self, timeout: float = 5.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream did not end"


def test_stream_delivers_the_pop_to_the_addressed_agent_only(linked_app: Flask, ami_peer: AmiPeer) -> None:
    linked_app.config["KEFU_POP_STREAM_SECONDS"] = 1.2
    agent1 = Stream(signed_in(linked_app, "agent1"))
    agent2 = Stream(signed_in(linked_app, "agent2"))
    wait_until(lambda: agent1.text and agent2.text)  # both connected (the retry line arrived)
    rang = time.monotonic()
    ami_peer.ring_inbound(CALLER, "8001")
    pop = wait_until(agent1.pops, timeout=2.0)[0]
    latency = time.monotonic() - rang
    assert latency < 1.0, f"the pop took {latency:.2f}s"
    assert pop["kind"] == "inbound_call" and pop["payload"]["caller"] == CALLER
    assert pop["url"].startswith(f"/customers/{CALLER}?")
    assert f"id: {pop['id']}\n" in agent1.text
    agent1.finish()
    agent2.finish()
    assert agent1.text.startswith("retry: 1000\n\n")
    assert agent2.pops() == []


def test_stream_resumes_after_the_last_event_id(app: Flask) -> None:
    from engine.clock import utcnow
    from processes.telephony import push_pop
    from web.extensions import db

    app.config["KEFU_POP_STREAM_SECONDS"] = 0.2
    agent1 = user_id(app, "agent1")
    with app.app_context():
        first = push_pop(db.session, user_id=agent1, kind="task", title="回访 A", url="/tasks/1", now=utcnow())
        push_pop(db.session, user_id=agent1, kind="task", title="回访 B", url="/tasks/2", now=utcnow(),
                 payload={"k": 1})
        old = push_pop(db.session, user_id=agent1, kind="task", title="old", url="/tasks/3",
                       now=utcnow() - timedelta(hours=1))
        db.session.commit()
        first_id, old_id = first.id, old.id
    client = signed_in(app, "agent1")
    resumed = Stream(client, headers={"Last-Event-ID": str(first_id)})
    resumed.finish()
    assert [p["title"] for p in resumed.pops()] == ["回访 B"]  # not the first, nor a stale one
    fresh = Stream(client)  # no id: only what comes after the connection
    fresh.finish()
    assert fresh.pops() == [] and old_id > first_id
    assert client.get("/calls/stream?after=0").status_code == 200


def test_pages_of_agents_with_an_extension_open_the_stream(app: Flask) -> None:
    page = signed_in(app, "agent1").get("/calls").get_data(as_text=True)
    assert 'id="pop-stream"' in page and "calls.js" in page
    assert 'id="pop-stream"' not in signed_in(app, "analyst1").get("/inbox", follow_redirects=True) \
        .get_data(as_text=True)
    assert signed_in(app, "agent1").get("/calls/stream").status_code == 200
    assert app.test_client().get("/calls/stream").status_code in (302, 401)


# --------------------------------------------------------------------------- the CTI API
def test_api_inbound_call_records_pops_and_is_idempotent(app: Flask, client: Any, token: Any) -> None:
    from processes.telephony import Call, ScreenPop

    body = {"caller": "138-0000-0001", "extension": "8002", "call_id": "cti-42", "recording_ref": "rec/42.wav"}
    response = client.post("/api/v1/calls/inbound", json=body, headers=token("agent1"))
    assert response.status_code == 202, response.get_json()
    reply = response.get_json()
    assert reply["agent"] == "agent2" and reply["popped"] is True and reply["call_id"] == "cti-42"
    again = client.post("/api/v1/calls/inbound", json=body, headers=token("agent1"))
    assert again.status_code == 202 and again.get_json()["call"] == reply["call"]
    assert again.get_json()["popped"] is False
    (call,) = rows(app, Call)
    assert (call.customer_number, call.source, call.recording_ref, call.agent_id) == \
        ("13800000001", "api", "rec/42.wav", user_id(app, "agent2"))
    pops = rows(app, ScreenPop)
    assert [(p.user_id, p.call_id) for p in pops] == [(user_id(app, "agent2"), call.id)]
    no_id = client.post("/api/v1/calls/inbound", json={"caller": CALLER, "extension": "8001"},
                        headers=token("agent1"))
    assert no_id.status_code == 202 and no_id.get_json()["call_id"].startswith("api-")


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"extension": "8001"}, 400, "caller"),
    ({"caller": "abc", "extension": "8001"}, 400, "caller"),
    ({"caller": CALLER}, 400, "extension"),
    ({"caller": CALLER, "extension": "80 01"}, 400, "extension"),
    ({"caller": CALLER, "extension": "8001", "call_id": "a b"}, 400, "call_id"),
    ({"caller": CALLER, "extension": "8001", "recording_ref": 5}, 400, "recording_ref"),
    (["not", "an", "object"], 400, "body"),
    ({"caller": CALLER, "extension": "8999"}, 422, "extension"),
])
def test_api_inbound_call_refuses_bad_notices(client: Any, token: Any, body: Any, status: int,
                                              field: str) -> None:
    response = client.post("/api/v1/calls/inbound", json=body, headers=token("agent1"))
    assert response.status_code == status, response.get_json()
    assert field in response.get_json()["fields"]


def test_api_inbound_call_needs_an_agent_or_admin_token(client: Any, token: Any) -> None:
    body = {"caller": CALLER, "extension": "8001"}
    assert client.post("/api/v1/calls/inbound", json=body).status_code == 401
    assert client.post("/api/v1/calls/inbound", json=body, headers=token("analyst1")).status_code == 403
    assert client.post("/api/v1/calls/inbound", json=body, headers=token("admin")).status_code == 202


# --------------------------------------------------------------------------- a case started from a call
def test_complaint_started_from_a_call_is_linked_to_it(app: Flask, client: Any, token: Any) -> None:
    from engine.models import AuditEvent, ProcessInstance
    from processes.telephony import CallCase
    from tests.conftest import INTAKE

    call = client.post("/api/v1/calls/inbound", json={"caller": "13800000009", "extension": "8001"},
                       headers=token("admin")).get_json()["call"]
    agent = signed_in(app, "agent1")
    url = f"/cases/new/complaint?customer_phone=13800000009&call={call}"
    form = agent.get(url).get_data(as_text=True)
    assert 'value="13800000009"' in form
    response = agent.post(url, data=INTAKE)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    (instance,) = rows(app, ProcessInstance)
    (link,) = rows(app, CallCase)
    assert (link.call_id, link.instance_id) == (call, instance.id)
    events = rows(app, AuditEvent, AuditEvent.instance_id == instance.id, AuditEvent.kind == "call_linked")
    assert [e.message for e in events] == ["来电 13800000009（分机 8001）"]
    listing = agent.get("/calls").get_data(as_text=True)
    assert instance.reference in listing

    # Another agent cannot link a case to agent1's call.
    signed_in(app, "agent2").post(url, data=INTAKE)
    assert len(rows(app, ProcessInstance)) == 2 and len(rows(app, CallCase)) == 1


def test_pop_carries_the_callers_customer_level_when_billing_knows_it(app: Flask, client: Any, token: Any,
                                                                       billing: Any) -> None:
    from processes.telephony import ScreenPop

    response = client.post("/api/v1/calls/inbound", json={"caller": "13800000001", "extension": "8001"},
                           headers=token("agent1"))
    assert response.status_code == 202
    (pop,) = rows(app, ScreenPop)
    assert pop.payload["level"] == "vip" and pop.payload["level_label"] == "VIP客户"


def test_an_idle_stream_writes_every_second_so_a_browser_that_left_frees_its_thread(app: Flask) -> None:
    """The server only learns that the browser moved on when it writes: an idle stream writes a
    comment line on every wake (each second), not once in ten, so a thread is never held long."""
    import time

    app.config["KEFU_POP_STREAM_SECONDS"] = 10
    response = signed_in(app, "agent1").get("/calls/stream", buffered=False)
    chunks = iter(response.response)
    assert next(chunks).startswith(b"retry")
    started = time.monotonic()
    beat = next(chunks)
    assert beat.startswith(b": keep-alive") and time.monotonic() - started < 2.5
    response.close()
