"""BillingGateway: Kefu's reads and writes of the billing interim tables, on its own connection.

The gateway owns a SQLAlchemy Engine for ``KEFU_BILLING_URL`` — never Kefu's own database — and
speaks only Core (``schema`` tables). Every database failure is translated where it enters:
unreachable / locked / timed out → ``TransientError`` (the outbox retries), anything else →
``PermanentError``; messages never carry SQL parameters, passwords or ID numbers. Results are plain
JSON-able dicts: times as ISO 8601 in UTC, amounts as integer fen (``*_fen``).
Imports neither Flask nor the engine.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, overload

from sqlalchemy import (
    Integer,
    Table,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from connectors.base import NotReady, PermanentError, TransientError, peer_wait

from . import codes
from .schema import (
    SCHEMA_VERSION,
    balances,
    bill_items,
    bills,
    blacklist,
    call_details,
    change_requests,
    customers,
    meta,
    metadata,
    password_handover,
    payments,
    service_orders,
    subscriptions,
)

log = logging.getLogger("kefu.billing")

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MB and a few tens of ms per check
MONTH = re.compile(r"^([12]\d{3})-(0[1-9]|1[0-2])\Z", re.ASCII)  # years 1000-2999: no date overflows
_WRITE = "kefu_billing_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)


# -- service passwords -----------------------------------------------------------------------------
def hash_password(password: str, *, salt: bytes | None = None, n: int | None = None) -> str:
    """``scrypt$n$r$p$salt_hex$hash_hex`` of a service password (the format billing stores too)."""
    n = n or SCRYPT_N  # read at call time, so that tests can make hashing cheap
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 << 20,
                            dklen=32)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time compare); a malformed hash never does."""
    try:
        scheme, n, r, p, salt, expected = (stored or "").split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=64 << 20, dklen=len(expected) // 2)
    except (ValueError, TypeError):
        log.warning("a service password hash in the billing tables has an unknown format")
        return False
    return hmac.compare_digest(digest.hex(), expected)


_DUMMY_HASH = hash_password("not-a-password", salt=b"kefu-dummy-salt!")


# -- small conversions -----------------------------------------------------------------------------
@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: datetime | None) -> datetime | None:
    """As an aware UTC datetime; a naive value (SQLite gives those back) is taken to be UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    return utc(value).isoformat() if isinstance(value, datetime) else value.isoformat()


def mask_id_number(value: str | None) -> str | None:
    """``110101199003071234`` → ``1101**********1234``; short numbers keep less."""
    if not value:
        return value
    if len(value) >= 12:
        return value[:4] + "*" * (len(value) - 8) + value[-4:]
    if len(value) >= 6:
        return value[0] + "*" * (len(value) - 3) + value[-2:]
    return "*" * len(value)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The UTC start and end of a billing month ``YYYY-MM`` in Beijing time."""
    found = MONTH.match(month or "")
    if not found:
        raise PermanentError(f"月份格式应为 YYYY-MM：{month!r}")
    year, number = int(found[1]), int(found[2])
    start = datetime(year, number, 1, tzinfo=codes.CHINA_TZ)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=codes.CHINA_TZ)
    return start.astimezone(UTC), end.astimezone(UTC)


def _split_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _labelled(*tables: tuple[Table, str]) -> list[Any]:
    return [c.label(prefix + c.name) for table, prefix in tables for c in table.columns]


def _part(row: Row, prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in row._mapping.items() if k.startswith(prefix)}


# -- the statements of the lookups, built once (building them per call cost more than running them)
def _limit(name: str = "limit") -> Any:
    return bindparam(name, type_=Integer)


_SUBSCRIBER = (select(*_labelled((subscriptions, "s_"), (customers, "c_"), (balances, "b_")))
               .join(customers, customers.c.id == subscriptions.c.customer_id)
               .outerjoin(balances, balances.c.subscription_id == subscriptions.c.id)
               .where(subscriptions.c.phone == bindparam("phone")))
_HOME_CITY = select(subscriptions.c.city).where(subscriptions.c.phone == bindparam("phone")).limit(1)
_BILLS = (select(bills).where(bills.c.subscription_id == bindparam("subscription_id"))
          .order_by(bills.c.bill_month.desc()).limit(_limit()))
_BILL_ITEMS = (select(bill_items).where(bill_items.c.bill_id.in_(bindparam("ids", expanding=True)))
               .order_by(bill_items.c.bill_id, bill_items.c.id))
