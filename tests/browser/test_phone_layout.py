"""Phone-size screens (390 px): no page scrolls sideways, and the header's links stay reachable —
the leader's alerts page and a handler's task included (issue 16)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import api, login
from tests.conftest import INTAKE

PAGES = {"leader1": ["/inbox?scope=group", "/escalations", "/cases"],
         "net1": ["/inbox?scope=group"],
         "manager1": ["/reports/complaints", "/dunning", "/roaming", "/escalations"],
         "agent1": ["/complaints/new", "/customers"]}


@pytest.mark.slow
@pytest.mark.parametrize("username", sorted(PAGES))
def test_pages_fit_a_phone(browser, server, username):
    http = api(server, "agent1")
    case = http.post(server + "/api/v1/processes/complaint/instances", json={"data": INTAKE}, timeout=10).json()
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    try:
        page = context.new_page()
        login(page, server, username)
        for path in [*PAGES[username], f"/cases/{case['id']}"]:
            page.goto(server + path)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path} scrolls sideways by {overflow} px as {username}"
            links = page.locator("header.top nav a")
            for i in range(links.count()):
                box = links.nth(i).bounding_box()
                assert box is not None and box["width"] > 0 and 0 <= box["x"] and box["x"] + box["width"] <= 391, \
                    f"{path}: header link {links.nth(i).inner_text()!r} is off screen"
                # Readable: a link is one line, not its characters stacked in a squeezed column.
                assert box["height"] <= 30, f"{path}: header link {links.nth(i).inner_text()!r} is squeezed"
    finally:
        context.close()
