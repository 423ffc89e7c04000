"""The desk's tools (issue 16): global search, inbox/case-list filters and sorting, saved views,
bulk claim/assign with refusals per row, and the live inbox's rows endpoint."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from engine.clock import utcnow
from engine.models import AuditEvent, HumanTask
from processes.desk_search import CaseIndex, row_values
from processes.saved_views import SavedView
from tests.conftest import INTAKE


def _login(client, username: str) -> None:
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": "kefu-demo"})
    assert response.status_code == 302


def _complaint(client, token, **changes) -> dict:
    response = client.post("/api/v1/processes/complaint/instances", json={"data": {**INTAKE, **changes}},
                           headers=token("agent1"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _dispatched(client, token, **changes) -> tuple[int, int]:
    """A complaint handed to the network department: (case id, the department's open step id)."""
    case = _complaint(client, token, **changes)
    (triage,) = client.get(f"/api/v1/instances/{case['id']}", headers=token("agent1")).get_json()["tasks"]
    done = client.post(f"/api/v1/tasks/{triage['id']}/complete", headers=token("agent1"), json={"data": {
        "resolution": "dispatch", "first_reply": "已派单网络部", "department": "network",
        "final_reply_due": (utcnow() + timedelta(days=3)).isoformat()}})
    assert done.status_code == 200, done.get_json()
    (handle,) = client.get(f"/api/v1/instances/{case['id']}", headers=token("agent1")).get_json()["tasks"]
    return case["id"], handle["id"]


def test_the_index_row_follows_the_cases_data():
    assert row_values({"complainant_name": " 王先生 ", "contact_phone": "13800000009",
                       "description": "室内信号差", "request": "尽快处理"}) == {
        "name": "王先生", "contact_phone": "13800000009", "text": "室内信号差 尽快处理", "vip": False, "priority": 0}
    assert row_values({"caller_name": "李", "level": "vip", "priority": "2"})["priority"] == 5  # a VIP counts 5
    assert row_values({"priority": 42})["priority"] == 9 and row_values({"priority": "x"})["priority"] == 0
    assert row_values({"vip": True})["vip"] and not row_values({"vip": "no"})["vip"]


def test_search_finds_cases_by_number_phone_name_and_words_within_the_users_reach(client, token, app):
    case = _complaint(client, token, customer_phone="13900001111", contact_phone="13900002222",
                      complainant_name="欧阳娜娜", description="宽带晚上经常掉线，100%复现")
    other = _complaint(client, token, customer_phone="13900003333", complainant_name="李四",
                       description="话费扣费有疑问")
    with app.app_context():
        from web.extensions import db

        row = db.session.get(CaseIndex, case["id"])
        assert (row.name, row.contact_phone) == ("欧阳娜娜", "13900002222") and "掉线" in row.text
    _login(client, "agent1")
    exact = client.get("/search", query_string={"q": case["reference"]})
    assert exact.status_code == 302 and exact.headers["Location"].endswith(f"/cases/{case['id']}")
    for q in ("13900001111", "139-0000-2222", "欧阳", "经常掉线", "100%"):
        page = client.get("/search", query_string={"q": q}).get_data(as_text=True)
        assert case["reference"] in page and other["reference"] not in page, q
    assert "1 个工单符合" in client.get("/search?q=欧阳").get_data(as_text=True)
    assert "没有您可查看的工单符合" in client.get("/search?q=不存在的词").get_data(as_text=True)
    # "%" and "_" are searched as themselves, not as wildcards.
    assert case["reference"] not in client.get("/search?q=_").get_data(as_text=True)
    # A department member who never touched the case does not find it; the API says the same.
    _login(client, "net1")
    assert case["reference"] not in client.get("/search?q=欧阳").get_data(as_text=True)
    assert client.get("/api/v1/search?q=欧阳", headers=token("net1")).get_json() == {"items": [], "total": 0}
    found = client.get("/api/v1/search?q=欧阳", headers=token("agent1")).get_json()
    assert found["total"] == 1 and found["items"][0]["reference"] == case["reference"]
    assert client.get("/api/v1/search?q=欧阳", headers=token("manager1")).get_json()["total"] == 1
    bad = client.get("/api/v1/search?q=", headers=token("agent1"))
    assert bad.status_code == 422 and bad.get_json()["fields"] == {"q": "required"}
    assert client.get("/api/v1/search?q=a&limit=0", headers=token("agent1")).status_code == 422


def test_a_city_leader_finds_only_the_citys_cases(client, token):
    """hzlead1 leads hz_city: search reaches the cases transferred to the city, not the province's."""
    city = _complaint(client, token, complainant_name="上官城市", customer_phone="13900005555")
    province = _complaint(client, token, complainant_name="上官省里", customer_phone="13900006666")
    (step,) = client.get(f"/api/v1/instances/{city['id']}", headers=token("agent1")).get_json()["tasks"]
    moved = client.post(f"/api/v1/tasks/{step['id']}/city-transfer", json={"group": "hz_city", "reason": "上门核查"},
                        headers=token("agent1"))
    assert moved.status_code == 200, moved.get_json()
    found = client.get("/api/v1/search?q=上官", headers=token("hzlead1")).get_json()
    assert [item["reference"] for item in found["items"]] == [city["reference"]] and found["total"] == 1
    assert client.get("/api/v1/search?q=上官", headers=token("leader1")).get_json()["total"] == 2
    _login(client, "hzlead1")
    page = client.get("/search?q=上官").get_data(as_text=True)
    assert city["reference"] in page and province["reference"] not in page
    exact = client.get("/search", query_string={"q": province["reference"]})
    assert exact.status_code == 200 and "没有您可查看的工单符合" in exact.get_data(as_text=True)
    assert client.get("/search", query_string={"q": "13900006666"}).status_code == 200
    assert province["reference"] not in client.get("/search?q=13900006666").get_data(as_text=True)


def test_inbox_filters_sort_and_the_live_rows(client, token, app):
    _first, first_task = _dispatched(client, token, complainant_name="甲")
    second, second_task = _dispatched(client, token, complainant_name="乙")
    with app.app_context():
        from web.extensions import db

        db.session.get(HumanTask, first_task).due_at = utcnow() - timedelta(minutes=35)
        index = db.session.get(CaseIndex, second)
        index.vip, index.priority = True, 7
        db.session.get(HumanTask, second_task).vip = True  # as the step opened for a VIP case writes it
        db.session.commit()
    _login(client, "net1")
    page = client.get("/inbox?scope=group").get_data(as_text=True)
    # The default order: VIP cases first, then by due time — the VIP step leads the overdue one.
    assert page.index(f'data-task-id="{second_task}"') < page.index(f'data-task-id="{first_task}"')
    assert "按到期时间排序（VIP优先）" in page
    assert "已超时 35分" in page and "还剩 " in page and "VIP" in page
    assert '<option value="handle"' in page and '<option value="triage"' in page  # steps from the diagrams

    def listed(query: str) -> set[int]:
        body = client.get("/inbox/rows?scope=group&" + query).get_data(as_text=True)
        return {t for t in (first_task, second_task) if f'data-task-id="{t}"' in body}

    assert listed("sla=overdue") == {first_task}
    assert listed("sla=ok") == {second_task}
    assert listed("vip=1") == {second_task} and listed("priority=5") == {second_task}
    assert listed("holder=none&step=handle&process=complaint") == {first_task, second_task}
    assert listed("process=outbound_callback") == set()
    assert listed("from=2000-01-01&to=2000-01-02") == set()
    assert listed("sla=bogus&priority=x&group=abc&sort=nonsense") == {first_task, second_task}  # ignored
    rows = client.get("/inbox/rows?scope=group&sort=priority")
    assert rows.headers["X-Kefu-Total"] == "2" and "<html" not in rows.get_data(as_text=True)
    body = rows.get_data(as_text=True)
    assert body.index(f'data-task-id="{second_task}"') < body.index(f'data-task-id="{first_task}"')
    with app.app_context():
        from web.extensions import db

        db.session.get(HumanTask, second_task).vip = False
        db.session.commit()
    body = client.get("/inbox/rows?scope=group").get_data(as_text=True)  # no VIP left: due time first
    assert body.index(f'data-task-id="{first_task}"') < body.index(f'data-task-id="{second_task}"')


def test_case_list_filters_and_pages_for_leaders(client, token, app):
    first, _first_task = _dispatched(client, token)
    second = _complaint(client, token)["id"]
    with app.app_context():
        from web.extensions import db

        db.session.get(CaseIndex, first).vip = True
        db.session.commit()
    _login(client, "leader1")

    def listed(query: str) -> set[int]:
        body = client.get("/cases?" + query).get_data(as_text=True)
        return {c for c in (first, second) if f'href="/cases/{c}"' in body}

    assert listed("") == {first, second}
    assert listed("vip=1") == {first}
    assert listed("step=handle") == {first} and listed("step=triage") == {second}
    assert listed("holder=none&sla=ok") == {first}
    assert listed("sort=due&process=complaint") == {first, second}
    assert listed("page=2") == set() and "共 2 个工单" in client.get("/cases").get_data(as_text=True)
    client.post("/views", data={"page": "cases", "name": "VIP工单", "query": "vip=1", "back": "/cases"})
    page = client.get("/cases").get_data(as_text=True)
    assert 'href="/cases?vip=1">VIP工单</a>' in page
    assert "VIP工单" not in client.get("/inbox").get_data(as_text=True)  # a view belongs to its page


def test_saved_views_are_per_user_and_replay_the_filters(client, app):
    _login(client, "net1")
    saved = client.post("/views", data={"page": "inbox", "name": "我的超时", "back": "/inbox?scope=group",
                                        "query": "scope=group&sla=overdue&page=3&vip="})
    assert saved.status_code == 302 and saved.headers["Location"] == "/inbox?scope=group"
    page = client.get("/inbox?scope=group").get_data(as_text=True)
    assert "已保存视图：我的超时" in page and 'href="/inbox?scope=group&amp;sla=overdue"' in page
    assert client.post("/views", data={"page": "inbox", "name": " ", "query": ""}).headers["Location"] == "/inbox"
    assert "请为视图起一个名称" in client.get("/inbox").get_data(as_text=True)
    with app.app_context():
        from web.extensions import db

        (view,) = db.session.scalars(select(SavedView)).all()
        assert parse_qs(view.query) == {"scope": ["group"], "sla": ["overdue"]}
        view_id = view.id
    _login(client, "agent1")
    assert "我的超时" not in client.get("/inbox").get_data(as_text=True)
    client.post(f"/views/{view_id}/delete", data={"back": "https://elsewhere.example/"})
    assert "该视图已不存在" in client.get("/inbox").get_data(as_text=True)
    _login(client, "net1")
    gone = client.post(f"/views/{view_id}/delete", data={"back": "/inbox"})
    assert urlsplit(gone.headers["Location"]).path == "/inbox"
    with app.app_context():
        from web.extensions import db

        assert db.session.scalars(select(SavedView)).all() == []


def test_bulk_claim_and_assign_with_refusals_in_words(client, token, app):
    tasks = [_dispatched(client, token)[1] for _ in range(3)]
    assert client.post(f"/api/v1/tasks/{tasks[0]}/claim", headers=token("net1")).status_code == 200
    _login(client, "netlead1")
    page = client.get("/inbox?scope=group").get_data(as_text=True)
    assert 'name="assignee_id"' in page and "网络部 赵磊" in page  # a leader assigns to members
    done = client.post("/inbox/bulk", data={"action": "claim", "task_id": [str(t) for t in tasks],
                                             "back": "/inbox?scope=group"}, follow_redirects=True)
    text = done.get_data(as_text=True)
    assert "已领取 2 个环节" in text and "该环节由他人处理中" in text
    handed = client.post("/inbox/bulk", data={"action": "assign", "assignee_id": "", "task_id": [str(tasks[1])]},
                         follow_redirects=True).get_data(as_text=True)
    assert "请选择组内成员" in handed
    with app.app_context():
        from engine.people import user_by_name
        from web.extensions import db

        net1, bill1 = user_by_name(db.session, "net1").id, user_by_name(db.session, "bill1").id
    handed = client.post("/inbox/bulk", data={"action": "assign", "assignee_id": str(net1),
                                              "task_id": [str(tasks[1]), str(tasks[2])]}, follow_redirects=True)
    assert "已分派 2 个环节" in handed.get_data(as_text=True)
    refused = client.post("/inbox/bulk", data={"action": "assign", "assignee_id": str(bill1),
                                               "task_id": [str(tasks[1])]}, follow_redirects=True)
    assert "所选人员不在该环节的班组中" in refused.get_data(as_text=True)
    with app.app_context():
        from web.extensions import db

        assert [db.session.get(HumanTask, t).assignee_id for t in tasks[1:]] == [net1, net1]
        kinds = [e.kind for e in db.session.scalars(select(AuditEvent).where(AuditEvent.task_id == tasks[2])
                                                    .order_by(AuditEvent.id))]
        assert kinds[-2:] == ["task_claimed", "task_assigned"]  # audited as the single actions are
    # An agent (no group led) sees no assign control, and cannot assign by posting.
    _login(client, "net1")
    assert 'name="assignee_id"' not in client.get("/inbox?scope=group").get_data(as_text=True)
    denied = client.post("/inbox/bulk", data={"action": "assign", "assignee_id": str(net1),
                                              "task_id": [str(tasks[1])]}, follow_redirects=True)
    assert "只有班组长可以改派该环节" in denied.get_data(as_text=True)


def test_cases_from_before_the_index_are_backfilled_by_the_cli(client, token, app):
    case = _complaint(client, token, complainant_name="旧案客户", description="很早以前的投诉")
    with app.app_context():
        from sqlalchemy import delete

        from web.extensions import db

        db.session.execute(delete(CaseIndex))
        db.session.commit()
    assert client.get("/api/v1/search?q=旧案", headers=token("agent1")).get_json()["total"] == 0
    result = app.test_cli_runner().invoke(args=["kefu", "reindex-cases"])
    assert result.exit_code == 0 and "1 cases indexed" in result.output, result.output
    found = client.get("/api/v1/search?q=很早以前", headers=token("agent1")).get_json()
    assert [i["id"] for i in found["items"]] == [case["id"]]
    again = app.test_cli_runner().invoke(args=["kefu", "reindex-cases"])
    assert "0 cases indexed" in again.output
