"""The billing interim-table connector on a real database: SQLite always, PostgreSQL as well when
KEFU_TEST_BILLING_URL is set (each test then starts from an empty set of kf_ tables)."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, insert, inspect, select, text, update

from connectors.base import INLINE, OUTBOX, Call, NotReady, PermanentError, TransientError
from connectors.billing import BillingGateway, check_password, codes, demo_data, hash_password, operations
from connectors.billing import gateway as gateway_module
from connectors.billing.gateway import month_bounds
from connectors.billing.schema import (
    DDL_DIR,
    change_requests,
    customers,
    metadata,
    password_handover,
    render_ddl,
    service_orders,
    subscriptions,
)
from connectors.billing.simulator import BillingSimulator

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 23)
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
VIP, ARREARS, BLACKLISTED = demo_data.CONTRACT_NUMBERS


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Seeding and checks hash a few passwords per test: cheaply here (production keeps N=2**14)."""
    monkeypatch.setattr(gateway_module, "SCRYPT_N", 2**8)
    demo_data.demo_hash.cache_clear()
    yield
    demo_data.demo_hash.cache_clear()


@pytest.fixture
def billing_url(tmp_path: Path) -> str:
    url = os.environ.get("KEFU_TEST_BILLING_URL")
    if not url:
        return f"sqlite:///{tmp_path / 'billing.db'}"
    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def gateway(billing_url: str) -> Iterator[BillingGateway]:
    gateway = BillingGateway(billing_url, timeout=5)
    yield gateway
    gateway.close()


@pytest.fixture
def seeded(gateway: BillingGateway) -> BillingGateway:
    demo_data.seed(gateway, subscribers=30, today=TODAY, calls_per_day=0.6)
    return gateway


def _walk_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _walk_keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _walk_keys(inner)


def _finish(gateway: BillingGateway, at: datetime = T0) -> None:
    """Let the demo billing side pick up and finish everything that is NEW."""
    simulator = BillingSimulator(gateway, delay=timedelta(seconds=5))
    simulator.run_once(at)
    simulator.run_once(at + timedelta(seconds=6))


# -- schema, DDL and documentation ------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_shipped_ddl_is_the_rendering_of_the_schema(dialect: str) -> None:
    assert (DDL_DIR / f"{dialect}.sql").read_text("utf-8") == render_ddl(dialect)


def test_the_sqlite_ddl_creates_every_table(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "ddl.db")
    conn.executescript((DDL_DIR / "sqlite.sql").read_text("utf-8"))
    conn.close()
    engine = create_engine(f"sqlite:///{tmp_path / 'ddl.db'}")
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) == set(metadata.tables)
    for table in metadata.tables.values():
        assert [c["name"] for c in inspector.get_columns(table.name)] == [c.name for c in table.columns]
    engine.dispose()


def test_every_column_is_commented_and_documented() -> None:
    doc = (ROOT / "docs" / "billing-interim-tables.md").read_text("utf-8")
    for table in metadata.tables.values():
        assert table.comment and table.info["writer"] in ("billing", "kefu")
        section = doc.split(f"### `{table.name}`", 1)
        assert len(section) == 2, f"{table.name} has no section in the document"
        body = section[1].split("\n### ", 1)[0]
        for column in table.columns:
            assert column.comment, f"{table.name}.{column.name} has no comment"
            assert f"`{column.name}`" in body, f"{table.name}.{column.name} is not documented"
    for code in list(codes.REQUEST_TYPES) + list(codes.FEATURES) + list(codes.ORDER_STATUSES):
        assert f"`{code}`" in doc


# -- demo data --------------------------------------------------------------------------------------
def test_the_demo_holds_the_contract_numbers(seeded: BillingGateway) -> None:
    vip, late, listed = (seeded.standing(n) for n in (VIP, ARREARS, BLACKLISTED))
    assert vip["can_accept"] and vip["reasons_zh"] == [] and not vip["blacklisted"]
    assert seeded.customer_360(VIP)["customer"]["level"] == "vip"
    assert not late["can_accept"] and late["arrears_fen"] > 0 and not late["blacklisted"]
    assert late["reasons_zh"] == [f"该用户欠费 ¥{codes.yuan(late['arrears_fen'])}"]
    assert "缴清欠费" in late["advice_zh"][0] and late["message_zh"].startswith("该用户欠费")
    assert not listed["can_accept"] and listed["blacklisted"] and listed["arrears_fen"] == 0
    assert listed["blacklist_reason"] == "恶意欠费"
    assert listed["message_zh"] == "该用户在黑名单中（原因：恶意欠费），需本人持有效证件到营业厅办理"
    for number in demo_data.CONTRACT_NUMBERS:
        assert seeded.verify_service_password(number, "123456")
        assert not seeded.verify_service_password(number, "123457")
    assert not seeded.verify_service_password("13900000000", "123456")


