"""Reply templates know every complaint category of the intake form (issue 14 added 装移机,
增值业务, 越级/申诉): a template can be saved for each, is offered for it, and its label is Chinese."""

from __future__ import annotations

import json

from processes import reply_templates
from tests.conftest import ROOT
from web.case_tools import CATEGORY_LABELS


def _intake_categories() -> list[str]:
    form = json.loads((ROOT / "bpmn" / "forms" / "complaint_intake.schema.json").read_text(encoding="utf-8"))
    return [choice["const"] for choice in form["properties"]["category"]["oneOf"]]


def test_every_intake_category_has_templates_and_a_label():
    codes = _intake_categories()
    assert {"installation", "value_added", "appeal"} <= set(codes)
    assert set(codes) <= set(reply_templates.CATEGORIES)
    assert set(codes) <= set(CATEGORY_LABELS)


def test_a_template_for_the_new_categories_is_saved_and_offered(app, client):
    assert client.post("/login", data={"username": "leader1", "password": "kefu-demo"}).status_code == 302
    for code, title in (("installation", "上门维修已预约"), ("value_added", "增值业务已退订"), ("appeal", "越级申诉已受理")):
        saved = client.post("/admin/reply-templates", data={"category": code, "title": title, "body": title + "。"})
        assert saved.status_code in (302, 303), saved.get_data(as_text=True)[:300]
    page = client.get("/admin/reply-templates").get_data(as_text=True)
    assert "装移机及维修人员服务" in page and "增值业务" in page and "越级/申诉" in page
    with app.app_context():
        from web.extensions import db

        assert [t.title for t in reply_templates.for_category(db.session, "appeal")] == ["越级申诉已受理"]