_PAYMENTS = (select(payments).where(payments.c.subscription_id == bindparam("subscription_id"))
             .order_by(payments.c.paid_at.desc()).limit(_limit()))
# A listing matches by customer, number or ID number (a NULL id_number matches nothing).
_BLACKLIST = (select(blacklist).where(blacklist.c.removed_at.is_(None), or_(
    blacklist.c.customer_id == bindparam("customer_id"), blacklist.c.phone == bindparam("phone"),
    blacklist.c.id_number == bindparam("id_number"))).order_by(blacklist.c.listed_at.desc()).limit(1))
_ORDERS = (select(service_orders).where(service_orders.c.phone == bindparam("phone"))
           .order_by(service_orders.c.requested_at.desc()).limit(_limit()))
_CALL_COLUMNS = ("id", "started_at", "record_type", "other_party", "duration_s", "volume_kb", "location", "roaming",
                 "long_distance", "fee_fen")  # the order call_details() unpacks
_CALLS = (select(*(call_details.c[name] for name in _CALL_COLUMNS)).join(subscriptions, subscriptions.c.id == call_details.c.subscription_id)
          .where(subscriptions.c.phone == bindparam("phone"), call_details.c.started_at >= bindparam("start"),
                 call_details.c.started_at < bindparam("end"))
          .order_by(call_details.c.started_at, call_details.c.id).limit(_limit()).offset(_limit("offset")))


# Unpaid bills of a month, of numbers not closed (dunning), in keyset pages by bill id.
_UNPAID_FROM = bills.join(subscriptions, subscriptions.c.id == bills.c.subscription_id)
_UNPAID_WHERE = (bills.c.bill_month == bindparam("month"), bills.c.status.in_(("unpaid", "partly_paid")),
                 bills.c.total_fen > bills.c.paid_fen, subscriptions.c.status != "closed")
_UNPAID = (select(bills.c.id, bills.c.subscription_id, bills.c.total_fen, bills.c.paid_fen, bills.c.due_date,
                  subscriptions.c.phone)
           .select_from(_UNPAID_FROM)
           .where(*_UNPAID_WHERE, bills.c.id > bindparam("after", type_=Integer))
           .order_by(bills.c.id).limit(_limit()))


# Credit standing of subscriptions (payment reminders), in keyset pages by subscription id. The
# interim tables have no "unbilled usage" column: it is the fees of the call details of the current
# month, and of last month while its bill is not issued yet. What a postpaid subscription has used
# against its credit limit = arrears (overdue) + issued bills not yet due + unbilled usage. Correlated
# subqueries on the (subscription_id, started_at) and (subscription_id, bill_month) indexes: one
# statement per page, a few index probes per subscription.
def _fees(start: Any, end: Any = None) -> Any:
    where = [call_details.c.subscription_id == subscriptions.c.id, call_details.c.started_at >= start]
    if end is not None:
        where.append(call_details.c.started_at < end)
    return select(func.coalesce(func.sum(call_details.c.fee_fen), 0)).where(*where).scalar_subquery()


_CUR_START = bindparam("cur_start", type_=call_details.c.started_at.type)
_PREV_START = bindparam("prev_start", type_=call_details.c.started_at.type)
_PREV_BILLED = exists().where(bills.c.subscription_id == subscriptions.c.id,
                              bills.c.bill_month == bindparam("prev_month"))
_NOT_YET_DUE = (select(func.coalesce(func.sum(bills.c.total_fen - bills.c.paid_fen), 0))
                .where(bills.c.subscription_id == subscriptions.c.id,
                       bills.c.status.in_(("unpaid", "partly_paid")),
                       bills.c.due_date >= bindparam("today", type_=bills.c.due_date.type))
                .scalar_subquery())
_USED = case((subscriptions.c.prepaid, 0), else_=(
    func.coalesce(balances.c.arrears_fen, 0) + _NOT_YET_DUE + _fees(_CUR_START)
    + case((_PREV_BILLED, 0), else_=_fees(_PREV_START, _CUR_START))))
_CREDIT = (select(subscriptions.c.id, subscriptions.c.phone, subscriptions.c.prepaid, subscriptions.c.credit_limit_fen,
                  func.coalesce(balances.c.balance_fen, 0), _USED)
           .select_from(subscriptions.outerjoin(balances, balances.c.subscription_id == subscriptions.c.id))
           .where(subscriptions.c.id > bindparam("after", type_=Integer), subscriptions.c.status == "active",
                  subscriptions.c.service_type == "gsm",
                  or_(subscriptions.c.prepaid, subscriptions.c.credit_limit_fen > 0))
           .order_by(subscriptions.c.id).limit(_limit()))

