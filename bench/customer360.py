"""Customer 360 lookup latency over a large billing interim database on SQLite.

Setup (not timed, done once): a SQLite interim database made from the shipped DDL
(``connectors/billing/ddl/sqlite.sql``) with 1,000,000 subscriptions — one customer each (5 % VIP,
5 % 大客户), a balance row (4 % in arrears), three monthly bills of 4-5 items, a payment per paid
bill, 1 % blacklisted — and 10,000,000 call-detail rows spread over the last three months. Rows are
generated in Python and written with plain ``sqlite3`` ``executemany`` in big transactions, with
``journal_mode=OFF`` and ``synchronous=OFF`` for the load only; the file is kept under ``bench/out/``
(git-ignored) and reused by later runs with the same sizes (``--rebuild`` makes it again). The
database is not ANALYZEd: the plans are those of a file nobody tuned.

Measured: for random subscribed numbers, what the customer 360 page asks of
``connectors.billing.BillingGateway`` — ``customer_360(phone)`` (subscriber + customer + balance,
the last 3 bills, their items, recent payments, the blacklist check, recent service orders: six
statements) and ``call_details(phone, month)`` for one of the three months (first page of 200) —
through the gateway's own pooled Engine (WAL), after a warm-up. The file is in the OS page cache
after the load (or after the first runs), as on a server that has been up for a while.

How to read it: p50/p95/max in milliseconds for each call and for both together (what one page
view pays in the database layer). The target is **p95 ≤ 20 ms for both together**. The EXPLAIN
QUERY PLAN lines should all say "SEARCH … USING INDEX" / "USING INTEGER PRIMARY KEY" (never "SCAN").

Usage: ``.venv/bin/python bench/customer360.py [--quick] [--subscriptions N] [--cdrs N] [--runs N]
[--db PATH] [--rebuild]``
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _common import percentiles
from sqlalchemy import event

from connectors.billing import BillingGateway, codes, hash_password
from connectors.billing.demo_data import (
    CITIES,
    CITY_NAMES,
    address,
    id_card_number,
    mobile_number,
    person_name,
    random_mobile,
    sqlite_time,
)
from connectors.billing.schema import render_ddl

OUT = Path(__file__).resolve().parent / "out"
TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
MONTHS = ("2026-08", "2026-09", "2026-10")
CHUNK = 200_000  # subscribers per transaction
GENERATOR = 2  # bump when the generated rows change
HEAVY_EVERY = 1_000  # every 1000th subscriber makes many calls (a full page of call details)


# -- generation -------------------------------------------------------------------------------------
def _pools(rng: random.Random) -> dict[str, Any]:
    """Pre-made values the rows pick from: making every value afresh would dominate the load time."""
    pools: dict[str, Any] = {
        "names": [person_name(rng) for _ in range(20_000)],
        "addresses": [(city, address(rng, city)) for city in CITY_NAMES for _ in range(500)],
        "parties": [random_mobile(rng) for _ in range(20_000)],
        "features": ["sms,caller_id,provincial_roaming,call_waiting",
                     "national_roaming,provincial_roaming,caller_id,sms,call_waiting",
                     "intl_long_distance,national_roaming,provincial_roaming,caller_id,call_forwarding,sms,call_waiting"],
    }
    calls = []
    for _ in range(5_000):
        kind = rng.choices(("voice_out", "voice_in", "sms_out", "sms_in", "data"), (40, 34, 10, 8, 8))[0]
        duration = 3 + int(rng.expovariate(1 / 120)) if kind.startswith("voice") else 0
        volume = rng.randint(50, 40_000) if kind == "data" else 0
        roaming = rng.choices(("none", "provincial", "national"), (90, 5, 5))[0]
        long_distance = "domestic" if kind == "voice_out" and rng.random() < 0.15 else "none"
        fee = (-(-duration // 60) * (70 if long_distance == "domestic" else 20) if kind == "voice_out"
               else 10 if kind == "sms_out" else min(volume // 100, 500))
        calls.append((kind, None if kind == "data" else rng.choice(pools["parties"]), duration, volume,
                      rng.choice(CITY_NAMES), roaming, long_distance, fee))
    pools["calls"] = calls
    bills = []
    for _ in range(2_000):
        lines = [("monthly_fee", 5_000), ("local_call", rng.randint(800, 6_000)),
                 ("long_distance", rng.randint(0, 2_500)), ("sms", rng.randint(0, 800))]
        if rng.random() < 0.5:
            lines.append(("data", rng.randint(100, 3_000)))
        bills.append([(code, codes.BILL_ITEMS[code], amount) for code, amount in lines])
    pools["bills"] = bills
    return pools


def calls_of(i: int, cdrs: int, subscriptions: int) -> int:
    """How many call details subscriber ``i`` has: every 1000th is a heavy user with up to 1,000
    (together at most a tenth of all rows); the rest share the others evenly."""
    heavy_users = subscriptions // HEAVY_EVERY
    heavy = min(1_000, cdrs // 10 // heavy_users) if heavy_users else 0
    if heavy and i % HEAVY_EVERY == 0:
        return heavy
    per, extra = divmod(cdrs - heavy * heavy_users, subscriptions - heavy_users)
    return per + (1 if (i - i // HEAVY_EVERY) <= extra else 0)


def _rows(first: int, last: int, cdrs: int, subscriptions: int, pools: dict[str, Any], rng: random.Random,
          password_hash: str, next_cdr: int) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of subscribers ``first``..``last`` (ids), table by table, as tuples in DDL order;
    call-detail ids start at ``next_cdr``."""
    out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in (
        "kf_customers", "kf_subscriptions", "kf_balances", "kf_bills", "kf_bill_items", "kf_payments",
        "kf_call_details", "kf_blacklist")}
    now, rnd = sqlite_time(NOW), rng.random
    start = int((NOW - timedelta(days=92)).timestamp())
    span = int(timedelta(days=92).total_seconds())
    names, addresses, calls, bills = pools["names"], pools["addresses"], pools["calls"], pools["bills"]
    created = sqlite_time(NOW - timedelta(days=900))
    for i in range(first, last + 1):
        city, home = addresses[int(rnd() * len(addresses))]
        level = "vip" if i % 20 == 0 else "large" if i % 20 == 1 else "standard"
        out["kf_customers"].append((
            i, names[int(rnd() * len(names))], "person", level, "id_card",
            id_card_number(rng, CITIES[city][3], date(1960 + i % 45, 1 + i % 12, 1 + i % 28)), None,
            mobile_number(subscriptions + i), None, home, CITIES[city][1], home, "zh", None,
            "陈静" if level != "standard" else None, created, created))
        in_arrears = i % 25 == 0
        out["kf_subscriptions"].append((
            i, i, mobile_number(i), "gsm", "active", None, None, 0, 20_000, "世纪通标准套餐",
            pools["features"][i % 3], "", password_hash, f"{i % 100_000_000:08d}", city, created, None, now))
        arrears = 0
        for k, month in enumerate(MONTHS):
            bill_id = (i - 1) * 3 + k + 1
            lines = bills[int(rnd() * len(bills))]
            total = sum(line[2] for line in lines)
            unpaid = in_arrears and k == 2
            arrears += total if unpaid else 0
            out["kf_bills"].append((bill_id, i, month, total, 0 if unpaid else total,
                                    "unpaid" if unpaid else "paid", f"{month}-28", f"{month}-28 01:00:00.000000"))
            base = bill_id * 5
            out["kf_bill_items"].extend((base + n, bill_id, *line) for n, line in enumerate(lines))
            if not unpaid:
                out["kf_payments"].append((bill_id, i, f"{month}-25 03:00:00.000000", total, "bank",
                                           f"R{bill_id:010d}"))
        out["kf_balances"].append((i, int(rnd() * 10_000), arrears, "2026-11-20" if arrears else None, now))
        count = calls_of(i, cdrs, subscriptions)
        step = span // max(count, 1)
        out["kf_call_details"].extend(
            (next_cdr + n, i, sqlite_time(start + n * step + int(rnd() * step)), *calls[int(rnd() * len(calls))])
            for n in range(count))
        next_cdr += count
        if i % 100 == 7:
            out["kf_blacklist"].append((i, None, None, None, i, None, "malicious_arrears", None, now, None))
    return out


