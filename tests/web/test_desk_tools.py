"""Supervisors act from the alerts page (urge, reassign, acknowledge; who holds, who was told), and the
task tools: internal notes, attachments (content-checked, size-limited, served as downloads), reply
templates per category, and the 360 page's banner for a caller with an open case."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import INTAKE
from tests.web.test_pages import Browser

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def csrf_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app


def _complaint(agent: Browser, **changes: str) -> tuple[int, str]:
    location = agent.post("/cases/new/complaint", {**INTAKE, **changes}, page=agent.get("/complaints/new")
                          ).headers["Location"]
    task_id = int(re.search(r"/tasks/(\d+)", location).group(1))
    case_id = int(re.search(r"/cases/(\d+)", _text(agent.get(location))).group(1))
    return case_id, f"/tasks/{task_id}"


def _escalate(app, hours: float = 3.1):
    from slas.models import Escalation
    from slas.notifications import notify_supervisors
    from slas.scanner import scan
    from web.extensions import db

    with app.app_context():  # what the tick does (processes/tick.py): scan, then text the supervisors
        now = datetime.now(UTC) + timedelta(hours=hours)
        notify_supervisors(db.session, scan(db.session, now).escalations, now)
        db.session.commit()
        return [(e.id, e.level, e.task_id) for e in db.session.scalars(select(Escalation).order_by(Escalation.id))]


def test_a_supervisor_acknowledges_urges_and_reassigns_from_the_alerts_page(csrf_app):
    agent = Browser(csrf_app, "agent1")
    _case_id, _task = _complaint(agent)
    escalations = _escalate(csrf_app)
    assert escalations, "the scanner raised no escalation"
    esc_id, _level, task_id = escalations[-1]
    leader = Browser(csrf_app, "leader1")
    page = _text(leader.get("/escalations"))
    # Who holds the step (the agent who recorded it) and who was texted (the managers), in words.
    row = re.search(rf'data-escalation="{esc_id}".*?</tr>', page, re.DOTALL).group(0)
    holder = re.search(r'class="holder">([^<]*)<', row).group(1)
    assert holder == "坐席一 王芳", row
    told = re.search(r'class="notified">(.*?)</td>', row, re.DOTALL).group(1)
    assert "中心经理 陈刚（短信待发送）" in told, told
    assert "{'" not in page and "queued" not in page

    # Acknowledge: the row says by whom; the "not acknowledged" view drops it.
    done = leader.post(f"/escalations/{esc_id}/acknowledge", {}, page=leader.get("/escalations"))
    assert done.status_code == 302
    page = _text(leader.get("/escalations"))
    assert re.search(r"班长 张敏 已于 [0-9: -]+ 确认", page)
    assert f'data-escalation="{esc_id}"' not in _text(leader.get("/escalations?show=unacknowledged"))

    # Reassign to a member of the step's group; to someone outside it: a refusal in words.
    from engine.models import HumanTask
    from engine.people import User, user_by_name
    from web.extensions import db

    with csrf_app.app_context():
        agent2 = user_by_name(db.session, "agent2").id
        outsider = user_by_name(db.session, "net1").id
    refused = leader.post(f"/escalations/{esc_id}/reassign", {"assignee_id": str(outsider)},
                          page=leader.get("/escalations"))
    assert refused.status_code == 302
    assert "所选人员不在该环节的班组中" in _text(leader.get("/escalations"))
    leader.post(f"/escalations/{esc_id}/reassign", {"assignee_id": str(agent2)}, page=leader.get("/escalations"))
    with csrf_app.app_context():
        task = db.session.get(HumanTask, task_id)
        assert db.session.get(User, task.assignee_id).username == "agent2"
    row = re.search(rf'data-escalation="{esc_id}".*?</tr>', _text(leader.get("/escalations")), re.DOTALL).group(0)
    assert "坐席二 李强" in row

    # Urge: recorded on the step; a second urge at once is refused in words.
    leader.post(f"/escalations/{esc_id}/urge", {}, page=leader.get("/escalations"))
    from processes.urging import urges_of

    with csrf_app.app_context():
        assert [u.by_name for u in urges_of(db.session, task_id)] == ["班长 张敏"]
    leader.post(f"/escalations/{esc_id}/urge", {}, page=leader.get("/escalations"))
    assert "该环节刚被催办过" in _text(leader.get("/escalations"))
    with csrf_app.app_context():
        assert len(urges_of(db.session, task_id)) == 1


def test_a_leader_cannot_act_on_another_groups_alert_and_agents_not_at_all(csrf_app):
    agent = Browser(csrf_app, "agent1")
    _complaint(agent)
    esc_id = _escalate(csrf_app)[-1][0]
    other = Browser(csrf_app, "netlead1")  # leads the network group, not intake
    other.post(f"/escalations/{esc_id}/acknowledge", {}, page=other.get("/inbox"))
    from slas.models import Escalation
    from web.extensions import db

    with csrf_app.app_context():
        assert db.session.get(Escalation, esc_id).acknowledged_at is None
    assert agent.post(f"/escalations/{esc_id}/acknowledge", {}).status_code == 403


def test_internal_notes_show_in_the_history_and_not_empty(csrf_app):
    agent = Browser(csrf_app, "agent1")
    case_id, task_url = _complaint(agent)
    agent.post(f"/cases/{case_id}/notes", {"note": "客户情绪激动，注意语气", "next": task_url},
               page=agent.get(task_url))
    task_page = _text(agent.get(task_url))
    assert "客户情绪激动，注意语气" in task_page and "坐席一 王芳" in task_page
    case_page = _text(agent.get(f"/cases/{case_id}"))
    assert "内部备注" in case_page and "internal_note" not in re.sub(r'class="[^"]*"', "", case_page)
    agent.post(f"/cases/{case_id}/notes", {"note": "   "}, page=agent.get(task_url))
    assert "请先填写备注" in _text(agent.get(f"/cases/{case_id}"))


def _docx(macro: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        if macro:
            archive.writestr("word/vbaProject.bin", b"\x00macro")
    return buffer.getvalue()


def test_attachments_are_checked_by_content_stored_in_the_data_dir_and_served_as_downloads(csrf_app):
    csrf_app.config["KEFU_ATTACHMENT_MB"] = 3
    agent = Browser(csrf_app, "agent1")
    case_id, task_url = _complaint(agent)

    def upload(name: str, content: bytes):
        page = agent.get(task_url)
        return agent.client.post(f"/cases/{case_id}/attachments", content_type="multipart/form-data", data={
            "csrf_token": agent.token(_text(page)), "next": task_url, "file": (io.BytesIO(content), name)})

    assert upload("话单截图.pdf", PDF).status_code == 302
    assert upload("合同.docx", _docx()).status_code == 302
    # Larger than the 2 MB of other requests, within the configured 3 MB: accepted.
    big = PDF + b"0" * (2_500_000)
    assert upload("big.pdf", big).status_code == 302
    page = _text(agent.get(task_url))
    assert "话单截图.pdf" in page and "合同.docx" in page and "big.pdf" in page
    for name, content, words in [("virus.exe", b"MZ\x90\x00" + b"\x00" * 100, "只接受"),
                                 ("fake.pdf", b"MZ\x90\x00" + b"\x00" * 100, "只接受"),
                                 ("macro.docx", _docx(macro=True), "只接受"),
                                 ("notes.pdf", "这是一段文字".encode(), "名称与内容不符"),
                                 ("too-big.pdf", PDF + b"0" * 3_200_000, "3 MB")]:
        response = upload(name, content)
        assert response.status_code in (302, 413), name
        if response.status_code == 302:
            assert words in _text(agent.get(task_url)), name
        assert name not in _text(agent.get(task_url))

    from processes.attachments import CaseAttachment
    from web.extensions import db

    with csrf_app.app_context():
        rows = list(db.session.scalars(select(CaseAttachment).order_by(CaseAttachment.id)))
        assert [r.kind for r in rows] == ["pdf", "docx", "pdf"]
        stored = Path(csrf_app.config["KEFU_DATA_DIR"]) / "attachments" / rows[0].stored_as
        assert stored.read_bytes() == PDF
        first = rows[0].id
    download = agent.client.get(f"/attachments/{first}")
    assert download.status_code == 200 and download.data == PDF
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.mimetype == "application/pdf"
    # Someone who may not see the case cannot read its files.
    outsider = Browser(csrf_app, "bill1")
    assert outsider.client.get(f"/attachments/{first}").status_code == 404
    assert "内部备注" not in _text(outsider.client.get(f"/cases/{case_id}"))


def test_reply_templates_per_category_are_offered_on_the_task(csrf_app):
    leader = Browser(csrf_app, "leader1")
    page = leader.get("/admin/reply-templates")
    assert page.status_code == 200 and "答复模板" in _text(page)
    leader.post("/admin/reply-templates", {"category": "network", "title": "信号问题已派单",
                                           "body": "您反映的信号问题已转网络部处理。"}, page=page)
    leader.post("/admin/reply-templates", {"category": "billing", "title": "话费核查",
                                           "body": "话费正在核查。"}, page=page)
    refused = leader.post("/admin/reply-templates", {"category": "network", "title": "", "body": ""}, page=page)
    assert refused.status_code == 422 and "此项必填" in _text(refused)
    agent = Browser(csrf_app, "agent1")
    assert agent.client.get("/admin/reply-templates").status_code == 403
    _case_id, task_url = _complaint(agent)  # a network complaint
    task_page = _text(agent.get(task_url))
    assert "信号问题已派单" in task_page and "话费核查" not in task_page
    assert 'data-body="您反映的信号问题已转网络部处理。"' in task_page


def test_the_360_page_shows_a_banner_for_an_open_case(csrf_app, billing):
    agent = Browser(csrf_app, "agent1")
    phone = "13800000001"
    url = f"/customers/{phone}?reason=enquiry"
    response = agent.get(url)
    assert response.status_code == 200
    assert "open-case-banner" not in _text(response)
    _complaint(agent, customer_phone=phone, contact_phone=phone)
    page = _text(agent.get(url))
    banner = re.search(r'class="flash warning open-case-banner".*?</div>', page, re.DOTALL).group(0)
    assert "该来电客户有未办结的工单" in banner and "/cases/" in banner


def test_the_api_acknowledges_and_lists_who_acknowledged(app, client, token):
    client.post("/api/v1/processes/complaint/instances", json={"data": INTAKE}, headers=token("agent1"))
    esc_id = _escalate(app)[-1][0]
    assert client.post(f"/api/v1/escalations/{esc_id}/acknowledge", headers=token("agent1")).status_code == 403
    assert client.post(f"/api/v1/escalations/{esc_id}/acknowledge", headers=token("netlead1")).status_code == 404
    done = client.post(f"/api/v1/escalations/{esc_id}/acknowledge", headers=token("manager1"))
    assert done.status_code == 200 and done.get_json()["acknowledged_at"]
    (item,) = [i for i in client.get("/api/v1/escalations", headers=token("manager1")).get_json()["items"]
               if i["id"] == esc_id]
    assert item["acknowledged_by"] == "中心经理 陈刚" and item["acknowledged_at"] == done.get_json()["acknowledged_at"]
