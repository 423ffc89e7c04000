"""The live inbox in a real browser (issue 16): the rows reload themselves and new work is marked
and counted in the tab's title; each row's SLA countdown is computed in the browser from the step's
due time ("还剩 1小时20分" / "已超时 35分"); the header's search finds a case."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.browser.conftest import api, login
from tests.conftest import INTAKE


@pytest.fixture
def fast_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server under test reloads inbox rows every 2 s instead of 15 (set before it starts)."""
    monkeypatch.setenv("KEFU_INBOX_REFRESH_SECONDS", "2")


def _dispatch(http, server: str, **changes) -> int:
    """A complaint handed to the network department; the department's open step id."""
    base = server + "/api/v1"
    case = http.post(base + "/processes/complaint/instances", json={"data": {**INTAKE, **changes}}, timeout=10).json()
    (triage,) = http.get(f"{base}/instances/{case['id']}", timeout=10).json()["tasks"]
    done = http.post(f"{base}/tasks/{triage['id']}/complete", timeout=10, json={"data": {
        "resolution": "dispatch", "first_reply": "已派单网络部", "department": "network",
        "final_reply_due": (datetime.now(UTC) + timedelta(days=30)).isoformat()}})
    assert done.status_code == 200, done.text
    (handle,) = http.get(f"{base}/instances/{case['id']}", timeout=10).json()["tasks"]
    return handle["id"]


@pytest.mark.slow
def test_the_inbox_refreshes_itself_and_counts_down_in_the_browser(fast_refresh, browser, server, page):
    http = api(server, "agent1")
    first = _dispatch(http, server, complainant_name="欧阳娜娜")
    login(page, server, "net1")
    page.goto(server + "/inbox?scope=group")
    row = page.locator(f'tr[data-task-id="{first}"]')
    assert re.fullmatch(r"还剩 (\d+天\d+小时|\d+小时\d+分|\d+分)", row.locator(".countdown").inner_text())
    assert page.title().startswith("待办")

    # New work arrives while the page is open: its row appears, marked, and the title counts it.
    second = _dispatch(http, server, complainant_name="李四")
    fresh = page.locator(f'tr.fresh[data-task-id="{second}"]')
    fresh.wait_for(timeout=10_000)
    assert page.locator("#new-work").inner_text() == "1 条新任务"
    assert page.title().startswith("(1) ")
    assert not page.locator(f'tr.fresh[data-task-id="{first}"]').count()

    # The countdown is the browser's own: rows whose due time is 35 min ago read "已超时 35分"
    # even though the server's text said otherwise.
    due = (datetime.now(UTC) - timedelta(minutes=35, seconds=20)).isoformat()

    def overdue_rows(route):
        response = route.fetch()
        body = re.sub(r'data-due="[^"]+"', f'data-due="{due}"', response.text())
        route.fulfill(response=response, body=body)

    page.route("**/inbox/rows**", overdue_rows)
    page.wait_for_function(
        "id => (document.querySelector(`tr[data-task-id='${id}'] .countdown`) || {}).textContent === '已超时 35分'",
        arg=first, timeout=10_000)
    assert "late" in (row.locator(".countdown").get_attribute("class") or "")
    page.unroute("**/inbox/rows**")

    # The header's search box finds a case by the customer's name.
    page.fill("header.top form.search input[name=q]", "欧阳")
    page.press("header.top form.search input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"/search\?q="))
    assert page.locator("table.search-results tbody tr").count() == 1
    assert "欧阳娜娜" in page.locator("table.search-results").inner_text()
    assert page.js_errors == []
