"""Escalation to the national centre (上报全国中心, issue 15): a province deployment sends a complaint
over the roaming exchange's transport to a second, real deployment playing the national centre
(its own server, database and company code, on loopback, as the roaming tests' partner); the
centre's answer comes back into the province's case history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.web.test_roaming import (
    SECRET,
    Deployment,
    _complete,
    _free_port,
    _make_app,
    _open_task,
    _page,
    _partners_file,
    _signed,
)

INTAKE = {"customer_phone": "13008710001", "complainant_name": "赵女士", "contact_phone": "13008710001",
          "channel": "phone", "category": "service", "description": "多省营业厅均无法办理携号转网"}


@pytest.fixture
def province_and_centre(tmp_path, monkeypatch) -> Iterator[tuple[Deployment, Deployment]]:
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    yn_port, qg_port = _free_port(), _free_port()
    yn_file = _partners_file(tmp_path / "yn-partners.json", [
        {"code": "QG", "name": "全国客服中心", "url": f"http://127.0.0.1:{qg_port}", "secret": SECRET,
         "national": True}])
    qg_file = _partners_file(tmp_path / "qg-partners.json", [  # the centre knows itself as national
        {"code": "QG", "name": "全国客服中心", "url": f"http://127.0.0.1:{qg_port}", "secret": SECRET,
         "national": True},
        {"code": "YN", "name": "云南联通", "url": f"http://127.0.0.1:{yn_port}", "secret": SECRET,
         "prefixes": ["1300871"]}])
    yn = Deployment(_make_app(tmp_path / "yn", "YN", yn_file), f"http://127.0.0.1:{yn_port}", yn_port).start()
    qg = Deployment(_make_app(tmp_path / "qg", "QG", qg_file), f"http://127.0.0.1:{qg_port}", qg_port).start()
    yield yn, qg
    from web.extensions import db

    for side in (yn, qg):
        side.stop()
        with side.app.app_context():
            db.session.remove()
            db.engine.dispose()


def out_due(side: Deployment) -> str:
    """The serial number of the province's escalation, read from its wait in the message index."""
    with side.app.app_context():
        from engine.messages import MessageWait
        from web.extensions import db

        (wait,) = db.session.query(MessageWait).filter_by(name="national_answer").all()
        db.session.remove()
        return wait.correlation


@pytest.mark.slow
def test_a_complaint_goes_to_the_national_centre_and_its_answer_comes_back(province_and_centre):
    yn, qg = province_and_centre
    started = yn.api().post(yn.url + "/api/v1/processes/complaint/instances", json={"data": INTAKE}, timeout=10)
    assert started.status_code == 201, started.text
    case = started.json()["id"]
    url = f"{yn.url}/api/v1/instances/{case}/national-escalation"
    assert yn.api("agent1").post(url, json={"reason": "x"}, timeout=10).status_code == 403  # agents may not
    assert yn.api("leader1").post(url, json={"reason": " "}, timeout=10).status_code in (400, 422)
    sent = yn.api("leader1").post(url, json={"reason": "涉及多省携号转网政策，需全国协调"}, timeout=10)
    assert sent.status_code == 201, sent.text
    assert (sent.json()["partner"], sent.json()["status"]) == ("QG", "sent")
    assert yn.api("leader1").post(url, json={"reason": "again"}, timeout=10).status_code == 409

    # The province's case waits in the diagram's step 等待全国中心答复, on the diagram's clock.
    page = _page(yn, f"/cases/{case}", user="leader1")
    assert "等待全国中心答复（全国客服中心）" in page and "national-waiting" in page
    assert out_due(yn) == sent.json()["serial_no"]

    yn.tick(datetime.now(UTC))  # the signed dispatch goes out; the centre acknowledges it
    (out,) = yn.transfers()
    assert (out["partner"], out["status"]) == ("QG", "acknowledged")
    qg.tick(datetime.now(UTC))  # the centre opens its own case from the dispatch
    (incoming,) = qg.transfers()
    assert (incoming["direction"], incoming["partner"]) == ("in", "YN")
    # At the centre the case reads as a province's escalation, not as a roaming transfer.
    centre_page = _page(qg, f"/cases/{incoming['instance_id']}")
    assert "涉及多省携号转网政策" in centre_page
    assert "省公司上报全国中心：云南联通 上报单" in centre_page and "上报单 " + out["serial_no"] in centre_page
    assert "漫游投诉转递" not in centre_page and "漫游转递" not in centre_page

    triage = _open_task(qg, incoming["instance_id"])
    _complete(qg, triage["id"], {"resolution": "answer_now", "first_reply": "已协调广东、四川两省营业厅，三日内办结。",
                                        "satisfaction": "satisfied"})
    qg.tick(datetime.now(UTC))   # the receipt goes back
    yn.tick(datetime.now(UTC))   # … and into the province's case
    (answered,) = yn.transfers()
    assert answered["status"] == "answered" and answered["receipt"]["result"].startswith("已协调")
    page = _page(yn, f"/cases/{case}", user="leader1")
    assert "全国中心答复" in page and "已协调广东、四川两省营业厅" in page
    assert "上报全国中心" in page and "全国客服中心" in page
    assert "national-waiting" not in page  # the answer resumed the wait
    with yn.app.app_context():
        from engine.messages import MessageWait
        from web.extensions import db

        assert db.session.query(MessageWait).filter_by(instance_id=case).count() == 0
        db.session.remove()
    # The centre sends its receipt again: the same success mark, nothing changes.
    again = _signed(yn.app.test_client(), "/api/v1/roaming/receipts",
                    {**answered["receipt"], "result": "重发"}, company="QG")
    assert again.status_code == 200 and again.get_json()["ack"] == "ok"
    yn.tick(datetime.now(UTC))
    (still,) = yn.transfers()
    assert still["receipt"]["result"].startswith("已协调")
    assert _page(yn, f"/cases/{case}", user="leader1").count("已协调广东、四川两省营业厅") == page.count("已协调广东、四川两省营业厅")
    # the province's own complaint went on meanwhile: its first step is still open at intake
    assert _open_task(yn, case)["title"]
    # The exchange's list names the escalation as one at both ends.
    assert "上报全国中心</td>" in _page(yn, "/roaming", user="manager1")
    assert "由该省公司上报至本中心</td>" in _page(qg, "/roaming", user="manager1")


