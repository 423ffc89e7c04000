"""English available (issue 15), fast: the billing system's codes on the 360 page are English words in
English and stay the connector's Chinese labels in Chinese; a label the English UI shows carries no
Chinese term in brackets."""

from __future__ import annotations

import re

from connectors.billing import codes
from connectors.billing.demo_data import VIP_NUMBER
from web.billing_words import ENGLISH

CHINESE = re.compile(r"[\u4e00-\u9fff]")


def _login(client, username: str, language: str) -> None:
    assert client.post("/login", data={"username": username, "password": "kefu-demo"}).status_code == 302
    client.get(f"/lang/{language}")


def _cells(html: str) -> str:
    """The page's table cells and definitions (where the billing words are)."""
    return " ".join(re.findall(r"<(?:td|dd)[^>]*>(.*?)</(?:td|dd)>", html, re.DOTALL))


def test_every_billing_code_shown_on_the_360_page_has_an_english_word():
    tables = {"level": codes.LEVELS, "customer_type": codes.CUSTOMER_TYPES, "id_type": codes.ID_TYPES,
              "language": codes.LANGUAGES, "service_type": codes.SERVICE_TYPES,
              "subscription_status": codes.SUBSCRIPTION_STATUSES, "status_reason": codes.STATUS_REASONS,
              "feature": codes.FEATURES, "bill_item": codes.BILL_ITEMS, "bill_status": codes.BILL_STATUSES,
              "payment_channel": codes.PAYMENT_CHANNELS, "record_type": codes.RECORD_TYPES,
              "roaming": codes.ROAMING, "long_distance": codes.LONG_DISTANCE,
              "blacklist_reason": codes.BLACKLIST_REASONS, "order_status": codes.ORDER_STATUSES,
              "request_type": codes.REQUEST_TYPES}
    for kind, table in tables.items():
        assert set(ENGLISH[kind]) == set(table), kind
        assert not any(CHINESE.search(word) for word in ENGLISH[kind].values()), kind


def test_the_360_page_in_english_shows_billing_words_in_english(client, billing):
    _login(client, "agent1", "en")
    html = client.get(f"/customers/{VIP_NUMBER}?reason=enquiry&month=2026-11").get_data(as_text=True)
    assert "Service language" in html and "王建国" in html  # English UI, the customer's own name
    for word in ("VIP customer", "Resident ID card", "Individual", "Mandarin", "GSM mobile", "Active",
                 "Monthly fee"):
        assert word in html, word
    cells = _cells(html)
    chinese_labels = {label for table in (codes.ID_TYPES, codes.CUSTOMER_TYPES, codes.LANGUAGES,
                                          codes.SUBSCRIPTION_STATUSES, codes.PAYMENT_CHANNELS, codes.ROAMING,
                                          codes.LONG_DISTANCE, codes.RECORD_TYPES, codes.FEATURES,
                                          codes.BILL_STATUSES, codes.BILL_ITEMS) for label in table.values()}
    # A label as a word of its own (短信 is inside 短信费).
    assert not [label for label in chinese_labels
                if re.search(rf"(?<![\u4e00-\u9fff]){re.escape(label)}(?![\u4e00-\u9fff])", cells)]


def test_the_360_page_in_chinese_keeps_the_connectors_labels(client, billing):
    _login(client, "agent1", "zh_CN")
    html = client.get(f"/customers/{VIP_NUMBER}?reason=enquiry&month=2026-11").get_data(as_text=True)
    for word in ("VIP客户", "居民身份证", "个人", "普通话", "正常", "月租费"):
        assert word in html, word
    assert "Resident ID card" not in html


def test_labels_in_english_carry_no_chinese_term(client):
    _login(client, "leader1", "en")
    page = client.get("/admin/reply-templates").get_data(as_text=True)
    assert "Reply templates" in page
    _login(client, "admin", "en")
    page = client.get("/admin/calendars/2026").get_data(as_text=True)
    assert "Adjusted working days" in page and "(调休上班)" not in page and "e.g. 国务院" not in page
    assert "(地市中心)" not in client.get("/admin/groups/new").get_data(as_text=True)
