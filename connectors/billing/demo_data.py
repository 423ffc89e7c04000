"""DEMO ONLY — a deterministic demo billing database: a few thousand believable subscribers.

``seed(gateway)`` fills the interim tables the way a billing system would: customers (大众, 大客户,
VIP) in Guangdong with Chinese names and 18-digit ID numbers, GSM / fixed / IP / 193 subscriptions
on 13x/15x/18x numbers (never 1389999…), six months of itemised bills, payments and top-ups, call
details for the last three months, balances, some customers in arrears, some blacklisted. The
contract numbers are always there, all with service password 123456:

* 13800000001 — 王建国, VIP, in good standing;
* 13800000002 — 李明, in arrears;
* 13800000003 — 赵磊, blacklisted (恶意欠费).

The same ``seed`` and ``today`` give the same rows. Seeding a seeded database does nothing; a
database that holds subscriptions but no demo marker (a real billing database) is never touched.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Table, func, insert, select
from sqlalchemy.engine import Connection

from . import codes
from .gateway import BillingGateway, hash_password
from .schema import (
    balances,
    bill_items,
    bills,
    blacklist,
    call_details,
    customers,
    meta,
    payments,
    service_orders,
    subscriptions,
)

log = logging.getLogger("kefu.billing.demo")

DEMO_PASSWORD = "123456"
VIP_NUMBER, ARREARS_NUMBER, BLACKLISTED_NUMBER = "13800000001", "13800000002", "13800000003"
CONTRACT_NUMBERS = (VIP_NUMBER, ARREARS_NUMBER, BLACKLISTED_NUMBER)
FORBIDDEN_PREFIX = "1389999"   # reserved for tests and outside checks: never in demo data
RESERVED_PREFIX = "13800000"   # the contract numbers' block

MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
                   "153", "155", "156", "157", "158", "159", "180", "181", "182", "185", "186", "187",
                   "188", "189")
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
            "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫"
            "孔向汤")
GIVEN = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅文辉鹏飞斌宇浩凯俊帆亮晨晓婷"
         "雪琳欣怡佳慧子涵梓轩雨萱浩然思远嘉怡宏伟海燕春燕丹彤颖龙坤鑫宁博昊天翔淑贞")
COMPANY_WORDS = ("华信", "恒通", "盛达", "宏远", "鑫源", "新世纪", "金桥", "天成", "永安", "瑞丰", "粤海", "南方",
                 "创新", "嘉和", "远航")
INDUSTRIES = ("科技", "贸易", "物流", "实业", "建设", "电子", "医药", "餐饮", "置业", "网络", "纺织", "机械")
STREETS = ("中山路", "人民路", "解放路", "建设路", "环城路", "新华路", "工业大道", "滨江路", "东风路", "文明路",
           "学府路", "花园路", "迎宾大道", "朝阳街", "青年路")
# city → (districts, postcode, area code, ID-number region code)
CITIES: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "广州": (("天河区", "越秀区", "海珠区", "白云区", "番禺区"), "510000", "020", "440106"),
    "深圳": (("福田区", "南山区", "罗湖区", "宝安区", "龙岗区"), "518000", "0755", "440304"),
    "佛山": (("禅城区", "南海区", "顺德区"), "528000", "0757", "440604"),
    "东莞": (("南城街道", "东城街道", "虎门镇"), "523000", "0769", "441900"),
    "珠海": (("香洲区", "斗门区"), "519000", "0756", "440402"),
    "汕头": (("金平区", "龙湖区"), "515000", "0754", "440507"),
    "惠州": (("惠城区", "惠阳区"), "516000", "0752", "441302"),
    "中山": (("石岐区", "东区"), "528400", "0760", "442000"),
}
CITY_NAMES = tuple(CITIES)
CITY_WEIGHTS = (30, 26, 10, 10, 6, 6, 6, 6)
ROAMING_CITIES = ("北京", "上海", "杭州", "南京", "成都", "武汉", "长沙", "厦门")
ABROAD = ("香港", "澳门", "东京", "新加坡", "曼谷")
MANAGERS = ("陈静", "刘洋", "黄志强", "周敏", "吴晓燕")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3)  # ISO 7064 weights of GB 11643 (first ten; they repeat)
CALL_COLUMNS = ("id", "subscription_id", "started_at", "record_type", "other_party", "duration_s", "volume_kb",
                "location", "roaming", "long_distance", "fee_fen")
CALL_RATES = {"none": 20, "domestic": 70, "international": 800, "ip": 30}  # fen per started minute
ROAMING_RATES = {"none": 0, "provincial": 0, "national": 60, "international": 299}


# -- small deterministic generators (also used by bench/customer360.py) ------------------------------
def mobile_number(i: int) -> str:
    """The ``i``-th demo mobile number: distinct for every i ≥ 0, never in the reserved blocks.

    Bodies stay within 10000000-99989998, so nothing starts 1389999 or 13800000; the range's size
    (89,989,999) is prime to 26 × 27182819, so numbers of one prefix never repeat.
    """
    prefix = MOBILE_PREFIXES[i % len(MOBILE_PREFIXES)]
    return f"{prefix}{10_000_000 + (i * 27_182_819 + 2_345_671) % 89_989_999}"


def random_mobile(rng: random.Random) -> str:
    while True:
        number = f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(100_000_000):08d}"
        if not number.startswith((FORBIDDEN_PREFIX, RESERVED_PREFIX)):
            return number


def person_name(rng: random.Random) -> str:
    surname = SURNAMES[min(int(rng.expovariate(1 / 18)), len(SURNAMES) - 1)]  # common surnames first
    return surname + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def id_card_number(rng: random.Random, region: str, birth: date) -> str:
    """An 18-digit resident ID number with a valid check character (GB 11643)."""
    body = f"{region}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    total = sum(int(d) * ID_WEIGHTS[k % 10] for k, d in enumerate(body))
    return body + "10X98765432"[total % 11]


def address(rng: random.Random, city: str) -> str:
    district = rng.choice(CITIES[city][0])
    return f"广东省{city}市{district}{rng.choice(STREETS)}{rng.randint(1, 300)}号"


@lru_cache(maxsize=8)
def demo_hash(password: str, salt: bytes) -> str:
    """Hashing is deliberately slow; the demo reuses a few hashes (salted by seed) across rows."""
    return hash_password(password, salt=salt)


# -- the generator ---------------------------------------------------------------------------------
@dataclass
class _Rows:
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_id: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)  # kf_call_details, CALL_COLUMNS order

    def add(self, table: str, row: dict[str, Any], *, numbered: bool = True) -> int:
        """Append a row; ``numbered`` gives it the table's next id (otherwise the database does)."""
        row_id = self.next_id.get(table, 1)
        self.next_id[table] = row_id + 1
        if numbered:
            row["id"] = row_id
        self.tables.setdefault(table, []).append(row)
        return row_id


