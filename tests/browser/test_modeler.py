"""The analyst's modeler and the case diagram in a real browser against a real server.

An analyst changes the department's time limit from 24 to 12 hours in the modeler and deploys:
a complaint started afterwards gets 12 hours, one started before keeps 24. An invalid diagram is
refused with its element marked; the case page highlights the active step.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.browser.conftest import api, login

pytestmark = pytest.mark.slow
DIAGRAMS = Path(__file__).parent / "diagrams"
INTAKE = {"customer_phone": "13800000007", "complainant_name": "钱先生", "contact_phone": "13800000007",
          "channel": "phone", "category": "network", "description": "家中无信号", "request": "尽快修复"}


def _start(http, base: str) -> int:
    response = http.post(base + "/api/v1/processes/complaint/instances", json={"data": INTAKE}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _dispatch(http, base: str, case_id: int) -> datetime:
    """Complete the first reply, dispatching to the network department; returns when."""
    tasks = http.get(base + "/api/v1/tasks?scope=mine", timeout=10).json()["items"]
    triage = next(t for t in tasks if t["instance_id"] == case_id and t["name"] == "triage")
    # The agent's final-reply deadline lies beyond both limits, so the step's own limit decides.
    late = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    at = datetime.now(UTC)
    response = http.post(f"{base}/api/v1/tasks/{triage['id']}/complete", timeout=10, json={"data": {
        "resolution": "dispatch", "first_reply": "已派单网络部", "department": "network", "final_reply_due": late}})
    assert response.status_code == 200, response.text
    return at


def _handle_due(http, base: str, case_id: int) -> datetime:
    case = http.get(f"{base}/api/v1/instances/{case_id}", timeout=10).json()
    (handle,) = [t for t in case["tasks"] if t["name"] == "handle"]
    return datetime.fromisoformat(handle["due_at"])


def _hours(due: datetime, since: datetime) -> float:
    return (due - since).total_seconds() / 3600


def test_analyst_shortens_the_department_limit_and_only_new_complaints_get_it(page, server):
    base = server
    agent = api(base, "agent1")
    before = _start(agent, base)  # runs on version 1 whatever happens next

    login(page, base, "analyst1")
    page.click("text=流程建模")
    page.wait_for_selector("body[data-modeler-ready='1']")
    page.select_option("#open-key", "complaint")
    page.click("#open")
    page.wait_for_selector("#status.ok")
    assert "投诉闭环" in page.inner_text("#status")
    page.click('[data-element-id="handle"]')
    duration = page.locator('#kefu-panel input[data-property="kefu.sla.duration"]')
    assert duration.input_value() == "PT24H"
    assert page.locator("#kefu-panel .form-preview").is_visible()  # the task's form, rendered
    duration.fill("PT12H")
    duration.press("Tab")
    page.fill("#summary", "部门处理时限由24小时改为12小时")
    page.click("#deploy")
    page.wait_for_selector("#status.ok >> text=第 2 版")
    assert page.js_errors == []

    versions = agent.get(base + "/api/v1/definitions?key=complaint", timeout=10).json()["items"]
    assert [(v["version"], v["deployed_by"]) for v in versions] == [(2, "analyst1"), (1, "system")]
    assert versions[0]["summary"] == "部门处理时限由24小时改为12小时"
    after = _start(agent, base)
    at_before, at_after = _dispatch(agent, base, before), _dispatch(agent, base, after)
    assert _hours(_handle_due(agent, base, before), at_before) == pytest.approx(24, abs=0.05)
    assert _hours(_handle_due(agent, base, after), at_after) == pytest.approx(12, abs=0.05)
    assert agent.get(f"{base}/api/v1/instances/{before}", timeout=10).json()["version"] == 1
    assert agent.get(f"{base}/api/v1/instances/{after}", timeout=10).json()["version"] == 2


def test_invalid_diagram_is_refused_with_its_element_marked(page, server):
    base = server
    login(page, base, "analyst1")
    page.goto(base + "/modeler")
    page.wait_for_selector("body[data-modeler-ready='1']")
    page.set_input_files("#import", str(DIAGRAMS / "no_lane.bpmn"))
    page.wait_for_selector('#status.ok >> text=no_lane.bpmn')
    page.click("#deploy")
    page.wait_for_selector("#status.error")
    marked = page.locator('g.djs-element[data-element-id="lonely_task"]')
    assert "kefu-error" in (marked.get_attribute("class") or "")
    errors = page.inner_text("#errors")
    assert "此用户任务不在任何泳道中" in errors and "lonely_task" in errors
    processes = api(base, "analyst1").get(base + "/api/v1/processes", timeout=10).json()["items"]
    # nothing was deployed: only the bundled processes are there
    bundled = sorted(path.stem for path in (Path(__file__).resolve().parents[2] / "bpmn").glob("*.bpmn"))
    assert sorted(p["key"] for p in processes) == bundled

    # A diagram from the Camunda Modeler opens; its candidate group shows as a lane hint.
    page.set_input_files("#import", str(DIAGRAMS / "camunda.bpmn"))
    page.wait_for_selector("#status.ok >> text=camunda.bpmn")
    assert page.locator(".kefu-error").count() == 0  # the old marks are gone
    page.click('[data-element-id="Activity_check"]')
    assert "Camunda 候选组：network" in page.inner_text("#kefu-panel")
    assert page.js_errors == []


def test_case_page_highlights_the_active_step(page, server):
    base = server
    agent = api(base, "agent1")
    case_id = _start(agent, base)
    _dispatch(agent, base, case_id)
    login(page, base, "manager1")
    page.goto(f"{base}/cases/{case_id}")
    page.wait_for_selector("#case-diagram[data-ready='1']")
    handle = page.locator('#case-diagram g.djs-element[data-element-id="handle"]')
    assert "kefu-active" in (handle.get_attribute("class") or "")
    triage = page.locator('#case-diagram g.djs-element[data-element-id="triage"]')
    assert "kefu-done" in (triage.get_attribute("class") or "")
    assert page.locator("#case-diagram .kefu-taken").count() >= 2
    assert re.search(r"TS\d{8}", page.inner_text("h1"))
    assert page.js_errors == []