def test_the_shipped_partners_name_a_national_centre_that_homes_no_number():
    from processes.roaming_partners import load_partners

    partners = load_partners("YN", None, "http://127.0.0.1:5000")
    centre = partners.national_centre()
    assert centre is not None and (centre.code, centre.name) == ("QG", "全国客服中心")
    assert partners.is_national("QG") and not partners.is_national("GD")
    assert partners.home_of("13000200001").code == "GD"


@pytest.mark.slow
def test_a_dispatch_from_the_national_centre_is_worded_as_one_and_upgraded(province_and_centre):
    """The other way down: the centre passes a complaint to the province homing the number; the
    province's case reads as the national centre's dispatch (全国中心派单) and is upgraded."""
    yn, qg = province_and_centre
    sample = {**INTAKE, "customer_phone": "13008710002", "contact_phone": "13008710002",
              "description": "全国中心受理：客户在云南营业厅办理业务被拒"}
    started = qg.api().post(qg.url + "/api/v1/processes/roaming_transfer/instances", json={"data": sample}, timeout=10)
    assert started.status_code == 201, started.text
    qg.tick(datetime.now(UTC))   # the dispatch goes down to Yunnan
    yn.tick(datetime.now(UTC))   # … which opens its complaint
    (incoming,) = yn.transfers()
    assert (incoming["direction"], incoming["partner"]) == ("in", "QG")
    page = _page(yn, f"/cases/{incoming['instance_id']}", user="leader1")
    assert "全国中心派单：全国客服中心 派单" in page and "全国中心派单 " + incoming["serial_no"] in page
    assert "漫游投诉转递" not in page
    # The centre's side words its own dispatch as one sent down (下发至省公司), not as a roaming transfer.
    centre_page = _page(qg, f"/cases/{started.json()['id']}", user="leader1")
    assert "全国中心下发至省公司</h2>" in centre_page and "下发至省公司（云南联通）" in centre_page
    assert "<b>下发至省公司</b>" in centre_page  # the history's line
    assert "转递归属地" not in centre_page and "漫游投诉转递</h2>" not in centre_page
    listed = _page(qg, "/roaming", user="manager1")
    assert "<td>下发至省公司</td>" in listed and "转递归属地" not in listed
    with yn.app.app_context():
        from slas.upgrades import is_upgraded
        from web.extensions import db

        assert is_upgraded(db.session, incoming["instance_id"])  # 越级投诉: stricter limits
        db.session.remove()


def test_only_the_centre_words_a_dispatch_down_to_a_province(app):
    """Who words a dispatch as 下发至省公司: the national centre (its own entry marked national) for
    its dispatches to a province — in the transfer's kind and in the history's lines (the
    transfer case's dispatch, a complaint passed on); a province keeps 转递归属地."""
    from engine.models import AuditEvent
    from processes import national
    from processes.roaming import IN, OUT, RoamingTransfer
    from processes.roaming_partners import Partner, Partners
    from web.case_text import event_sentence

    qg, yn, gd = (Partner("QG", "全国客服中心", "", "", national=True), Partner("YN", "云南联通", "", "", ("1300871",)),
                  Partner("GD", "广东联通", "", "", ("1300020",)))
    centre = Partners("QG", {p.code: p for p in (qg, yn, gd)})
    province = Partners("YN", {p.code: p for p in (qg, yn, gd)})
    down = RoamingTransfer(direction=OUT, company_code="QG", partner="YN")
    assert (national.is_centre(centre), national.kind_of(centre, down)) == (True, national.DISPATCH_DOWN)
    assert national.kind_of(province, RoamingTransfer(direction=OUT, company_code="YN", partner="GD")) == national.ROAMING
    assert national.kind_of(province, RoamingTransfer(direction=OUT, company_code="YN", partner="QG")) \
        == national.ESCALATION_OUT
    assert national.kind_of(centre, RoamingTransfer(direction=IN, company_code="YN", partner="YN", dispatch={})) \
        == national.ESCALATION_IN
    # a centre whose own entry is not marked national does not know itself as the centre
    assert national.kind_of(Partners("QG", {"YN": yn}), down) == national.ROAMING

    passed_on = AuditEvent(kind="roaming_transferred", message="→ 云南联通")
    sent = AuditEvent(kind="roaming_sent", message="电子派单 QG20261206000001 → 云南联通")
    exchange = app.extensions["kefu_roaming"]
    with app.test_request_context("/"):
        exchange.partners = province
        assert event_sentence(passed_on).title == "已转递归属地省处理"
        exchange.partners = centre
        assert (event_sentence(passed_on).title, event_sentence(passed_on).detail) == ("下发至省公司", "→ 云南联通")
        assert event_sentence(sent).title == "下发至省公司"
    with app.test_request_context("/?lang=en"):
        assert event_sentence(sent).title == "Dispatched to the province"
