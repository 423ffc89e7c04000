"""The desk tools in a real browser (issue 16): a leader acknowledges an alert on a phone, and a
handler inserts a reply template into the step's reply field."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from engine.database import engine_options
from tests.browser.conftest import login
from tests.browser.test_page_sweep import _prepare


def _one(db_url: str, sql: str) -> int:
    engine = create_engine(db_url, **engine_options(db_url))
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar()
    engine.dispose()
    assert value is not None, sql
    return value


@pytest.mark.slow
def test_a_leader_acknowledges_on_a_phone_and_a_handler_inserts_a_reply_template(
        browser, server, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    _prepare(db_url, tmp_path / "data")  # alerts raised, a network reply template saved

    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    try:
        page = phone.new_page()
        login(page, server, "leader1")
        page.goto(server + "/escalations?show=unacknowledged")
        before = page.locator("tr[data-escalation]").count()
        assert before > 0
        row = page.locator("tr[data-escalation]").first
        esc_id = row.get_attribute("data-escalation")
        row.get_by_role("button", name="确认").click()
        page.wait_for_load_state()
        assert "已确认告警" in page.inner_text(".flash.success")
        assert page.locator(f'tr[data-escalation="{esc_id}"]').count() == 0  # the unacknowledged view drops it
        assert page.locator("tr[data-escalation]").count() == before - 1
        page.goto(server + "/escalations")
        assert "确认" in page.inner_text(f'tr[data-escalation="{esc_id}"] .acked')
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    finally:
        phone.close()

    desk = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    try:
        page = desk.new_page()
        login(page, server, "net1")
        task_id = _one(db_url, "SELECT MIN(t.id) FROM human_tasks t JOIN groups g ON g.id = t.group_id "
                               "WHERE t.status = 'open' AND g.code = 'network'")
        page.goto(f"{server}/tasks/{task_id}")
        page.get_by_role("button", name="认领此任务").click()
        page.wait_for_load_state()
        field = page.locator("form.task-form textarea").first
        field.fill("经核查：")
        page.select_option("#reply-template", label="信号问题已派单（网络）")
        page.get_by_role("button", name="插入").click()
        assert field.input_value() == "经核查：\n您反映的信号问题已转网络部处理。"
        assert page.locator("[data-no-reply-field]").is_hidden()
    finally:
        desk.close()