# -- connections -----------------------------------------------------------------------------------
def _engine_options(url: str, timeout: float, pool_size: int) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": timeout, "check_same_thread": False}}
    options: dict[str, Any] = {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": pool_size,
                               "pool_timeout": timeout, "pool_recycle": 1800}
    if url.startswith(("postgresql", "postgres")):
        # A peer that does not answer, or a statement stuck behind billing's locks, fails in time
        # (→ TransientError → retried later) instead of holding an outbox worker.
        options["connect_args"] = {
            "connect_timeout": max(1, round(timeout)),
            "options": f"-c statement_timeout={round(timeout * 1000)} -c TimeZone=UTC"}
    return options


def _on_sqlite_connect(timeout: float) -> Callable[[Any, Any], None]:
    def configure(dbapi_connection: Any, _record: Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        dbapi_connection.isolation_level = None  # transactions are begun in _on_sqlite_begin
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {round(timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")  # billing's writers do not block our readers
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
    return configure


def _on_sqlite_begin(conn: Connection) -> None:
    # Another listener on this engine may have begun already. A writer takes the write lock at BEGIN so that it waits its turn under
    # the busy timeout instead of failing at its first write; readers just get a snapshot.
    dbapi = conn.connection.dbapi_connection  # None only once the connection is invalidated
    if dbapi is not None and dbapi.in_transaction:
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def _describe(exc: DBAPIError) -> str:
    """The driver's own first line, without the statement and its parameters."""
    original = exc.orig if exc.orig is not None else exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {text}"[:300]


class BillingGateway:
    """The billing interim database, seen from Kefu. Thread-safe (one Engine, pooled connections).

    ``timeout`` (seconds) bounds connecting, waiting for a lock and one statement; ``poll_delay``
    is how long ``await_order`` asks the outbox to wait before asking again.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, pool_size: int = 5,
                 poll_delay: timedelta = timedelta(seconds=5)) -> None:
        self.engine = create_engine(url, hide_parameters=True, **_engine_options(url, timeout, pool_size))
        self.poll_delay = poll_delay
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _on_sqlite_connect(timeout))
            event.listen(self.engine, "begin", _on_sqlite_begin)

    def __repr__(self) -> str:
        return f"BillingGateway({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[Connection]:
        """One transaction on the billing database, with its errors translated (see the module);
        a wait on a peer (:func:`connectors.base.peer_wait`) from connecting to the commit."""
        try:
            with peer_wait(), self.engine.connect() as conn:
                if write:
                    conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    yield conn
        except IntegrityError:
            raise  # the caller decides (a duplicate idempotency key is not a failure)
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            detail = _describe(exc) if isinstance(exc, DBAPIError) else str(exc)[:300]
            raise TransientError(f"billing interim database unavailable: {detail}") from exc
        except DBAPIError as exc:
            raise PermanentError(f"billing interim database refused the request: {_describe(exc)}") from exc

    # -- schema and markers --------------------------------------------------------------------------
    def create_schema(self, now: datetime | None = None) -> None:
        """Create the interim tables that are missing (never alters existing ones)."""
        with self.connect(write=True) as conn:
            metadata.create_all(conn)
        self.set_meta("schema_version", SCHEMA_VERSION, now)

    def get_meta(self, name: str) -> str | None:
        with self.connect() as conn:
            return conn.scalar(select(meta.c.value).where(meta.c.name == name))

    def set_meta(self, name: str, value: str, now: datetime | None = None) -> None:
        now = utc(now) or datetime.now(UTC)
        with self.connect(write=True) as conn:
            done = conn.execute(update(meta).where(meta.c.name == name).values(value=value, updated_at=now))
            if not done.rowcount:
                conn.execute(insert(meta).values(name=name, value=value, updated_at=now))

    def is_demo(self) -> bool:
        """Whether this database was made by ``demo_data.seed`` (the simulator only runs on one)."""
        return self.get_meta("demo_seed") is not None

    def ping(self) -> None:
        """Raise ``TransientError`` when the billing database cannot be reached."""
        with self.connect() as conn:
            conn.scalar(select(1))

    # -- reads -------------------------------------------------------------------------------------
    @staticmethod
    def _subscriber(conn: Connection, phone: str) -> Row | None:
        return conn.execute(_SUBSCRIBER, {"phone": phone}).first()

    @staticmethod
    def _blacklisted(conn: Connection, customer: dict[str, Any], phone: str) -> dict[str, Any] | None:
        row = conn.execute(_BLACKLIST, {"customer_id": customer["id"], "phone": phone,
                                        "id_number": customer.get("id_number")}).first()
        if row is None:
            return None
        return {"id": row.id, "reason_code": row.reason_code,
                "reason_label": codes.label(codes.BLACKLIST_REASONS, row.reason_code),
                "reason": row.reason, "listed_at": iso(row.listed_at)}

    def customer_360(self, phone: str, *, months: int = 3, payments_limit: int = 10,
                     orders_limit: int = 10) -> dict[str, Any] | None:
        """Everything an agent sees about the caller of ``phone``, or None for an unknown number.

        Customer (level, masked ID number — never the password hash), subscription (status,
        features, family numbers), account (balance and arrears, fen), the last ``months`` bills
        with their items, recent payments, the active blacklist entry, recent service orders.
        """
        with self.connect() as conn:
            row = self._subscriber(conn, phone)
            if row is None:
                return None
            sub, cust, bal = _part(row, "s_"), _part(row, "c_"), _part(row, "b_")
            bill_rows = conn.execute(_BILLS, {"subscription_id": sub["id"], "limit": months}).all()
            items: dict[int, list[dict[str, Any]]] = {r.id: [] for r in bill_rows}
            if bill_rows:
                for item in conn.execute(_BILL_ITEMS, {"ids": list(items)}):
                    items[item.bill_id].append({"code": item.item_code, "name": item.item_name,
                                                "amount_fen": item.amount_fen})
            payment_rows = conn.execute(_PAYMENTS, {"subscription_id": sub["id"], "limit": payments_limit}).all()
            entry = self._blacklisted(conn, cust, phone)
            order_rows = conn.execute(_ORDERS, {"phone": phone, "limit": orders_limit}).all()
        return {
            "phone": phone,
            "customer": _customer(cust),
            "subscription": _subscription(sub),
            "account": {"balance_fen": bal["balance_fen"] or 0, "arrears_fen": bal["arrears_fen"] or 0,
                        "arrears_since": iso(bal["arrears_since"]), "updated_at": iso(bal["updated_at"])},
            "bills": [{"id": b.id, "month": b.bill_month, "total_fen": b.total_fen, "paid_fen": b.paid_fen,
                       "status": b.status, "status_label": codes.label(codes.BILL_STATUSES, b.status),
                       "due_date": iso(b.due_date), "issued_at": iso(b.issued_at), "items": items[b.id]}
                      for b in bill_rows],
            "payments": [{"id": p.id, "paid_at": iso(p.paid_at), "amount_fen": p.amount_fen,
                          "channel": p.channel, "channel_label": codes.label(codes.PAYMENT_CHANNELS, p.channel),
                          "reference": p.reference} for p in payment_rows],
            "blacklist": entry,
            "orders": [_order(r) for r in order_rows],
        }

    def call_details(self, phone: str, month: str, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        """The call details of ``phone`` in billing month ``YYYY-MM`` (Beijing time), oldest first."""
        start, end = month_bounds(month)
        limit, offset = max(0, min(int(limit), 1000)), max(0, int(offset))
        with self.connect() as conn:
            rows = conn.execute(_CALLS, {"phone": phone, "start": start, "end": end, "limit": limit,
                                         "offset": offset}).all()
        # A page may hold hundreds of rows: unpack plain tuples (Row attribute access costs more).
        kinds, roaming, distance = codes.RECORD_TYPES, codes.ROAMING, codes.LONG_DISTANCE
        return [{"id": id_, "started_at": iso(started), "record_type": kind, "record_label": kinds.get(kind, kind),
                 "other_party": other, "duration_s": duration, "volume_kb": volume, "location": location,
                 "roaming": roam, "roaming_label": roaming.get(roam, roam), "long_distance": far,
                 "long_distance_label": distance.get(far, far), "fee_fen": fee}
                for id_, started, kind, other, duration, volume, location, roam, far, fee in map(tuple, rows)]

    # -- dunning (欠费催缴): unpaid bills of a month, payments since a time ------------------------------
    def unpaid_bill_totals(self, month: str) -> tuple[int, int]:
        """(subscribers, amount due in fen) of the unpaid bills of billing month ``month`` (numbers
        not closed), as :meth:`unpaid_bills` lists them."""
        month_bounds(month)  # refuses a malformed month
        with self.connect() as conn:
            row = conn.execute(select(func.count(), func.coalesce(func.sum(bills.c.total_fen - bills.c.paid_fen), 0))
                               .select_from(_UNPAID_FROM).where(*_UNPAID_WHERE), {"month": month}).one()
        return int(row[0]), int(row[1])

    def unpaid_bills(self, month: str, after_id: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        """The unpaid (or partly paid) bills of ``month`` with bill id above ``after_id``, by bill id:
        ``{bill_id, subscription_id, phone, amount_due_fen, due_date}`` (keyset pages for batches)."""
        month_bounds(month)
        with self.connect() as conn:
            rows = conn.execute(_UNPAID, {"month": month, "after": int(after_id), "limit": int(limit)}).all()
        return [{"bill_id": r.id, "subscription_id": r.subscription_id, "phone": r.phone,
                 "amount_due_fen": int(r.total_fen - r.paid_fen), "due_date": iso(r.due_date)} for r in rows]

    def payments_since(self, since: datetime, limit: int = 5000) -> list[dict[str, Any]]:
        """Payments with ``paid_at`` at or after ``since``, oldest first: ``{id, subscription_id,
        paid_at, amount_fen}``."""
        with self.connect() as conn:
            rows = conn.execute(select(payments.c.id, payments.c.subscription_id, payments.c.paid_at,
                                       payments.c.amount_fen).where(payments.c.paid_at >= utc(since))
                                .order_by(payments.c.paid_at, payments.c.id).limit(int(limit))).all()
        return [{"id": r.id, "subscription_id": r.subscription_id, "paid_at": utc(r.paid_at),
                 "amount_fen": int(r.amount_fen)} for r in rows]

    def payment_totals(self, subscription_ids: list[int], since: datetime) -> dict[int, int]:
        """Fen paid by each of ``subscription_ids`` at or after ``since`` (absent: nothing paid)."""
        out: dict[int, int] = {}
        ids = sorted(set(subscription_ids))
        with self.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(select(payments.c.subscription_id, func.sum(payments.c.amount_fen))
                                    .where(payments.c.subscription_id.in_(ids[start:start + 500]),
                                           payments.c.paid_at >= utc(since))
                                    .group_by(payments.c.subscription_id)).all()
                out.update({int(sid): int(total or 0) for sid, total in rows})
        return out

    # -- payment reminders (缴费提醒): credit standing, a page of subscriptions per statement ---------------
    def credit_page(self, after_id: int, limit: int, today: date) -> list[tuple[int, str, bool, int, int, int]]:
        """The next ``limit`` active GSM subscriptions with id above ``after_id`` that a reminder may
        concern (prepaid, or postpaid with a credit limit), by id, as plain tuples ``(subscription_id,
        phone, prepaid, credit_limit_fen, balance_fen, used_fen)``; ``used_fen`` (postpaid, 0 for
        prepaid) = arrears + issued bills not yet due + unbilled usage (see ``_CREDIT``). ``today`` is
        the Beijing date. One statement, whatever the page size."""
        month = f"{today.year:04d}-{today.month:02d}"
        first = today.replace(day=1) - timedelta(days=1)
        previous = f"{first.year:04d}-{first.month:02d}"
        cur_start, prev_start = month_bounds(month)[0], month_bounds(previous)[0]
        with self.connect() as conn:
            rows = conn.execute(_CREDIT, {"after": int(after_id), "limit": int(limit), "cur_start": cur_start,
                                          "prev_start": prev_start, "prev_month": previous, "today": today}).all()
        return [(int(sid), phone, bool(prepaid), int(limit_fen or 0), int(balance or 0), int(used or 0))
                for sid, phone, prepaid, limit_fen, balance, used in map(tuple, rows)]

    def verify_service_password(self, phone: str, password: str) -> bool:
        """Whether ``password`` is the service password of ``phone`` (False for unknown numbers)."""
        with self.connect() as conn:
            stored = conn.scalar(select(subscriptions.c.service_password_hash)
                                 .where(subscriptions.c.phone == phone))
        if stored is None:
            check_password(_DUMMY_HASH, password)  # same time as a real check: no probing for numbers
            return False
        return check_password(stored, str(password))

    def home_city(self, phone: str) -> str | None:
        """The subscription's home city (归属地市) of ``phone``, or None (unknown number, no city)."""
        with self.connect() as conn:
            city = conn.execute(_HOME_CITY, {"phone": phone}).scalar()
        return (str(city).strip() or None) if city else None

    def standing(self, phone: str) -> dict[str, Any]:
        """Whether billing lets a request be accepted for ``phone``: not when the number is unknown
        or closed, the account is in arrears, or the customer is blacklisted. ``reasons_zh`` and
        ``advice_zh`` (same order) tell the agent why and what the customer must do."""
        with self.connect() as conn:
            row = self._subscriber(conn, phone)
            entry = None if row is None else self._blacklisted(conn, _part(row, "c_"), phone)
        reasons: list[str] = []
        advice: list[str] = []
        result: dict[str, Any] = {"phone": phone, "found": row is not None, "blacklisted": entry is not None,
                                  "blacklist_reason": None, "arrears_fen": 0, "status": None}
        if row is None:
            reasons.append(f"号码 {phone} 不是本系统用户")
            advice.append("请核对号码后重新查询")
        else:
            sub, bal = _part(row, "s_"), _part(row, "b_")
            result["status"] = sub["status"]
            result["arrears_fen"] = arrears = bal["arrears_fen"] or 0
            if sub["status"] == "closed":
                reasons.append("该号码已销户")
                advice.append("如需继续使用，请到营业厅重新办理入网")
            if arrears > 0:
                reasons.append(f"该用户欠费 ¥{codes.yuan(arrears)}")
                advice.append("请先缴清欠费后再办理（营业厅、银行或网上缴费均可）")
            if entry is not None:
                result["blacklist_reason"] = entry["reason_label"]
                reasons.append(f"该用户在黑名单中（原因：{entry['reason_label']}）")
                advice.append("需本人持有效证件到营业厅办理")
        result.update(can_accept=not reasons, reasons_zh=reasons, advice_zh=advice,
                      message_zh="；".join(f"{r}，{a}" for r, a in zip(reasons, advice, strict=True)))
        return result

    # -- service orders and change requests -----------------------------------------------------------
    def seal_password(self, password: str, now: datetime | None = None) -> str:
        """Hash a new service password into a single-use hand-over row and return its token: the
        order names the token, so neither the password nor its hash is in Kefu's case data, events
        or job parameters. ``submit_order`` moves the hash into the order's row and deletes the
        hand-over in one transaction; rows a step never used are removed after a day."""
        checked = codes.validate_order("change_password", {"new_password": password})
        token = "pw-" + secrets.token_hex(16)
        now = utc(now) or datetime.now(UTC)
        with self.connect(write=True) as conn:
            conn.execute(delete(password_handover).where(password_handover.c.created_at < now - timedelta(days=1)))
            conn.execute(insert(password_handover).values(
                token=token, password_hash=hash_password(checked["new_password"]), created_at=now))
        return token

    def submit_order(self, key: str, phone: str, request_type: str, params: dict[str, Any] | None = None,
                     requested_at: datetime | None = None, requested_by: str | None = None) -> dict[str, Any]:
        """Write a service order for billing, once per ``key``: a second call with the same key
        (a retried step, a racing worker) returns the existing order, with ``created`` False.

        Raises ``PermanentError`` (in Chinese, for the agent) for an unknown number, request type,
        feature or bad parameters; standing (arrears, blacklist) is checked by the process before.
        """
        checked = codes.validate_order(request_type, params)
        if "new_password" in checked:  # only the hash is ever written
            checked["new_password_hash"] = hash_password(checked.pop("new_password"))
        phone = codes.check_number(phone)
        values = {"phone": phone, "request_type": request_type,
                  "params": json.dumps(checked, ensure_ascii=False, sort_keys=True)}
        handover = checked.get("new_password_ref")
        return self._submit(service_orders, key, values, requested_at, requested_by,
                            None if handover is None else _unseal(str(handover)))

    def submit_change_request(self, key: str, phone: str, changes: dict[str, Any],
                              requested_at: datetime | None = None,
                              requested_by: str | None = None) -> dict[str, Any]:
        """Ask billing to change the customer data of the customer owning ``phone`` (once per key)."""
        checked = codes.validate_changes(changes)
        values = {"phone": codes.check_number(phone),
                  "changes": json.dumps(checked, ensure_ascii=False, sort_keys=True)}
        return self._submit(change_requests, key, values, requested_at, requested_by)

    def _submit(self, table: Table, key: str, values: dict[str, Any], requested_at: datetime | None,
                requested_by: str | None,
                prepare: Callable[[Connection, dict[str, Any]], None] | None = None) -> dict[str, Any]:
        key = str(key or "").strip()
        if not key or len(key) > 100:
            raise PermanentError(f"an idempotency key of 1-100 characters is needed, not {key[:120]!r}")
        row = {**values, "idempotency_key": key, "requested_by": requested_by, "status": codes.NEW,
               "requested_at": utc(requested_at) or datetime.now(UTC)}
        try:
            with self.connect(write=True) as conn:
                existing = self._find(conn, table, key)
                if existing is not None:
                    return _same_request(table, existing, values, created=False)
                subscription = conn.execute(select(subscriptions.c.id, subscriptions.c.customer_id)
                                            .where(subscriptions.c.phone == values["phone"])).first()
                if subscription is None:
                    raise PermanentError(f"号码 {values['phone']} 不是本系统用户")
                if table is service_orders:
                    row["subscription_id"] = subscription.id
                else:
                    row["customer_id"] = subscription.customer_id
                if prepare is not None:
                    prepare(conn, row)
                conn.execute(insert(table).values(**row))
                created = conn.execute(select(table).where(table.c.idempotency_key == key)).one()
        except IntegrityError as exc:
            # Another worker inserted the same key between our read and our insert (PostgreSQL;
            # SQLite writers are serialised by BEGIN IMMEDIATE): the unique key kept one row.
            with self.connect() as conn:
                existing = self._find(conn, table, key)
            if existing is None:
                raise PermanentError(f"billing interim database refused the {table.name} row for key "
                                     f"{key!r}: {_describe(exc)}") from exc
            return _same_request(table, existing, values, created=False)
        log.info("%s %s written (key %s, %s)", table.name, created.id, key,
                 values.get("request_type", "customer data"))
        return {**_request(table, created), "created": True}

    @staticmethod
    def _find(conn: Connection, table: Table, key: str) -> Row | None:
        return conn.execute(select(table).where(table.c.idempotency_key == key)).first()

    def order(self, ref: int | str) -> dict[str, Any] | None:
        """A service order by id (int) or idempotency key (str), or None."""
        return self._get(service_orders, ref)

    def change_request(self, ref: int | str) -> dict[str, Any] | None:
        return self._get(change_requests, ref)

    def _get(self, table: Table, ref: int | str) -> dict[str, Any] | None:
        where = table.c.id == ref if isinstance(ref, int) else table.c.idempotency_key == ref
        try:
            with self.connect() as conn:
                row = conn.execute(select(table).where(where)).first()
        except (ValueError, TypeError) as exc:  # e.g. a time billing wrote in a format we cannot read
            raise PermanentError(f"{table.name} row {ref!r} holds a malformed value written by billing: "
                                 f"{str(exc)[:200]}") from exc
        return None if row is None else _request(table, row)

    def await_order(self, key: str) -> dict[str, Any]:
        """The outcome of the order with ``key``: ``NotReady`` while billing has not finished it,
        ``PermanentError`` naming the order when billing wrote a status Kefu does not know."""
        return self._await(service_orders, key)

    def await_change_request(self, key: str) -> dict[str, Any]:
        return self._await(change_requests, key)

    def _await(self, table: Table, key: str) -> dict[str, Any]:
        found = self._get(table, key)
        if found is None:
            raise PermanentError(f"no {table.name} row with idempotency key {key!r}")
        status = found["status"]
        if status in (codes.NEW, codes.PROCESSING):
            raise NotReady(self.poll_delay, f"billing has {table.name} {found['id']} {status}")
        if status not in codes.FINISHED:
            raise PermanentError(
                f"{table.name} {found['id']} (key {key!r}) has status {found['raw_status']!r} written by "
                f"billing, which is none of {', '.join(codes.ORDER_STATUSES)}: ask billing to correct it")
        reason = found["reason"]
        if status == codes.REJECTED and not reason:
            reason = "计费系统未说明拒绝原因"
        return {"order_id": found["id"], "key": key, "status": status, "status_label": found["status_label"],
                "reason": reason, "finished_at": found["finished_at"], "billing_ref": found["billing_ref"],
                "summary_zh": found["summary_zh"]}


def _unseal(token: str) -> Callable[[Connection, dict[str, Any]], None]:
    """Put the sealed hash named by ``token`` into the order row and delete the hand-over (same
    transaction as the insert: used once, or not at all)."""

    def prepare(conn: Connection, row: dict[str, Any]) -> None:
        hashed = conn.scalar(select(password_handover.c.password_hash).where(password_handover.c.token == token))
        if hashed is None:
            raise PermanentError("新服务密码的交接记录已失效（超过一天或已使用），请重新受理修改密码")
        conn.execute(delete(password_handover).where(password_handover.c.token == token))
        params = json.loads(row["params"])
        params.pop("new_password_ref", None)
        row["params"] = json.dumps({**params, "new_password_hash": hashed}, ensure_ascii=False, sort_keys=True)

    return prepare


# -- row → dict ------------------------------------------------------------------------------------
def _customer(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": c["id"], "name": c["name"],
        "type": c["customer_type"], "type_label": codes.label(codes.CUSTOMER_TYPES, c["customer_type"]),
        "level": c["level"], "level_label": codes.label(codes.LEVELS, c["level"]),
        "id_type": c["id_type"], "id_type_label": codes.label(codes.ID_TYPES, c["id_type"]),
        "id_number_masked": mask_id_number(c["id_number"]),
        "contact_person": c["contact_person"], "contact_phone": c["contact_phone"], "email": c["email"],
        "address": c["address"], "postcode": c["postcode"], "bill_address": c["bill_address"],
        "preferred_language": c["preferred_language"],
        "preferred_language_label": codes.label(codes.LANGUAGES, c["preferred_language"]),
        "birth_date": iso(c["birth_date"]), "account_manager": c["account_manager"],
        "created_at": iso(c["created_at"]),
    }


def _subscription(s: dict[str, Any]) -> dict[str, Any]:
    enabled = _split_list(s["features"])
    features = [{"code": code, "label": name, "on": code in enabled} for code, name in codes.FEATURES.items()]
    features += [{"code": code, "label": code, "on": True} for code in enabled if code not in codes.FEATURES]
    puk = s["puk_code"]
    return {
        "id": s["id"], "phone": s["phone"],
        "service_type": s["service_type"], "service_type_label": codes.label(codes.SERVICE_TYPES, s["service_type"]),
        "status": s["status"], "status_label": codes.label(codes.SUBSCRIPTION_STATUSES, s["status"]),
        "status_reason": s["status_reason"],
        "status_reason_label": codes.label(codes.STATUS_REASONS, s["status_reason"]),
        "status_changed_at": iso(s["status_changed_at"]),
        "prepaid": bool(s["prepaid"]), "credit_limit_fen": s["credit_limit_fen"], "plan_name": s["plan_name"],
        "features": features, "family_numbers": _split_list(s["family_numbers"]),
        "puk_masked": ("*" * (len(puk) - 2) + puk[-2:]) if puk and len(puk) > 4 else None,
        "city": s["city"], "opened_at": iso(s["opened_at"]), "closed_at": iso(s["closed_at"]),
        "updated_at": iso(s["updated_at"]),
    }


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"unreadable": (text or "")[:100]}
    return value if isinstance(value, dict) else {"value": value}


def _request(table: Table, row: Row) -> dict[str, Any]:
    return _order(row) if table is service_orders else _change(row)


def _common(row: Row) -> dict[str, Any]:
    raw = row.status
    status = raw.strip() if isinstance(raw, str) else raw  # CHAR columns come back space-padded
    return {"id": row.id, "key": row.idempotency_key, "phone": row.phone, "status": status, "raw_status": raw,
            "status_label": codes.ORDER_STATUSES.get(status, f"未知状态（{raw!r}）"),
            "requested_at": iso(row.requested_at), "requested_by": row.requested_by,
            "processing_at": iso(row.processing_at), "finished_at": iso(row.finished_at),
            "reason": row.reason, "billing_ref": row.billing_ref}


def _order(row: Row) -> dict[str, Any]:
    params = _loads(row.params)
    shown = {k: ("******" if k == "new_password_hash" else v) for k, v in params.items()}
    return {**_common(row), "subscription_id": row.subscription_id, "request_type": row.request_type,
            "request_label": codes.label(codes.REQUEST_TYPES, row.request_type), "params": shown,
            "summary_zh": codes.describe_order(row.request_type, params)}


def _change(row: Row) -> dict[str, Any]:
    changes = _loads(row.changes)
    return {**_common(row), "customer_id": row.customer_id, "changes": changes,
            "summary_zh": codes.describe_changes(changes)}


def _same_request(table: Table, row: Row, values: dict[str, Any], *, created: bool) -> dict[str, Any]:
    """The existing row for a key, after checking the key is not reused for another request."""
    mismatch = row.phone != values["phone"] or (
        table is service_orders and row.request_type != values["request_type"])
    if mismatch:
        raise PermanentError(f"idempotency key {row.idempotency_key!r} was already used for {table.name} "
                             f"{row.id}, a different request")
    return {**_request(table, row), "created": created}


__all__ = ["BillingGateway", "check_password", "hash_password", "mask_id_number", "month_bounds"]