@dataclass
class _Plan:
    """What one subscription is to become (decided first, rows written after)."""

    phone: str
    service_type: str
    prepaid: bool
    city: str
    opened: date
    unpaid_months: int = 0
    status: str = "active"
    status_reason: str | None = None
    features: tuple[str, ...] = ()


class _Generator:
    def __init__(self, subscribers: int, seed: int, today: date, calls_per_day: float,
                 now: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.seed, self.today, self.target, self.calls_per_day = seed, today, subscribers, calls_per_day
        self.now = now or datetime.combine(today, time(2, 0), UTC)  # 10:00 in Beijing
        self.rows = _Rows()
        self.months = _months_before(today, 6)
        self.next_number = 0
        self.fixed_numbers: set[str] = set()
        self.next_call = 0
        # The other parties of calls: a pool is as good as fresh numbers and much cheaper.
        self.party_pool = [random_mobile(self.rng) for _ in range(2000)] + [
            f"{CITIES[self.rng.choice(CITY_NAMES)][2]}{self.rng.randrange(20_000_000, 90_000_000)}"
            for _ in range(500)]
        self.shared_hash = demo_hash(DEMO_PASSWORD, f"kefu-demo-{seed}".encode())

    def number(self, service_type: str, city: str) -> str:
        if service_type == "gsm":
            self.next_number += 1
            return mobile_number(self.next_number)
        while True:
            number = f"{CITIES[city][2]}{self.rng.randrange(20_000_000, 90_000_000)}"
            if number not in self.fixed_numbers:
                self.fixed_numbers.add(number)
                return number

    def run(self) -> _Rows:
        self.contract_customers()
        while self.rows.next_id.get("kf_subscriptions", 1) <= self.target:
            self.random_customer()
        self.blacklist_others()
        return self.rows

    # customers
    def customer(self, name: str, level: str, ctype: str, city: str, **extra: Any) -> int:
        rng = self.rng
        birth = date(rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28))
        if ctype == "company":
            id_type, id_number = "business_license", _credit_code(rng, CITIES[city][3])
            contact, birth_date = person_name(rng), None
        else:
            id_type, id_number, contact, birth_date = "id_card", id_card_number(rng, CITIES[city][3], birth), None, birth
        home = address(rng, city)
        created = datetime.combine(self.today - timedelta(days=rng.randint(200, 4000)), time(3), UTC)
        row = {"name": name, "customer_type": ctype, "level": level, "id_type": id_type, "id_number": id_number,
               "contact_person": contact, "contact_phone": mobile_number(10_000_000 + rng.randrange(10**7)),
               "email": f"{rng.randint(10**5, 10**10)}@{rng.choice(('qq.com', '163.com', '126.com'))}"
               if rng.random() < 0.5 else None,
               "address": home, "postcode": CITIES[city][1], "bill_address": home,
               "preferred_language": rng.choices(("zh", "yue", "en"), (85, 13, 2))[0], "birth_date": birth_date,
               "account_manager": rng.choice(MANAGERS) if level != "standard" else None,
               "created_at": created, "updated_at": created}
        row.update(extra)
        return self.rows.add("kf_customers", row)

    def contract_customers(self) -> None:
        city = "广州"
        vip = self.customer("王建国", "vip", "person", city, preferred_language="zh")
        self.subscription(vip, "vip", _Plan(VIP_NUMBER, "gsm", False, city, self.today - timedelta(days=3000),
                                            features=("sms", "caller_id", "provincial_roaming", "national_roaming",
                                                      "call_waiting", "intl_long_distance")),
                          password_salt=b"contract-1")
        late = self.customer("李明", "standard", "person", city)
        self.subscription(late, "standard", _Plan(ARREARS_NUMBER, "gsm", False, city,
                                                  self.today - timedelta(days=900), unpaid_months=1),
                          password_salt=b"contract-2")
        listed = self.customer("赵磊", "standard", "person", city)
        self.subscription(listed, "standard", _Plan(BLACKLISTED_NUMBER, "gsm", False, city,
                                                    self.today - timedelta(days=400)),
                          password_salt=b"contract-3")
        person = self.rows.tables["kf_customers"][-1]
        self.rows.add("kf_blacklist", {
            "id_type": "id_card", "id_number": person["id_number"], "name": "赵磊", "customer_id": listed,
            "phone": None, "reason_code": "malicious_arrears",
            "reason": "曾于其他号码恶意欠费 ¥1286.00 后离网，未结清", "listed_at": self.now - timedelta(days=120),
            "removed_at": None})

    def random_customer(self) -> None:
        rng = self.rng
        city = rng.choices(CITY_NAMES, CITY_WEIGHTS)[0]
        roll = rng.random()
        if roll < 0.05:
            level, ctype, count = "vip", "person", rng.choice((1, 1, 2))
            name = person_name(rng)
        elif roll < 0.10:
            level, ctype, count = "large", "company", rng.randint(2, 8)
            name = f"{city}市{rng.choice(COMPANY_WORDS)}{rng.choice(INDUSTRIES)}有限公司"
        else:
            level, ctype, count = "standard", "person", rng.choice((1, 1, 1, 1, 2))
            name = person_name(rng)
        customer_id = self.customer(name, level, ctype, city)
        for _ in range(min(count, self.target + 1 - self.rows.next_id["kf_subscriptions"])):
            service_type = "gsm" if ctype == "company" else rng.choices(
                ("gsm", "fixed", "ip", "ld193"), (88, 6, 3, 3))[0]
            prepaid = level == "standard" and service_type == "gsm" and rng.random() < 0.35
            plan = _Plan(self.number(service_type, city), service_type, prepaid, city,
                         self.today - timedelta(days=rng.randint(30, 3000)))
            if not prepaid and level != "vip" and rng.random() < 0.07:
                plan.unpaid_months = rng.choices((1, 2, 3), (60, 25, 15))[0]
            self.subscription(customer_id, level, plan)
        if level == "standard" and rng.random() < 0.01:
            person = self.rows.tables["kf_customers"][-1]
            self.rows.add("kf_blacklist", {
                "id_type": person["id_type"], "id_number": person["id_number"], "name": person["name"],
                "customer_id": customer_id, "phone": None,
                "reason_code": rng.choice(("malicious_arrears", "malicious_arrears", "fraud", "fake_documents")),
                "reason": None, "listed_at": self.now - timedelta(days=rng.randint(10, 700)), "removed_at": None})

    def blacklist_others(self) -> None:
        """People who left owing money (not customers any more), and a few entries already lifted."""
        rng = self.rng
        for k in range(max(3, self.target // 200)):
            city = rng.choice(CITY_NAMES)
            birth = date(rng.randint(1960, 2000), rng.randint(1, 12), rng.randint(1, 28))
            listed = self.now - timedelta(days=rng.randint(30, 1500))
            self.rows.add("kf_blacklist", {
                "id_type": "id_card", "id_number": id_card_number(rng, CITIES[city][3], birth),
                "name": person_name(rng), "customer_id": None, "phone": random_mobile(rng),
                "reason_code": rng.choice(tuple(codes.BLACKLIST_REASONS)), "reason": None, "listed_at": listed,
                "removed_at": listed + timedelta(days=rng.randint(30, 300)) if k % 5 == 0 else None})

    # subscriptions and what hangs off them
    def subscription(self, customer_id: int, level: str, plan: _Plan, password_salt: bytes | None = None) -> None:
        rng = self.rng
        if not plan.features and plan.service_type == "gsm":
            plan.features = _features(rng, level, plan.prepaid)
        if plan.unpaid_months >= 2:
            plan.status, plan.status_reason = (("one_way_suspended", "arrears") if plan.unpaid_months == 2
                                               else ("two_way_suspended", "arrears"))
        elif plan.phone not in CONTRACT_NUMBERS:
            roll = rng.random()
            if roll < 0.015:
                plan.status, plan.status_reason = "two_way_suspended", "customer_request"
            elif roll < 0.02:
                plan.status, plan.status_reason = "two_way_suspended", "lost"
            elif roll < 0.03 and level == "standard":
                plan.status, plan.status_reason = "closed", "closed_by_customer"
        opened = datetime.combine(plan.opened, time(rng.randint(1, 9), rng.randrange(60)), UTC)
        closed = self.now - timedelta(days=rng.randint(1, 20)) if plan.status == "closed" else None
        credit = {"vip": 300_000, "large": rng.choice((50_000, 100_000))}.get(level, rng.choice((10_000, 20_000)))
        sid = self.rows.add("kf_subscriptions", {
            "customer_id": customer_id, "phone": plan.phone, "service_type": plan.service_type,
            "status": plan.status, "status_reason": plan.status_reason,
            "status_changed_at": self.now - timedelta(days=rng.randint(1, 60)) if plan.status != "active" else None,
            "prepaid": plan.prepaid, "credit_limit_fen": 0 if plan.prepaid else credit,
            "plan_name": _plan_name(rng, level, plan), "features": ",".join(plan.features),
            "family_numbers": ",".join(random_mobile(rng) for _ in range(rng.randint(1, 3)))
            if plan.prepaid and rng.random() < 0.3 else "",
            "service_password_hash": demo_hash(DEMO_PASSWORD, password_salt) if password_salt else self.shared_hash,
            "puk_code": f"{rng.randrange(10**8):08d}" if plan.service_type == "gsm" else None,
            "city": plan.city, "opened_at": opened, "closed_at": closed, "updated_at": self.now})
        arrears, since = self.bills(sid, level, plan)
        self.rows.add("kf_balances", numbered=False, row={
            "subscription_id": sid,
            "balance_fen": rng.randint(0, 30_000) if plan.prepaid else rng.choice((0, 0, 5_000, 10_000)),
            "arrears_fen": arrears, "arrears_since": since, "updated_at": self.now})
        self.calls(sid, level, plan, closed)
        if rng.random() < 0.02 or plan.phone == VIP_NUMBER:
            self.past_order(sid, plan)

    def bills(self, sid: int, level: str, plan: _Plan) -> tuple[int, date | None]:
        rng = self.rng
        arrears, since = 0, None
        scale = {"vip": 3.0, "large": 1.8}.get(level, 1.0)
        for k, month in enumerate(self.months):
            first = date.fromisoformat(month + "-01")
            if first < plan.opened.replace(day=1):
                continue
            lines = _bill_lines(rng, plan, scale)
            total = sum(amount for _, amount in lines)
            unpaid = k >= len(self.months) - plan.unpaid_months
            due = _next_month(first).replace(day=20)
            bill_id = self.rows.add("kf_bills", {
                "subscription_id": sid, "bill_month": month, "total_fen": total, "paid_fen": 0 if unpaid else total,
                "status": "unpaid" if unpaid else "paid", "due_date": due,
                "issued_at": datetime.combine(_next_month(first), time(1), UTC) + timedelta(days=2)})
            for code, amount in lines:
                self.rows.add("kf_bill_items", {"bill_id": bill_id, "item_code": code,
                                                "item_name": codes.BILL_ITEMS[code], "amount_fen": amount})
            if unpaid:
                arrears += total
                since = since or due
            elif not plan.prepaid:
                self.rows.add("kf_payments", {
                    "subscription_id": sid, "amount_fen": total,
                    "paid_at": min(datetime.combine(due - timedelta(days=rng.randint(0, 14)),
                                                    time(rng.randint(1, 12), rng.randrange(60)), UTC),
                                   self.now - timedelta(hours=2)),  # last month's bill: paid, but not later than now
                    "channel": rng.choice(("bank", "counter", "online", "auto_debit")),
                    "reference": f"R{month.replace('-', '')}{sid:07d}"})
            if plan.prepaid:
                for top_up in range(rng.choice((1, 1, 2))):
                    self.rows.add("kf_payments", {
                        "subscription_id": sid, "amount_fen": rng.choice((3_000, 5_000, 10_000)),
                        "paid_at": datetime.combine(first + timedelta(days=rng.randint(0, 27)),
                                                    time(rng.randint(1, 13), rng.randrange(60)), UTC),
                        "channel": rng.choice(("card", "online")),
                        "reference": f"C{month.replace('-', '')}{sid:07d}{top_up}"})
        return arrears, since

    def calls(self, sid: int, level: str, plan: _Plan, closed: datetime | None) -> None:
        """Calls at random times (Poisson, fewer at night) from 92 days ago until now (or closing)."""
        rate = self.calls_per_day * {"vip": 2.0, "large": 1.5}.get(level, 1.0) / 86_400
        end = (closed or self.now).timestamp()
        at = max(self.now - timedelta(days=92), datetime.combine(plan.opened, time(0), UTC)).timestamp()
        expo, rnd, rows = self.rng.expovariate, self.rng.random, self.rows.calls
        while True:
            at += expo(rate)
            if at >= end:
                return
            if (at + 28_800) % 86_400 < 25_200 and rnd() < 0.8:  # before 07:00 Beijing time
                continue
            rows.append(self.call(sid, int(at), plan))

    def call(self, sid: int, at: int, plan: _Plan) -> tuple[Any, ...]:
        """One call-detail row: a tuple in ``CALL_COLUMNS`` order, its time in epoch seconds (there
        are hundreds of thousands: ``bulk_insert`` converts them cheaply)."""
        rnd, features = self.rng.random, plan.features
        r = rnd()
        if plan.service_type == "gsm":
            kind = ("voice_out" if r < 0.40 else "voice_in" if r < 0.74 else "sms_out" if r < 0.84
                    else "sms_in" if r < 0.92 else "data")
        else:
            kind = "voice_out" if r < 0.6 else "voice_in"
        roaming, location, r = "none", plan.city, rnd()
        if plan.service_type == "gsm":
            if r < 0.06 and "national_roaming" in features:
                roaming, location = "national", ROAMING_CITIES[int(rnd() * len(ROAMING_CITIES))]
            elif r < 0.10:
                roaming, location = "provincial", CITY_NAMES[int(rnd() * len(CITY_NAMES))]
            elif r < 0.105 and "intl_roaming" in features:
                roaming, location = "international", ABROAD[int(rnd() * len(ABROAD))]
        long_distance = {"ip": "ip", "ld193": "domestic"}.get(plan.service_type, "none")
        if kind == "voice_out" and long_distance == "none" and rnd() < 0.15:
            long_distance = "international" if "intl_long_distance" in features and rnd() < 0.1 else "domestic"
        other: str | None = self.party_pool[int(rnd() * len(self.party_pool))]
        duration = volume = fee = 0
        if kind in ("voice_out", "voice_in"):
            duration = 3 + int(self.rng.expovariate(1 / 120))
            minutes = -(-duration // 60)
            per_minute = CALL_RATES[long_distance] + ROAMING_RATES[roaming]
            fee = minutes * per_minute if kind == "voice_out" else (minutes * 40 if roaming == "national" else 0)
        elif kind == "sms_out":
            fee = 100 if roaming == "international" else 10
        elif kind == "data":
            other, volume = None, 50 + int(rnd() * 40_000)
            fee = min(volume // 100, 500)
        self.next_call += 1
        return (self.next_call, sid, at, kind, other, duration, volume, location, roaming, long_distance, fee)

    def past_order(self, sid: int, plan: _Plan) -> None:
        requested = self.now - timedelta(days=self.rng.randint(5, 80), minutes=self.rng.randrange(600))
        feature = "call_forwarding" if plan.phone != VIP_NUMBER else "intl_long_distance"
        self.rows.add("kf_service_orders", numbered=False, row={
            "idempotency_key": f"demo-{self.seed}-{sid}", "subscription_id": sid, "phone": plan.phone,
            "request_type": "feature_on", "params": json.dumps({"feature": feature}), "requested_at": requested,
            "requested_by": "agent1", "status": codes.DONE, "processing_at": requested + timedelta(seconds=5),
            "finished_at": requested + timedelta(seconds=40), "reason": None, "billing_ref": f"B{sid:08d}"})


def _months_before(today: date, count: int) -> list[str]:
    """The ``count`` closed billing months before ``today``'s month, oldest first."""
    year, month = today.year, today.month
    out = []
    for _ in range(count):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        out.append(f"{year:04d}-{month:02d}")
    return out[::-1]


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _credit_code(rng: random.Random, region: str) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    return "91" + region + "".join(rng.choice(alphabet) for _ in range(10))


def _features(rng: random.Random, level: str, prepaid: bool) -> tuple[str, ...]:
    on = {"sms", "caller_id", "provincial_roaming", "call_waiting"}
    if not prepaid or rng.random() < 0.6:
        on.add("national_roaming")
    intl = rng.random() < {"vip": 0.8, "large": 0.4}.get(level, 0.08)
    for code, chance in (("call_forwarding", 0.3), ("three_way_calling", 0.15), ("call_barring", 0.03)):
        if rng.random() < chance:
            on.add(code)
    if intl and not prepaid:
        on.add("intl_long_distance")
        if rng.random() < 0.5:
            on.add("intl_roaming")
    return tuple(code for code in codes.FEATURES if code in on)


def _plan_name(rng: random.Random, level: str, plan: _Plan) -> str:
    if plan.service_type != "gsm":
        return {"fixed": "市话标准资费", "ip": "IP电话17911标准资费", "ld193": "193长途标准资费"}[plan.service_type]
    if plan.prepaid:
        return rng.choice(("如意通预付费卡", "如意通畅聊卡"))
    return {"vip": "VIP尊享套餐", "large": "世纪通商务套餐"}.get(level, rng.choice(("世纪通标准套餐", "新势力套餐")))


def _bill_lines(rng: random.Random, plan: _Plan, scale: float) -> list[tuple[str, int]]:
    def amount(low: int, high: int) -> int:
        return round(rng.randint(low, high) * scale)

    if plan.service_type == "fixed":
        return [("monthly_fee", 1_800), ("local_call", amount(500, 4_000)), ("long_distance", amount(0, 2_000))]
    if plan.service_type in ("ip", "ld193"):
        return [("long_distance", amount(300, 6_000))]
    lines = [] if plan.prepaid else [("monthly_fee", {3.0: 15_800, 1.8: 8_800}.get(scale, 5_000))]
    lines += [("local_call", amount(800, 6_000)), ("long_distance", amount(0, 2_500)), ("sms", amount(0, 800)),
              ("data", amount(0, 3_000))]
    if "national_roaming" in plan.features and rng.random() < 0.3:
        lines.append(("roaming", amount(200, 4_000)))
    if rng.random() < 0.25:
        lines.append(("value_added", amount(100, 1_500)))
    if scale > 1:
        lines.append(("discount", -amount(300, 1_500)))
    return [(code, value) for code, value in lines if value]


# -- writing ----------------------------------------------------------------------------------------
ORDER = (customers, subscriptions, balances, bills, bill_items, payments, blacklist, service_orders)
CHUNK = 50_000


@lru_cache(maxsize=4096)
def _day_text(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


@lru_cache(maxsize=1)
def _clock_texts() -> tuple[str, ...]:
    """`` HH:MM:SS.000000`` for every second of a day: formatting millions of times is the slow part."""
    return tuple(f" {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.000000" for s in range(86_400))


def sqlite_time(value: datetime | int) -> str:
    """A UTC time (or epoch seconds) as SQLAlchemy stores it in SQLite, so reads and ranges agree."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    day, second = divmod(value, 86_400)
    return _day_text(day) + _clock_texts()[second]


def _converters(table: Table, columns: tuple[str, ...], sqlite: bool) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for k, name in enumerate(columns):
        type_ = table.c[name].type
        if isinstance(type_, DateTime):
            out.append((k, sqlite_time if sqlite else
                        (lambda v: datetime.fromtimestamp(v, UTC) if isinstance(v, int) else v)))
        elif sqlite and isinstance(type_, Date):
            out.append((k, lambda v: v.isoformat() if v is not None else None))
        elif sqlite and isinstance(type_, Boolean):
            out.append((k, lambda v: None if v is None else int(v)))
    return out


def bulk_insert(conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Insert many rows fast: plain ``executemany`` of tuples on SQLite (several times quicker than
    Core's per-row processing), Core ``insert`` elsewhere. Times may be datetimes or epoch seconds."""
    sqlite = conn.dialect.name == "sqlite"
    convert = _converters(table, columns, sqlite)
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    for start in range(0, len(rows), CHUNK):
        chunk = []
        for row in rows[start:start + CHUNK]:
            values = list(row)
            for k, function in convert:
                if values[k] is not None:
                    values[k] = function(values[k])
            chunk.append(tuple(values))
        if sqlite:
            conn.exec_driver_sql(statement, chunk)
        else:
            conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in chunk])


def seed(gateway: BillingGateway, subscribers: int = 3000, seed: int = 7, today: date | None = None,
         calls_per_day: float = 1.0) -> dict[str, int]:
    """Create the schema and the demo rows; returns rows written per table ({} when already seeded,
    or when the database holds somebody else's subscriptions)."""
    today = today or datetime.now(codes.CHINA_TZ).date()
    now = datetime.combine(today, time(2, 0), UTC)
    # Seeded today, nothing may lie ahead of the moment of seeding (a call at 10:00 seen at 08:00);
    # a day in the past gives the same rows for the same seed.
    now = min(now, datetime.now(UTC).replace(microsecond=0))
    gateway.create_schema(now)
    with gateway.connect() as conn:
        marker = conn.scalar(select(meta.c.value).where(meta.c.name == "demo_seed"))
        existing = conn.scalar(select(func.count()).select_from(subscriptions))
    if marker is not None:
        return {}
    if existing:
        log.warning("%r holds subscriptions but no demo marker: not seeding a real billing database", gateway)
        return {}
    rows = _Generator(subscribers, seed, today, calls_per_day, now).run()
    counts: dict[str, int] = {}
    with gateway.connect(write=True) as conn:
        for table in ORDER:
            dicts = rows.tables.get(table.name, [])
            if dicts:
                columns = tuple(dicts[0])
                bulk_insert(conn, table, columns, [tuple(row[c] for c in columns) for row in dicts])
            counts[table.name] = len(dicts)
        bulk_insert(conn, call_details, CALL_COLUMNS, rows.calls)
        counts[call_details.name] = len(rows.calls)
        conn.execute(insert(meta).values(name="demo_seed", value=f"seed={seed} subscribers={subscribers} "
                                         f"today={today.isoformat()}", updated_at=now))
    log.info("DEMO billing data seeded: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts
