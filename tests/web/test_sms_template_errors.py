"""A broken SMS template is refused in Chinese, saying what is wrong and on which line, and the
text the administrator typed comes back in its box for the correction (nothing is lost)."""

from __future__ import annotations

import html

import pytest

from processes.sms_templates import template_problem
from tests.web.test_pages import Browser


@pytest.mark.parametrize(("body", "kind", "line"), [
    ("尊敬的客户，\n工单号{{ reference 已受理", "unclosed_value", 2),
    ("工单号{{ reference }", "unclosed_value", 1),
    ("客户，\n工单号{{ reference 。", "bad_char", 2),
    ("{{ }}", "empty_value", 1),
    ("{% if reference %}有单号", "unclosed_block", None),
    ("好\n{% endif %}", "unknown_tag", 2),
    ("{{ reference | shout }}", "unknown_filter", 1),
    ("您好\n\n{{ referense }}", "unknown_value", 3),
    ('{{ "x" * 10**9 }}', "not_allowed", 1),
    ("您好\n{% for i in range(3) %}x{% endfor %}", "not_allowed", 2),
    ("{{ reference|center(1000000000) }}", "not_allowed", 1),
    ("{{ reference.__class__ }}", "not_allowed", 1),
    ("{{ reference.upper }}", "not_allowed", 1),   # a method's repr would reach the customer
    ("您好{{ lipsum }}", "not_allowed", 1),        # Jinja's globals are not values of the text
    ("{{ 'x' ~ reference }}" * 300, "body_too_long", None),
    ("{% if reference %}工单{{ reference|trim|truncate(20) }}{% endif %}", None, None),
])
def test_each_problem_is_named_with_its_line(body, kind, line):
    problem = template_problem("complaint_accepted", body)
    if kind is None:  # what a text template may say
        assert problem is None
        return
    assert problem is not None and problem.kind == kind
    if line:
        assert problem.line == line


def test_a_broken_template_is_refused_in_chinese_and_the_typing_is_kept(app):
    admin = Browser(app, "admin")
    body = "尊敬的客户，\n您的投诉已受理，工单号{{ reference 。【客服中心】"
    answer = admin.post("/admin/sms/templates/complaint_accepted", {"body": body})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "第2行：{{ }} 中不能有“。”：是否在它前面缺少 }}？" in html.unescape(page)
    assert "expected token" not in page and "cannot be rendered" not in page
    assert html.escape(body, quote=False) in page  # the edit is in its box, not the old text
    name = admin.post("/admin/sms/templates/complaint_accepted", {"body": "工单号{{ ref }}"})
    assert "没有名为 ref 的值" in name.get_data(as_text=True)
    fixed = admin.post("/admin/sms/templates/complaint_accepted", {"body": "工单号{{ reference }}已受理。"})
    assert fixed.status_code == 302


def test_a_loop_in_a_template_is_refused_in_words(app):
    admin = Browser(app, "admin")
    body = "您好\n{% for i in range(100000) %}{{ reference }}{% endfor %}"
    answer = admin.post("/admin/sms/templates/complaint_accepted", {"body": body})
    page = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 422
    assert "第2行：短信模板中不能使用 for" in page and html.escape(body, quote=False) in answer.get_data(as_text=True)
