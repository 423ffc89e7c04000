"""SIGKILL a real server process while agents work business acceptance cases over the REST API —
once at whatever point the load has reached, once inside a step (before its commit) — restart it,
let the agents carry on as people would (reload the case, redo what did not happen), then count:
no step lost or done twice, exactly one billing order per case that took its order."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from engine import outbox
from engine.models import DONE, AuditEvent, HumanTask
from tests.crash.conftest import billing_orders, settled, wait_until
from web.extensions import db

pytestmark = pytest.mark.slow

AGENTS, CASES_EACH = 6, 3
ORDER = {"request_type": "feature_on", "feature": "call_waiting"}


class Down(Exception):
    """The server went away during the request: the agent does not know whether it happened."""


class Agent:
    def __init__(self, base: dict[str, Any]) -> None:
        self.base = base  # {"url": …, "token": …}, replaced when the server restarts

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.base["url"] + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.base['token']}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"null")
            except (http.client.HTTPException, OSError) as cut:  # died while sending the refusal
                raise Down(str(cut)) from cut
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, http.client.HTTPException) as exc:
            # HTTPException: the server died while sending its answer (IncompleteRead) — the agent
            # does not know whether the request happened, as with a refused connection.
            raise Down(str(exc)) from exc

    def open_task(self, instance_id: int) -> dict | None:
        status, case = self.call("GET", f"/api/v1/instances/{instance_id}")
        assert status == 200, case
        return case["tasks"][0] if case["tasks"] else None

    def work(self, instance_id: int) -> None:
        """Verify the caller and take the order, from wherever the case is now."""
        steps = {"verify": {"service_password": "123456"}, "take_request": ORDER}
        while (task := self.open_task(instance_id)) is not None and task["name"] in steps:
            status, body = self.call("POST", f"/api/v1/tasks/{task['id']}/complete",
                                     {"data": steps[task["name"]]})
            assert status in (200, 409), body  # 409: done meanwhile by the request the crash hid


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _connect(kefu, base: dict[str, Any], **env: str):
    port = _free_port()
    server = kefu.start("serve", str(port), **env)
    base["url"] = f"http://127.0.0.1:{port}"
    agent = Agent(base)
    status, body = agent.call("POST", "/api/v1/auth/token", {"username": "agent1", "password": "kefu-demo"})
    assert status == 200, body
    base["token"] = body["token"]
    return server


def test_a_server_killed_under_load_and_inside_a_step_loses_and_doubles_nothing(app, billing, kefu, tmp_path):
    flag = tmp_path / "stop-inside-step"
    base: dict[str, Any] = {"token": ""}
    server = _connect(kefu, base, CRASH_STEP_FILE=str(flag))
    cases: list[int] = []
    lock, answered, unsure = threading.Lock(), threading.Semaphore(0), []

    def agent_run() -> None:
        agent = Agent(base)
        for _ in range(CASES_EACH):
            while True:
                try:
                    status, body = agent.call("POST", "/api/v1/processes/business_acceptance/instances",
                                              {"data": {"customer_phone": "13800000001"}})
                    assert status == 201, body
                    break
                except Down:  # the case may exist without the agent knowing: it starts another
                    with lock:
                        unsure.append(1)
                    wait_until(lambda: base.get("url_ok"), what="the server back")
            answered.release()
            with lock:
                cases.append(body["id"])
            while True:
                try:
                    agent.work(body["id"])
                    break
                except Down:
                    wait_until(lambda: base.get("url_ok"), what="the server back")

    base["url_ok"] = True
    agents = [threading.Thread(target=agent_run) for _ in range(AGENTS)]
    for thread in agents:
        thread.start()
    for _ in range(4):  # a few cases under way, then the server dies wherever it is
        assert answered.acquire(timeout=60)
    base["url_ok"] = False
    kefu.kill(server)
    server = _connect(kefu, base, CRASH_STEP_FILE=str(flag))
    base["url_ok"] = True
    for thread in agents:
        thread.join(180)
        assert not thread.is_alive()

    # Inside a step: the server dies while writing the step that takes one more order.
    agent = Agent(base)
    _status, body = agent.call("POST", "/api/v1/processes/business_acceptance/instances",
                              {"data": {"customer_phone": "13800000001"}})
    last = body["id"]
    task = agent.open_task(last)
    agent.call("POST", f"/api/v1/tasks/{task['id']}/complete", {"data": {"service_password": "123456"}})
    task = agent.open_task(last)
    assert task["name"] == "take_request"
    flag.touch()
    with pytest.raises(Down):
        agent.call("POST", f"/api/v1/tasks/{task['id']}/complete", {"data": ORDER})
    kefu.wait_killed(server, timeout=30)
    flag.unlink()
    _connect(kefu, base)
    assert agent.open_task(last)["id"] == task["id"]  # rolled back with the process: still open
    agent.work(last)  # the step never happened: done once now
    cases.append(last)

    kefu.start("work")
    wait_until(lambda: settled(app), what="the orders written")
    with app.app_context():
        completed = Counter(db.session.scalars(select(AuditEvent.task_id).where(AuditEvent.kind == "task_completed")))
        done_tasks = db.session.scalar(select(func.count()).select_from(HumanTask).where(HumanTask.status == DONE))
        order_jobs = Counter(db.session.scalars(select(outbox.ConnectorJob.instance_id).where(
            outbox.ConnectorJob.operation == "billing.submit_order")))
        db.session.rollback()
    assert set(completed.values()) == {1} and len(completed) == done_tasks  # each step once, none lost
    assert set(cases) <= set(order_jobs) and set(order_jobs.values()) == {1}  # every case took one order
    keys = billing_orders(billing)
    assert len(keys) == len(set(keys)) == len(order_jobs), "an order was lost or written twice"
    assert len(cases) == AGENTS * CASES_EACH + 1