def test_demo_data_is_realistic_and_avoids_the_reserved_numbers(seeded: BillingGateway) -> None:
    with seeded.connect() as conn:
        phones = list(conn.scalars(text("SELECT phone FROM kf_subscriptions")))
        others = list(conn.scalars(text("SELECT other_party FROM kf_call_details WHERE other_party IS NOT NULL")))
        others += list(conn.scalars(text("SELECT contact_phone FROM kf_customers")))
        others += list(conn.scalars(text("SELECT phone FROM kf_blacklist WHERE phone IS NOT NULL")))
        levels = dict(conn.execute(text("SELECT level, count(*) FROM kf_customers GROUP BY level")).all())
        statuses = set(conn.scalars(text("SELECT DISTINCT status FROM kf_subscriptions")))
        in_arrears = conn.scalar(text("SELECT count(*) FROM kf_balances WHERE arrears_fen > 0"))
        prepaid = conn.scalar(text("SELECT count(*) FROM kf_subscriptions WHERE prepaid"))
    assert len(phones) == 30 and len(set(phones)) == 30
    mobiles = [p for p in phones if p.startswith("1")]
    assert all(re.fullmatch(r"1[358]\d{9}", p) for p in mobiles) and len(mobiles) > 20
    assert not [n for n in phones + others if n.startswith("1389999")]
    assert levels.get("vip", 0) >= 1 and levels.get("standard", 0) > 10
    assert "active" in statuses and in_arrears >= 1 and prepaid >= 1


