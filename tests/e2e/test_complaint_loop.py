"""End to end: the real server process (waitress) with demo data, the whole complaint loop over
HTTP, and an escalation raised by ``flask kefu tick --at`` in another process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(request, db_url, tmp_path):
    scheduler = getattr(request, "param", "--no-scheduler")
    port = _free_port()
    env = {**os.environ, "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_PORT": str(port),
           "KEFU_DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1", "KEFU_TICK_SECONDS": "1"}
    flask = [sys.executable, "-m", "flask", "--app", "wsgi", "kefu"]
    log = open(tmp_path / "server.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*flask, "serve", "--demo", scheduler], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/login", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
    else:
        pytest.fail("server did not start: " + (tmp_path / "server.log").read_text())

    def cli(*args: str) -> str:
        done = subprocess.run([*flask, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120, check=True)
        return done.stdout

    yield base, cli
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def _api(base: str, user: str):
    token = requests.post(base + "/api/v1/auth/token",
                          json={"username": user, "password": "kefu-demo"}, timeout=10).json()["token"]
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def _task(http, base, instance_id, scope="group"):
    items = http.get(f"{base}/api/v1/tasks?scope={scope}", timeout=10).json()["items"]
    return next(t for t in items if t["instance_id"] == instance_id)


def _complete(http, base, task_id, data):
    response = http.post(f"{base}/api/v1/tasks/{task_id}/complete", json={"data": data}, timeout=10)
    assert response.status_code == 200, response.text


INTAKE = {"customer_phone": "13800000008", "complainant_name": "赵女士", "contact_phone": "13800000008",
          "channel": "phone", "category": "billing", "description": "话费异常", "request": "核实"}


def test_complaint_loop_and_escalation_against_real_server(server):
    base, cli = server
    agent, net, leader, manager = (_api(base, u) for u in ("agent1", "net1", "leader1", "manager1"))

    # The browser side speaks Chinese and shows the demo's work.
    browser = requests.Session()
    page = browser.get(base + "/login", timeout=10).text
    assert "登录" in page
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    inbox = browser.post(base + "/login", data={"username": "agent1", "password": "kefu-demo",
                                                "csrf_token": csrf}, timeout=10)
    assert "我的任务" in inbox.text

    response = agent.post(base + "/api/v1/processes/complaint/instances", json={"data": INTAKE}, timeout=10)
    assert response.status_code == 201
    instance_id = response.json()["id"]
    triage = _task(agent, base, instance_id, "mine")
    due = (datetime.now(UTC) + timedelta(hours=24)).isoformat()
    _complete(agent, base, triage["id"], {"resolution": "dispatch", "first_reply": "已转计费部",
                                          "department": "network", "final_reply_due": due})
    handle = _task(net, base, instance_id)
    assert net.post(f"{base}/api/v1/tasks/{handle['id']}/claim", timeout=10).status_code == 200

    # The department overruns its 24 hours: one tick as of 25 hours later escalates (level 1).
    at = (datetime.now(UTC) + timedelta(hours=25)).isoformat()
    out = cli("tick", "--at", at)
    assert "escalation L1" in out and f"task {handle['id']}" in out
    assert f"task {handle['id']}" not in cli("tick", "--at", at)  # never twice
    alerts = manager.get(base + "/api/v1/escalations", timeout=10).json()["items"]
    assert [(a["task_id"], a["level"]) for a in alerts if a["task_id"] == handle["id"]] == [(handle["id"], 1)]

    _complete(net, base, handle["id"], {"handling_result": "已核实并调整", "cause": "billing_error",
                                        "refund_due": False})
    alerts = manager.get(base + "/api/v1/escalations", timeout=10).json()["items"]
    assert [a for a in alerts if a["task_id"] == handle["id"]] == []  # cleared when done

    qc = _task(leader, base, instance_id)
    _complete(leader, base, qc["id"], {"qc_result": "accept"})
    reply = _task(agent, base, instance_id, "mine")
    _complete(agent, base, reply["id"], {"final_reply": "已调整", "reply_method": "phone",
                                         "satisfaction": "basic"})
    case = manager.get(f"{base}/api/v1/instances/{instance_id}", timeout=10).json()
    assert case["status"] == "completed" and case["tasks"] == []
    kinds = [e["kind"] for e in case["events"]]
    assert kinds.count("task_completed") == 4 and "escalated" in kinds and kinds[-1] == "completed"


@pytest.mark.parametrize("server", ["--scheduler"], indirect=True)
def test_running_product_escalates_by_itself(server):
    """With its scheduler on, the product raises the demo's overdue step without anyone ticking."""
    base, _cli = server
    manager = _api(base, "manager1")
    deadline = time.monotonic() + 30
    alerts: list = []
    while time.monotonic() < deadline and not alerts:
        alerts = manager.get(base + "/api/v1/escalations", timeout=10).json()["items"]
        time.sleep(0.5)
    assert [(a["title"], a["level"]) for a in alerts] == [("部门处理", 1)]
    time.sleep(2.5)  # more ticks pass: still one alert per level
    assert len(manager.get(base + "/api/v1/escalations", timeout=10).json()["items"]) == 1