def build(path: Path, subscriptions: int, cdrs: int, seed: int = 7) -> None:
    """Make the interim database at ``path`` (replacing what is there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    rng = random.Random(seed)
    pools = _pools(rng)
    password_hash = hash_password("123456", salt=b"kefu-bench-salt!")  # one hash: no lookup checks it
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -400000", "temp_store = MEMORY",
                   "locking_mode = EXCLUSIVE", "foreign_keys = OFF"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(render_ddl("sqlite"))
    started, next_cdr = time.perf_counter(), 1
    for first in range(1, subscriptions + 1, CHUNK):
        last = min(subscriptions, first + CHUNK - 1)
        rows = _rows(first, last, cdrs, subscriptions, pools, rng, password_hash, next_cdr)
        next_cdr += len(rows["kf_call_details"])
        conn.execute("BEGIN")
        for table, values in rows.items():
            if values:
                marks = ", ".join("?" * len(values[0]))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
        conn.execute("COMMIT")
        print(f"  {last:>9,} subscribers written ({time.perf_counter() - started:6.1f} s)", flush=True)
    assert next_cdr == cdrs + 1, (next_cdr, cdrs)
    conn.execute("INSERT INTO kf_meta VALUES ('bench', ?, ?)",
                 (_marker(subscriptions, cdrs), sqlite_time(NOW)))
    conn.execute("INSERT INTO kf_meta VALUES ('schema_version', '1', ?)", (sqlite_time(NOW),))
    conn.execute("PRAGMA journal_mode = WAL")  # as the gateway will open it
    conn.close()


def _marker(subscriptions: int, cdrs: int) -> str:
    # The generator's version too: a file made by an older generator is made again.
    return f"generator={GENERATOR} subscriptions={subscriptions} cdrs={cdrs}"


def ready(path: Path, subscriptions: int, cdrs: int) -> bool:
    """Whether ``path`` holds a finished database of these sizes (the marker is written last)."""
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(path)
        value = conn.execute("SELECT value FROM kf_meta WHERE name = 'bench'").fetchone()
        conn.close()
    except sqlite3.Error:
        return False
    return value is not None and value[0] == _marker(subscriptions, cdrs)


# -- measurement ------------------------------------------------------------------------------------
def explain(gateway: BillingGateway, phone: str, month: str) -> None:
    """EXPLAIN QUERY PLAN of every statement one lookup sends."""
    seen: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(gateway.engine, "before_cursor_execute", listener)
    gateway.customer_360(phone)
    gateway.call_details(phone, month)
    event.remove(gateway.engine, "before_cursor_execute", listener)
    with gateway.engine.connect() as conn:
        for statement, parameters in seen:
            table = re.search(r"\bFROM\s+(\w+)", statement)[1]
            print(f"\n  EXPLAIN QUERY PLAN — from {table}")
            for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all():
                print("    " + row[-1])
        conn.rollback()


def sample(path: Path, ids: list[int], seed: int = 11) -> Iterator[tuple[str, str]]:
    """(phone, month) for the subscriptions ``ids``, in order."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    phones = dict(conn.execute(f"SELECT id, phone FROM kf_subscriptions WHERE id IN ({','.join(map(str, ids))})"))
    conn.close()
    for subscription_id in ids:
        yield phones[subscription_id], rng.choice(MONTHS)


