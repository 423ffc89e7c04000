"""Forms tell the agent what they expect: a number's expected form in words, and a star on a
field that only some choices require — from the same schema rules the engine checks."""

from __future__ import annotations

import json
from pathlib import Path

from flask import render_template_string

from tests.conftest import INTAKE
from web.schema_forms import fields_of

FORMS = Path(__file__).resolve().parents[2] / "bpmn" / "forms"


def _login(client, username: str) -> None:
    client.post("/logout")
    assert client.post("/login", data={"username": username, "password": "kefu-demo"}).status_code == 302


def test_a_number_with_dashes_is_refused_at_intake_with_the_expected_form(client, token):
    response = client.post("/api/v1/processes/complaint/instances", headers=token("agent1"),
                           json={"data": {**INTAKE, "contact_phone": "139-0000-1234"}})
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"contact_phone"}
    assert "只填数字" in response.get_json()["fields"]["contact_phone"]

    _login(client, "agent1")
    form = {**INTAKE, "contact_phone": "139-0000-1234", "description": "手机经常掉线，打不出去"}
    page = client.post("/cases/new/complaint", data=form, headers={"Accept-Language": "zh-CN"})
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert "格式不对。只填数字" in html and "取值无效" not in html
    assert "手机经常掉线，打不出去" in html  # the agent's typing is kept


def test_a_conditionally_required_field_carries_a_star_that_follows_its_control():
    schema = json.loads((FORMS / "acceptance_request.schema.json").read_text(encoding="utf-8"))
    by_name = {f.name: f for f in fields_of(schema, {"request_type": "feature_on"}, {}, "zh_Hans_CN")}
    assert by_name["feature"].required_now and not by_name["bill_address"].required_now
    assert [c.as_json for c in by_name["feature"].conditions] == [["request_type", ["feature_on", "feature_off"], False]]
    assert by_name["contact_phone"].label == "联系电话"  # not the loss report's label for every request
    by_name = {f.name: f for f in fields_of(schema, {"request_type": "change_password"}, {}, "zh_Hans_CN")}
    assert by_name["new_password"].required_now and not by_name["feature"].required_now


def test_an_else_rule_marks_the_field_required_unless_the_choice_is_made(app):
    schema = json.loads((FORMS / "complaint_handle.schema.json").read_text(encoding="utf-8"))
    fields = fields_of(schema, {}, {}, "zh_Hans_CN")
    cause = next(f for f in fields if f.name == "cause")
    assert cause.required_now  # no outcome chosen yet: handling it here is the default
    assert not cause.conditions[0].holds({"handle_outcome": "pass_on"})
    with app.test_request_context():
        html = render_template_string('{% from "_macros.html" import form_fields %}{{ form_fields(fields) }}',
                                      fields=fields)
    star = html[html.index('data-field="cause"'):]
    star = star[star.index("req-when"):star.index("</label>")]
    assert "handle_outcome" in star and "pass_on" in star and "hidden" not in star