def test_seeding_is_deterministic_idempotent_and_never_touches_a_real_database(tmp_path: Path) -> None:
    def fingerprint(gateway: BillingGateway) -> list[Any]:
        with gateway.connect() as conn:
            return [list(conn.execute(text(q)).all()) for q in (
                "SELECT phone, status, features FROM kf_subscriptions ORDER BY id",
                "SELECT subscription_id, bill_month, total_fen FROM kf_bills ORDER BY id",
                "SELECT count(*), sum(fee_fen) FROM kf_call_details")]

    first, second = (BillingGateway(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    counts = demo_data.seed(first, subscribers=40, today=TODAY)
    assert counts["kf_subscriptions"] == 40 and counts["kf_call_details"] > 1000
    assert demo_data.seed(first, subscribers=40, today=TODAY) == {}  # already seeded: nothing
    demo_data.seed(second, subscribers=40, today=TODAY)
    assert fingerprint(first) == fingerprint(second)
    assert first.is_demo()

    real = BillingGateway(f"sqlite:///{tmp_path / 'real.db'}")
    real.create_schema(T0)
    with real.connect(write=True) as conn:
        conn.execute(insert(customers).values(id=1, name="x", customer_type="person", id_type="id_card",
                                              id_number="1", created_at=T0, updated_at=T0))
        conn.execute(insert(subscriptions).values(
            id=1, customer_id=1, phone="13312345678", service_type="gsm", status="active", prepaid=False,
            service_password_hash="x", opened_at=T0, updated_at=T0))
    assert demo_data.seed(real, subscribers=40, today=TODAY) == {} and not real.is_demo()
    for gateway in (first, second, real):
        gateway.close()


def test_mobile_numbers_are_distinct_and_never_reserved() -> None:
    numbers = [demo_data.mobile_number(i) for i in range(50_000)]
    assert len(set(numbers)) == len(numbers)
    assert not [n for n in numbers if n.startswith(("1389999", "13800000"))]


# -- customer 360, call details, standing -----------------------------------------------------------
def test_customer_360_shows_three_months_and_masks_what_is_sensitive(seeded: BillingGateway,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    view = seeded.customer_360(VIP)
    json.dumps(view)  # JSON-able as it is
    keys = set(_walk_keys(view))
    assert not keys & {"service_password_hash", "id_number", "puk_code", "password"}
    with seeded.connect() as conn:
        id_number = conn.scalar(select(customers.c.id_number).where(customers.c.id == view["customer"]["id"]))
        puk = conn.scalar(select(subscriptions.c.puk_code).where(subscriptions.c.phone == VIP))
    assert view["customer"]["id_number_masked"] == id_number[:4] + "*" * 10 + id_number[-4:]
    assert puk not in json.dumps(view) and id_number not in json.dumps(view) and id_number not in caplog.text
    assert view["customer"]["level_label"] == "VIP客户" and view["subscription"]["status"] == "active"
    months = [bill["month"] for bill in view["bills"]]
    assert months == ["2026-10", "2026-09", "2026-08"]
    for bill in view["bills"]:
        assert bill["items"] and sum(i["amount_fen"] for i in bill["items"]) == bill["total_fen"]
    assert view["payments"] and view["blacklist"] is None and view["account"]["arrears_fen"] == 0
    assert {f["code"] for f in view["subscription"]["features"]} >= set(codes.FEATURES)
    assert view["orders"][0]["summary_zh"] == "开通功能：国际长途"
    assert seeded.customer_360(BLACKLISTED)["blacklist"]["reason_label"] == "恶意欠费"
    assert seeded.customer_360("13900000000") is None


def test_call_details_of_a_month_in_beijing_time(seeded: BillingGateway) -> None:
    start, end = month_bounds("2026-10")
    assert start == datetime(2026, 9, 30, 16, tzinfo=UTC) and end == datetime(2026, 10, 31, 16, tzinfo=UTC)
    rows = seeded.call_details(VIP, "2026-10", limit=1000)
    assert len(rows) > 20
    times = [datetime.fromisoformat(r["started_at"]) for r in rows]
    assert times == sorted(times) and start <= times[0] and times[-1] < end
    assert seeded.call_details(VIP, "2026-10", limit=5, offset=5) == rows[5:10]
    assert seeded.call_details(VIP, "2025-01") == [] and seeded.call_details("13900000000", "2026-10") == []
    with pytest.raises(PermanentError, match="YYYY-MM"):
        seeded.call_details(VIP, "2026-13")


def test_standing_of_an_unknown_number(seeded: BillingGateway) -> None:
    standing = seeded.standing("13900000000")
    assert standing["found"] is False and standing["can_accept"] is False
    assert "不是本系统用户" in standing["reasons_zh"][0]


def test_password_hashes() -> None:
    assert gateway_module.hash_password.__kwdefaults__ == {"salt": None, "n": None}
    stored = hash_password("802417", n=2**14)
    assert stored.startswith("scrypt$16384$8$1$") and "802417" not in stored
    assert check_password(stored, "802417") and not check_password(stored, "802418")
    assert not check_password("md5$abc", "802417") and not check_password(None, "802417")


# -- failures of the billing database ---------------------------------------------------------------
def test_an_unreachable_sqlite_database_is_transient(tmp_path: Path) -> None:
    gateway = BillingGateway(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'billing.db'}")
    with pytest.raises(TransientError, match="billing interim database unavailable"):
        gateway.customer_360(VIP)
    with pytest.raises(TransientError):
        gateway.submit_order("k", VIP, "suspend")
    gateway.close()


def test_an_unreachable_postgresql_is_transient_and_keeps_its_password_secret() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = BillingGateway(f"postgresql+psycopg://kefu:s3cret@127.0.0.1:{port}/billing", timeout=2)
    with pytest.raises(TransientError) as caught:
        gateway.await_order("k")
    assert "s3cret" not in str(caught.value) and "s3cret" not in repr(gateway)
    gateway.close()


def test_a_locked_database_is_transient_and_the_retry_writes_once(tmp_path: Path) -> None:
    gateway = BillingGateway(f"sqlite:///{tmp_path / 'billing.db'}", timeout=0.2)
    demo_data.seed(gateway, subscribers=10, today=TODAY)
    blocker = sqlite3.connect(tmp_path / "billing.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # billing busy with a long write
    with pytest.raises(TransientError, match="locked"):
        gateway.submit_order("job-1", VIP, "feature_on", {"feature": "intl_roaming"}, T0)
    blocker.execute("ROLLBACK")
    blocker.close()
    order = gateway.submit_order("job-1", VIP, "feature_on", {"feature": "intl_roaming"}, T0)
    again = gateway.submit_order("job-1", VIP, "feature_on", {"feature": "intl_roaming"}, T0)
    assert order["created"] and not again["created"] and again["id"] == order["id"]
    with gateway.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(service_orders)
                           .where(service_orders.c.idempotency_key == "job-1")) == 1
    gateway.close()


# -- service orders ---------------------------------------------------------------------------------
def _count(gateway: BillingGateway, key: str) -> int:
    with gateway.connect() as conn:
        return conn.scalar(select(func.count()).select_from(service_orders)
                           .where(service_orders.c.idempotency_key == key))


def test_an_order_is_written_once_per_key(seeded: BillingGateway) -> None:
    first = seeded.submit_order("job-7", VIP, "feature_on", {"feature": "intl_roaming"}, T0, "agent1")
    second = seeded.submit_order("job-7", VIP, "feature_on", {"feature": "intl_roaming"}, T0 + timedelta(minutes=1))
    assert first["created"] is True and second["created"] is False
    assert second["id"] == first["id"] and second["requested_at"] == T0.isoformat()
    assert first["status"] == "NEW" and first["summary_zh"] == "开通功能：国际漫游"
    assert _count(seeded, "job-7") == 1
    assert seeded.order(first["id"])["key"] == seeded.order("job-7")["key"] == "job-7"
    assert seeded.order("no-such-key") is None
    with pytest.raises(PermanentError, match="already used"):
        seeded.submit_order("job-7", ARREARS, "suspend")


def test_racing_workers_write_one_order(seeded: BillingGateway, billing_url: str) -> None:
    workers = 6
    gateways = [BillingGateway(billing_url, timeout=10) for _ in range(workers)]
    barrier = threading.Barrier(workers)
    results: list[Any] = []

    def submit(gateway: BillingGateway) -> None:
        barrier.wait()
        try:
            results.append(gateway.submit_order("race", VIP, "suspend", None, T0))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=submit, args=(g,)) for g in gateways]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for gateway in gateways:
        gateway.close()
    assert all(isinstance(r, dict) for r in results), results
    assert len({r["id"] for r in results}) == 1 and sum(r["created"] for r in results) == 1
    assert _count(seeded, "race") == 1


def test_the_unique_key_settles_a_race_the_first_read_missed(seeded: BillingGateway,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    first = seeded.submit_order("late", VIP, "suspend", None, T0)
    real_find, missed = BillingGateway._find, []

    def find_once_too_early(conn: Any, table: Any, key: str) -> Any:
        if not missed:  # as if the other worker committed just after our read
            missed.append(key)
            return None
        return real_find(conn, table, key)

    monkeypatch.setattr(BillingGateway, "_find", staticmethod(find_once_too_early))
    again = seeded.submit_order("late", VIP, "suspend", None, T0)
    assert missed == ["late"] and again["id"] == first["id"] and again["created"] is False
    assert _count(seeded, "late") == 1


@pytest.mark.parametrize(("request_type", "params", "message"), [
    ("fly_to_moon", {}, "未知的业务类型"),
    ("feature_on", {"feature": "teleport"}, "未知的功能代码"),
    ("feature_on", {}, "缺少参数：feature"),
    ("feature_off", {"feature": "sms", "colour": "red"}, "不支持参数：colour"),
    ("change_password", {"new_password": "12ab"}, "6位数字"),
    ("change_password", {"new_password": "111111"}, "过于简单"),
    ("set_family_numbers", {"numbers": ["13312345678", "13312345679", "13312345670", "13312345671"]}, "最多3个"),
    ("change_bill_address", {"bill_address": "  "}, "缺少账单地址"),
])
def test_bad_requests_are_refused_in_words_an_agent_understands(gateway: BillingGateway, request_type: str,
                                                                params: dict[str, Any], message: str) -> None:
    gateway.create_schema(T0)
    with pytest.raises(PermanentError, match=message):
        gateway.submit_order("bad", VIP, request_type, params, T0)
    assert _count(gateway, "bad") == 0


def test_an_order_for_an_unknown_number_is_refused(seeded: BillingGateway) -> None:
    with pytest.raises(PermanentError, match="不是本系统用户"):
        seeded.submit_order("nobody", "13900000000", "suspend", None, T0)
    assert _count(seeded, "nobody") == 0


def test_await_order_waits_then_reports_done_and_the_change_shows(seeded: BillingGateway) -> None:
    seeded.submit_order("open-roaming", VIP, "feature_on", {"feature": "intl_roaming"}, T0)
    simulator = BillingSimulator(seeded, delay=timedelta(seconds=5))
    with pytest.raises(NotReady) as waiting:
        seeded.await_order("open-roaming")
    assert waiting.value.delay == timedelta(seconds=5)
    assert simulator.run_once(T0) == 1
    assert seeded.order("open-roaming")["status"] == "PROCESSING"
    with pytest.raises(NotReady):
        seeded.await_order("open-roaming")
    assert simulator.run_once(T0 + timedelta(seconds=2)) == 0  # not yet: billing takes its time
    assert simulator.run_once(T0 + timedelta(seconds=6)) == 1
    result = seeded.await_order("open-roaming")
    assert result["status"] == "DONE" and result["reason"] is None
    assert result["finished_at"] == (T0 + timedelta(seconds=6)).isoformat()
    features = {f["code"]: f["on"] for f in seeded.customer_360(VIP)["subscription"]["features"]}
    assert features["intl_roaming"] is True


def test_billing_refuses_what_cannot_be_done_with_a_reason(seeded: BillingGateway) -> None:
    seeded.submit_order("sms-again", VIP, "feature_on", {"feature": "sms"}, T0)
    seeded.submit_order("resume-active", VIP, "resume", None, T0)
    seeded.submit_order("in-arrears", ARREARS, "feature_off", {"feature": "sms"}, T0)
    _finish(seeded)
    refused = {key: seeded.await_order(key) for key in ("sms-again", "resume-active", "in-arrears")}
    assert all(r["status"] == "REJECTED" for r in refused.values())
    assert refused["sms-again"]["reason"] == "短信已开通，无需重复办理"
    assert refused["resume-active"]["reason"] == "号码状态正常，无需开机"
    assert "欠费" in refused["in-arrears"]["reason"]


def test_suspend_loss_resume_address_and_password(seeded: BillingGateway,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seeded.submit_order("suspend", VIP, "suspend", None, T0)
    seeded.submit_order("address", VIP, "change_bill_address", {"bill_address": "广州市天河区体育西路1号",
                                                                 "postcode": "510620"}, T0)
    password = seeded.submit_order("password", VIP, "change_password", {"new_password": "802417"}, T0)
    assert password["params"] == {"new_password_hash": "******"}
    _finish(seeded)
    view = seeded.customer_360(VIP)
    assert (view["subscription"]["status"], view["subscription"]["status_reason"]) == (
        "two_way_suspended", "customer_request")
    assert view["customer"]["bill_address"] == "广州市天河区体育西路1号"
    assert seeded.verify_service_password(VIP, "802417") and not seeded.verify_service_password(VIP, "123456")
    with seeded.connect() as conn:
        stored = conn.scalar(select(service_orders.c.params).where(service_orders.c.idempotency_key == "password"))
    assert "802417" not in stored and "802417" not in caplog.text

    seeded.submit_order("resume", VIP, "resume", None, T0 + timedelta(minutes=1))
    _finish(seeded, T0 + timedelta(minutes=1))
    assert seeded.await_order("resume")["status"] == "DONE"
    seeded.submit_order("lost", VIP, "report_loss", {"contact_phone": "020-87654321"}, T0 + timedelta(minutes=2))
    seeded.submit_order("resume-lost", VIP, "resume", None, T0 + timedelta(minutes=3))
    _finish(seeded, T0 + timedelta(minutes=3))
    assert seeded.customer_360(VIP)["subscription"]["status_reason"] == "lost"
    assert "营业厅" in seeded.await_order("resume-lost")["reason"]


def test_family_numbers_are_for_prepaid_subscriptions(seeded: BillingGateway) -> None:
    with seeded.connect() as conn:
        prepaid = conn.scalar(select(subscriptions.c.phone).where(
            subscriptions.c.prepaid.is_(True), subscriptions.c.status == "active").order_by(subscriptions.c.id))
    prepaid_standing = seeded.standing(prepaid)
    assert prepaid_standing["can_accept"], prepaid_standing
    seeded.submit_order("family", prepaid, "set_family_numbers", {"numbers": "13312345678, 020-83335555"}, T0)
    seeded.submit_order("family-postpaid", VIP, "set_family_numbers", {"numbers": ["13312345678"]}, T0)
    _finish(seeded)
    assert seeded.await_order("family")["status"] == "DONE"
    assert seeded.customer_360(prepaid)["subscription"]["family_numbers"] == ["13312345678", "02083335555"]
    assert seeded.await_order("family-postpaid")["reason"] == "亲友号码仅适用于预付费用户"


def test_an_unknown_status_from_billing_is_a_permanent_error_naming_the_order(seeded: BillingGateway) -> None:
    order = seeded.submit_order("odd", VIP, "suspend", None, T0)
    with seeded.connect(write=True) as conn:  # billing writes something Kefu does not know
        conn.execute(update(service_orders).where(service_orders.c.id == order["id"]).values(status="FINISHED"))
    with pytest.raises(PermanentError) as caught:
        seeded.await_order("odd")
    message = str(caught.value)
    assert f"kf_service_orders {order['id']}" in message and "'FINISHED'" in message and "'odd'" in message
    assert seeded.order("odd")["status_label"].startswith("未知状态")
    with seeded.connect(write=True) as conn:  # a CHAR column pads with spaces: still understood
        conn.execute(update(service_orders).where(service_orders.c.id == order["id"])
                     .values(status="DONE      ", finished_at=T0))
    assert seeded.await_order("odd")["status"] == "DONE"


def test_a_rejection_without_a_reason_still_says_something(seeded: BillingGateway) -> None:
    order = seeded.submit_order("mute", VIP, "suspend", None, T0)
    with seeded.connect(write=True) as conn:
        conn.execute(update(service_orders).where(service_orders.c.id == order["id"])
                     .values(status="REJECTED", finished_at=T0))
    assert seeded.await_order("mute")["reason"] == "计费系统未说明拒绝原因"


def test_a_malformed_time_from_billing_is_a_permanent_error(seeded: BillingGateway) -> None:
    if seeded.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL itself refuses a malformed timestamp")
    order = seeded.submit_order("bad-time", VIP, "suspend", None, T0)
    with seeded.connect(write=True) as conn:
        conn.execute(text("UPDATE kf_service_orders SET status = 'DONE', finished_at = 'yesterday' WHERE id = :id"),
                     {"id": order["id"]})
    with pytest.raises(PermanentError, match="malformed"):
        seeded.await_order("bad-time")


def test_the_simulator_stays_off_a_real_billing_database(gateway: BillingGateway) -> None:
    gateway.create_schema(T0)
    with gateway.connect(write=True) as conn:
        conn.execute(insert(customers).values(id=1, name="x", customer_type="person", id_type="id_card",
                                              id_number="1", created_at=T0, updated_at=T0))
        conn.execute(insert(subscriptions).values(
            id=1, customer_id=1, phone="13312345678", service_type="gsm", status="active", prepaid=False,
            service_password_hash="x", opened_at=T0, updated_at=T0))
    gateway.submit_order("real", "13312345678", "suspend", None, T0)
    simulator = BillingSimulator(gateway)
    assert simulator.run_once(T0) == 0 and simulator.run_once(T0 + timedelta(minutes=1)) == 0
    assert gateway.order("real")["status"] == "NEW"


def test_change_requests(seeded: BillingGateway) -> None:
    request = seeded.submit_change_request("contact", VIP, {"email": "wjg@example.com", "preferred_language": "en"},
                                           T0, "agent1")
    assert request["created"] and request["summary_zh"] == "变更客户资料：电子邮箱、服务语种"
    assert not seeded.submit_change_request("contact", VIP, {"email": "wjg@example.com"}, T0)["created"]
    with pytest.raises(NotReady):
        seeded.await_change_request("contact")
    _finish(seeded)
    assert seeded.await_change_request("contact")["status"] == "DONE"
    customer = seeded.customer_360(VIP)["customer"]
    assert (customer["email"], customer["preferred_language"]) == ("wjg@example.com", "en")
    with pytest.raises(PermanentError, match="不能通过变更申请修改：id_number"):
        seeded.submit_change_request("id", VIP, {"id_number": "1"}, T0)
    with pytest.raises(PermanentError, match="电子邮箱格式"):
        seeded.submit_change_request("mail", VIP, {"email": "nope"}, T0)
    with seeded.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(change_requests)) == 1


# -- operations -------------------------------------------------------------------------------------
def test_operations_run_the_whole_loop(seeded: BillingGateway) -> None:
    ops = {op.name: op for op in operations(seeded)}
    assert {n: (op.mode, op.idempotent) for n, op in ops.items()} == {
        "billing.verify_password": (INLINE, False), "billing.check_standing": (INLINE, False),
        "billing.customer_360": (INLINE, False), "billing.prepare_order": (INLINE, False),
        "billing.submit_order": (OUTBOX, True), "billing.await_order": (OUTBOX, True), "billing.submit_change_request": (OUTBOX, True),
        "billing.await_change_request": (OUTBOX, True)}
    assert all(re.search(r"[\u4e00-\u9fff]", op.title) for op in ops.values())
    call = Call(job_id=1, key="job-1-submit", attempt=1, now=T0)
    assert ops["billing.verify_password"].run({"phone": VIP, "password": "123456"}, call) == {"ok": True}
    assert ops["billing.check_standing"].run({"phone": ARREARS}, call)["can_accept"] is False
    assert ops["billing.customer_360"].run({"phone": "13900000000"}, call)["found"] is False
    params = {"phone": VIP, "request_type": "feature_on", "params": '{"feature": "call_forwarding", '
                                                                     '"forward_to": "13312345678"}'}
    order = ops["billing.submit_order"].run(params, call)
    retried = ops["billing.submit_order"].run(params, Call(job_id=1, key="job-1-submit", attempt=2, now=T0))
    assert retried["id"] == order["id"] and order["key"] == "job-1-submit"
    with pytest.raises(NotReady):
        ops["billing.await_order"].run({"order_key": order["key"]}, call)
    _finish(seeded)
    done = ops["billing.await_order"].run({"order_key": order["key"]}, call)
    assert done["status"] == "DONE" and done["summary_zh"] == "开通功能：呼叫转移（转至13312345678）"
    with pytest.raises(PermanentError, match="JSON object"):
        ops["billing.submit_order"].run({**params, "params": "not json"}, call)


def test_prepare_order_checks_a_request_and_seals_a_new_password(seeded: BillingGateway) -> None:
    prepare = {op.name: op for op in operations(seeded)}["billing.prepare_order"].run
    call = Call(job_id=0, key="inline", attempt=1, now=T0)
    fields = {"feature": "intl_roaming", "bill_address": "not for features", "new_password": None}
    assert prepare({"request_type": "feature_on", "fields": fields}, call) == {
        "ok": True, "error_zh": "", "request_type": "feature_on", "params": {"feature": "intl_roaming"},
        "request_label": "开通国际漫游", "summary_zh": "开通功能：国际漫游"}
    assert prepare({"request_type": "feature_on", "fields": {}}, call)["error_zh"] == "开通功能缺少参数：feature"
    assert not prepare({"request_type": "change_password", "fields": {"new_password": "123456"}}, call)["ok"]
    changed = prepare({"request_type": "change_password", "fields": {"new_password": "730519"}}, call)
    # Neither the password nor its hash: a single-use token naming billing's hand-over row.
    assert "730519" not in str(changed) and "scrypt" not in str(changed)
    token = changed["params"]["new_password_ref"]
    with seeded.engine.connect() as conn:
        (hashed,) = conn.execute(select(password_handover.c.password_hash)
                                 .where(password_handover.c.token == token)).one()
    assert check_password(hashed, "730519")
    submit = {op.name: op for op in operations(seeded)}["billing.submit_order"].run
    order = submit({"phone": VIP, "request_type": "change_password", "params": changed["params"]},
                   Call(job_id=1, key="pw-order", attempt=1, now=T0))
    assert order["params"] == {"new_password_hash": "******"}
    again = submit({"phone": VIP, "request_type": "change_password", "params": changed["params"]},
                   Call(job_id=1, key="pw-order", attempt=2, now=T0))
    assert again["id"] == order["id"] and not again["created"]  # a retried job: the same order
    with seeded.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(password_handover)) == 0  # used once
        stored = json.loads(conn.scalar(select(service_orders.c.params).where(service_orders.c.id == order["id"])))
    assert stored == {"new_password_hash": hashed}
    with pytest.raises(PermanentError, match="交接记录已失效"):  # another order cannot reuse it
        submit({"phone": VIP, "request_type": "change_password", "params": changed["params"]},
               Call(job_id=2, key="pw-order-2", attempt=1, now=T0))
    family = prepare({"request_type": "set_family_numbers", "fields": {"family_numbers": "13900000001，13900000002"}},
                     call)
    assert family["params"] == {"numbers": ["13900000001", "13900000002"]}