def timed(gateway: BillingGateway, lookups: Iterator[tuple[str, str]]) -> tuple[list[float], ...]:
    """Milliseconds of customer_360, call_details and both, per lookup; and rows per lookup."""
    view_ms, details_ms, both_ms, bills, calls = [], [], [], [], []
    for phone, month in lookups:
        t0 = time.perf_counter()
        view = gateway.customer_360(phone)
        t1 = time.perf_counter()
        rows = gateway.call_details(phone, month)
        t2 = time.perf_counter()
        assert view is not None
        bills.append(len(view["bills"]))
        calls.append(len(rows))
        view_ms.append((t1 - t0) * 1000)
        details_ms.append((t2 - t1) * 1000)
        both_ms.append((t2 - t0) * 1000)
    return view_ms, details_ms, both_ms, bills, calls


def report(title: str, figures: tuple[list[float], ...], target: str = "") -> None:
    view_ms, details_ms, both_ms, bills, calls = figures
    print(f"\n{title}: {len(view_ms)} lookups ({sum(bills) / len(bills):.1f} bills, "
          f"{sum(calls) / len(calls):.1f} call details per lookup)")
    print(f"  customer_360        {percentiles(view_ms)}")
    print(f"  call_details        {percentiles(details_ms)}")
    print(f"  both (one page)     {percentiles(both_ms)}{target}")


def measure(path: Path, subscriptions: int, runs: int) -> None:
    rng = random.Random(11)
    gateway = BillingGateway(f"sqlite:///{path}")
    try:
        timed(gateway, sample(path, [rng.randint(1, subscriptions) for _ in range(30)]))  # warm-up
        report("random subscribers", timed(gateway, sample(path, [rng.randint(1, subscriptions)
                                                                  for _ in range(runs)])),
               "      target: p95 ≤ 20 ms")
        heavy = [rng.randrange(HEAVY_EVERY, subscriptions + 1, HEAVY_EVERY) for _ in range(max(1, runs // 5))]
        if subscriptions >= HEAVY_EVERY:
            report(f"heavy users (every {HEAVY_EVERY:,}th subscriber: a full page of 200 call details)",
                   timed(gateway, sample(path, heavy)))
        phone, month = next(sample(path, [rng.randint(1, subscriptions)]))
        explain(gateway, phone, month)
    finally:
        gateway.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--cdrs", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="10,000 subscriptions, 100,000 call details")
    parser.add_argument("--db", type=Path, help="database file (default: bench/out/customer360-<sizes>.db)")
    parser.add_argument("--rebuild", action="store_true", help="make the database again even if it exists")
    args = parser.parse_args()
    if args.quick:
        args.subscriptions, args.cdrs, args.runs = 10_000, 100_000, 200
    path = args.db or OUT / f"customer360-{args.subscriptions}-{args.cdrs}.db"
    print(f"customer 360 over {args.subscriptions:,} subscriptions and {args.cdrs:,} call details ({path.name})")
    if args.rebuild or not ready(path, args.subscriptions, args.cdrs):
        started = time.perf_counter()
        build(path, args.subscriptions, args.cdrs)
        print(f"  built in {time.perf_counter() - started:.0f} s, {path.stat().st_size / 2**20:,.0f} MiB")
    else:
        print(f"  reusing the existing database ({path.stat().st_size / 2**20:,.0f} MiB)")
    measure(path, args.subscriptions, args.runs)


if __name__ == "__main__":
    main()
