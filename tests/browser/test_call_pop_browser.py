"""Screen pop in a real browser against the real server (``serve --demo``, its loopback PBX):
a leader rings agent1's extension from the demo page; agent1's open page turns into the caller's
customer page, agent2's page stays as it was; while agent1 types into a form, a second call only
shows the pop-up (nothing typed is lost)."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import login

pytestmark = pytest.mark.slow


def ring(page, base: str, caller: str, extension: str) -> None:
    page.goto(base + "/calls/simulate")
    page.fill("input[name=caller]", caller)
    page.select_option("select[name=extension]", extension)
    page.click("form.inline-form button.primary")
    page.wait_for_selector(".flash.success")


def test_inbound_call_pops_the_customer_page_on_the_rung_agent_only(browser, server, page) -> None:
    login(page, server, "agent1")
    others = [browser.new_context(locale="zh-CN") for _ in range(2)]
    try:
        agent2, leader = (context.new_page() for context in others)
        login(agent2, server, "agent2")
        login(leader, server, "leader1")
        page.goto(server + "/calls")
        agent2.goto(server + "/calls")
        page.wait_for_timeout(500)  # the stream is open

        ring(leader, server, "13800000001", "8001")
        page.wait_for_url(re.compile(r"/customers/13800000001\?.*call=\d+"), timeout=5_000)
        assert agent2.url.endswith("/calls") and agent2.locator(".call-pop").count() == 0

        # Typing a complaint: the next call only shows the pop-up, with its button.
        page.goto(server + "/complaints/new")
        page.fill(".start-form [name=description]", "信号差")
        page.wait_for_timeout(500)
        ring(leader, server, "13800000002", "8001")
        pop = page.locator(".call-pop")
        pop.wait_for(timeout=5_000)
        assert "来电 13800000002" in pop.inner_text()
        assert pop.locator("a", has_text="打开客户资料").get_attribute("href").startswith("/customers/13800000002")
        assert "/complaints/new" in page.url or "/cases/new/" in page.url
        assert page.input_value(".start-form [name=description]") == "信号差"
        assert page.js_errors == []
    finally:
        for context in others:
            context.close()
