"""The billing interim tables (计费中间表): SQLAlchemy Core tables of their own, not Kefu's models.

They live in a database both sides reach (``KEFU_BILLING_URL``), never in Kefu's own database.
Billing writes the customer, subscription, account, bill, call-detail, payment and blacklist
tables; Kefu inserts service orders and change requests, and billing writes their outcome back.
``info["writer"]`` on a table (and on the write-back columns) records who writes what; every
column carries a ``comment`` so that the DDL explains itself. ``render_ddl`` renders the shipped
``ddl/*.sql`` files; a test checks they match, and
``python -c "from connectors.billing.schema import write_ddl_files; write_ddl_files()"`` rewrites them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable, SetColumnComment, SetTableComment

SCHEMA_VERSION = "1"
BILLING, KEFU = "billing", "kefu"
DDL_DIR = Path(__file__).resolve().parent / "ddl"

# BIGINT ids on PostgreSQL; on SQLite an INTEGER PRIMARY KEY is the rowid itself (no second index).
ID = BigInteger().with_variant(Integer(), "sqlite")
Money = BigInteger  # integer fen (分); never floating point
UTC_TIME = DateTime(timezone=True)

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
})


def col(name: str, type_: Any, comment: str, *args: Any, writer: str | None = None, **kw: Any) -> Column:
    """A column, NOT NULL unless ``nullable=True`` is given; ``writer`` marks billing's write-back."""
    kw.setdefault("nullable", False)
    info = {"writer": writer} if writer else {}
    return Column(name, type_, *args, comment=comment, info=info, **kw)


meta = Table(
    "kf_meta", metadata,
    col("name", String(40), "名称 schema_version, demo_seed …", primary_key=True),
    col("value", String(200), "值 value"),
    col("updated_at", UTC_TIME, "写入时间 (UTC) when written"),
    comment="接口元数据 interface metadata (schema version; demo marker — a real billing database has none)",
    info={"writer": KEFU},
)

customers = Table(
    "kf_customers", metadata,
    col("id", ID, "客户编号 customer id (billing's key)", primary_key=True, autoincrement=False),
    col("name", String(100), "客户名称 name of the person or company"),
    col("customer_type", String(16), "客户类型 person 个人 | company 单位"),
    col("level", String(16), "客户等级 standard 大众客户 | large 大客户 | vip VIP客户",
        server_default="standard"),
    col("id_type", String(20), "证件类型 id_card | passport | business_license | officer_card"),
    col("id_number", String(40), "证件号码 ID number (sensitive: Kefu shows it masked, never logs it)"),
    col("contact_person", String(100), "联系人 contact person (companies)", nullable=True),
    col("contact_phone", String(20), "联系电话 contact phone", nullable=True),
    col("email", String(100), "电子邮箱 e-mail", nullable=True),
    col("address", String(200), "联系地址 postal address", nullable=True),
    col("postcode", String(10), "邮政编码 postcode", nullable=True),
    col("bill_address", String(200), "账单地址 where paper bills go", nullable=True),
    col("preferred_language", String(8), "服务语种 zh 普通话 | en 英语 | yue 粤语", server_default="zh"),
    col("birth_date", Date, "生日 birthday (VIP greetings)", nullable=True),
    col("account_manager", String(50), "客户经理 account manager (large and VIP customers)", nullable=True),
    col("created_at", UTC_TIME, "建档时间 (UTC)"),
    col("updated_at", UTC_TIME, "最后修改时间 (UTC) last change"),
    Index(None, "id_number"),
    comment="客户资料 customers (one per person or company)",
    info={"writer": BILLING},
)

subscriptions = Table(
    "kf_subscriptions", metadata,
    col("id", ID, "用户编号 subscription id (billing's key)", primary_key=True, autoincrement=False),
    col("customer_id", ID, "客户编号 → kf_customers.id", ForeignKey("kf_customers.id")),
    col("phone", String(20), "号码 the number (MSISDN, or area code + number for fixed/IP/193)", unique=True),
    col("service_type", String(10), "业务类型 gsm | ip | fixed | ld193"),
    col("status", String(20), "状态 active 正常 | one_way_suspended 单向停机 | two_way_suspended 双向停机 | "
                              "closed 已销户"),
    col("status_reason", String(30), "停机原因 arrears | customer_request | lost | operator | "
                                     "closed_by_customer", nullable=True),
    col("status_changed_at", UTC_TIME, "状态变更时间 (UTC)", nullable=True),
    col("prepaid", Boolean, "预付费 true for prepaid (pay-as-you-go) subscriptions"),
    col("credit_limit_fen", Money, "信用额度（分） credit limit of a postpaid subscription, fen",
        server_default="0"),
    col("plan_name", String(60), "套餐名称 tariff plan", nullable=True),
    col("features", Text, "已开通功能 enabled feature codes, comma-separated, e.g. sms,caller_id",
        server_default=""),
    col("family_numbers", Text, "亲友号码 prepaid family numbers, comma-separated (at most 3)",
        server_default=""),
    col("service_password_hash", String(200), "服务密码散列 scrypt$n$r$p$salt_hex$hash_hex (never plain)"),
    col("puk_code", String(16), "PUK码 (sensitive: never shown in full)", nullable=True),
    col("city", String(20), "归属地市 home city", nullable=True),
    col("opened_at", UTC_TIME, "入网时间 (UTC)"),
    col("closed_at", UTC_TIME, "销户时间 (UTC)", nullable=True),
    col("updated_at", UTC_TIME, "最后修改时间 (UTC)"),
    Index(None, "customer_id"),
    comment="用户资料 subscriptions: one number and its service",
    info={"writer": BILLING},
)

balances = Table(
    "kf_balances", metadata,
    col("subscription_id", ID, "用户编号 → kf_subscriptions.id", ForeignKey("kf_subscriptions.id"),
        primary_key=True, autoincrement=False),
    col("balance_fen", Money, "余额（分） prepaid balance or postpaid deposit, fen", server_default="0"),
    col("arrears_fen", Money, "欠费总额（分） total overdue unpaid amount, fen; 0 = no arrears",
        CheckConstraint("arrears_fen >= 0", name="arrears_not_negative"), server_default="0"),
    col("arrears_since", Date, "欠费起始日 oldest unpaid due date", nullable=True),
    col("updated_at", UTC_TIME, "更新时间 (UTC) as of when these figures hold"),
    comment="余额与欠费 balances and arrears, one row per subscription",
    info={"writer": BILLING},
)

bills = Table(
    "kf_bills", metadata,
    col("id", ID, "账单编号 bill id", primary_key=True, autoincrement=False),
    col("subscription_id", ID, "用户编号 → kf_subscriptions.id", ForeignKey("kf_subscriptions.id")),
    col("bill_month", String(7), "账期 billing month YYYY-MM (Beijing time)"),
    col("total_fen", Money, "月结话费总额（分） bill total, fen (= sum of its items)"),
    col("paid_fen", Money, "已缴金额（分） paid so far, fen", server_default="0"),
    col("status", String(16), "缴费状态 unpaid | partly_paid | paid"),
    col("due_date", Date, "缴费截止日 due date"),
    col("issued_at", UTC_TIME, "出账时间 (UTC)"),
    UniqueConstraint("subscription_id", "bill_month"),
    comment="月结话费 monthly bills (at least the last 3 months)",
    info={"writer": BILLING},
)

bill_items = Table(
    "kf_bill_items", metadata,
    col("id", ID, "明细编号 item id", primary_key=True, autoincrement=False),
    col("bill_id", ID, "账单编号 → kf_bills.id", ForeignKey("kf_bills.id")),
    col("item_code", String(30), "科目代码 monthly_fee | local_call | long_distance | roaming | sms | data | "
                                 "value_added | discount (billing may add codes)"),
    col("item_name", String(60), "科目名称 item name as printed on the bill, e.g. 本地通话费"),
    col("amount_fen", Money, "金额（分） amount, fen (negative for discounts)"),
    Index(None, "bill_id"),
    comment="月结话费分项 itemised bill lines",
    info={"writer": BILLING},
)

call_details = Table(
    "kf_call_details", metadata,
    col("id", ID, "详单编号 record id", primary_key=True, autoincrement=False),
    col("subscription_id", ID, "用户编号 → kf_subscriptions.id", ForeignKey("kf_subscriptions.id")),
    col("started_at", UTC_TIME, "开始时间 (UTC) start of the call / session"),
    col("record_type", String(10), "类型 voice_out 主叫 | voice_in 被叫 | sms_out | sms_in | data | forward"),
    col("other_party", String(24), "对方号码 other party's number", nullable=True),
    col("duration_s", Integer, "通话时长（秒） duration, seconds", server_default="0"),
    col("volume_kb", Integer, "流量（KB） data volume, KB", server_default="0"),
    col("location", String(20), "通话地 where the subscriber was", nullable=True),
    col("roaming", String(16), "漫游类型 none | provincial | national | international", server_default="none"),
    col("long_distance", String(16), "长途类型 none | domestic | international | ip", server_default="none"),
    col("fee_fen", Integer, "费用（分） charge, fen"),
    Index(None, "subscription_id", "started_at"),
    comment="通话详单 call details (at least the last 3 months)",
    info={"writer": BILLING},
)

payments = Table(
    "kf_payments", metadata,
    col("id", ID, "缴费编号 payment id", primary_key=True, autoincrement=False),
    col("subscription_id", ID, "用户编号 → kf_subscriptions.id", ForeignKey("kf_subscriptions.id")),
    col("paid_at", UTC_TIME, "缴费时间 (UTC)"),
    col("amount_fen", Money, "金额（分） amount, fen"),
    col("channel", String(16), "缴费渠道 counter | bank | online | card | auto_debit"),
    col("reference", String(40), "收据号 receipt or transaction number", nullable=True),
    Index(None, "subscription_id", "paid_at"),
    comment="缴费记录 payments and top-ups",
    info={"writer": BILLING},
)

blacklist = Table(
    "kf_blacklist", metadata,
    col("id", ID, "编号 entry id", primary_key=True, autoincrement=False),
    col("id_type", String(20), "证件类型 (as kf_customers.id_type)", nullable=True),
    col("id_number", String(40), "证件号码 (sensitive) the listed person's or company's ID", nullable=True),
    col("name", String(100), "姓名/名称 name", nullable=True),
    col("customer_id", ID, "客户编号 when the listed party is a current customer", nullable=True),
    col("phone", String(20), "号码 a number the listing is about", nullable=True),
    col("reason_code", String(30), "原因代码 malicious_arrears 恶意欠费 | fraud | harassment | fake_documents"),
    col("reason", String(200), "原因说明 free text shown to the agent", nullable=True),
    col("listed_at", UTC_TIME, "列入时间 (UTC)"),
    col("removed_at", UTC_TIME, "解除时间 (UTC); NULL = still listed", nullable=True),
    Index(None, "id_number"),
    Index(None, "customer_id"),
    Index(None, "phone"),
    comment="黑名单 blacklist of malicious re-subscribers; matched by ID number, customer or number",
    info={"writer": BILLING},
)


def _request_table(name: str, comment: str, columns: list[Column], indexes: list[Index], **kw: Any) -> Table:
    """A table Kefu inserts into and billing writes the outcome back to (one lifecycle for both)."""
    return Table(
        name, metadata,
        col("id", ID, "工单编号 row id (assigned on insert)", primary_key=True),
        col("idempotency_key", String(100), "幂等键 Kefu's key: one row per key, however often sent",
            unique=True),
        *columns,
        col("requested_at", UTC_TIME, "受理时间 (UTC) when the agent accepted the request"),
        col("requested_by", String(40), "受理人 the agent's user name", nullable=True),
        col("status", String(16), "状态 NEW → PROCESSING → DONE | REJECTED (billing writes all but NEW)",
            server_default="NEW"),
        col("processing_at", UTC_TIME, "开始处理时间 (UTC), set with PROCESSING", nullable=True,
            writer=BILLING),
        col("finished_at", UTC_TIME, "完成时间 (UTC), set with DONE or REJECTED", nullable=True, writer=BILLING),
        col("reason", String(500), "处理说明 why REJECTED (required then), or a note on DONE", nullable=True,
            writer=BILLING),
        col("billing_ref", String(40), "计费侧单号 billing's own reference", nullable=True, writer=BILLING),
        Index(None, "status", "id"),
        *indexes,
        comment=comment,
        info={"writer": KEFU},
        **kw,
    )


service_orders = _request_table(
    "kf_service_orders", "业务受理工单 service orders written by Kefu, executed by billing",
    [col("subscription_id", ID, "用户编号 → kf_subscriptions.id", ForeignKey("kf_subscriptions.id"),
         nullable=True),
     col("phone", String(20), "号码 the number the order is for"),
     col("request_type", String(30), "业务类型 feature_on | feature_off | suspend | resume | report_loss | "
                                     "change_password | change_bill_address | set_family_numbers"),
     col("params", Text, "参数 JSON object, by request type (see the interface document)",
         server_default="{}")],
    [Index(None, "phone", "requested_at")],
    sqlite_autoincrement=True,  # an order id is never reused, even after rows are deleted
)

change_requests = _request_table(
    "kf_change_requests", "客户资料变更 customer data changes written by Kefu, applied by billing",
    [col("customer_id", ID, "客户编号 → kf_customers.id", ForeignKey("kf_customers.id")),
     col("phone", String(20), "号码 the number the caller was identified by", nullable=True),
     col("changes", Text, "变更内容 JSON object field → new value (contact_person, contact_phone, email, "
                          "address, postcode, preferred_language)")],
    [Index(None, "customer_id", "requested_at")],
    sqlite_autoincrement=True,
)

password_handover = Table(
    "kf_password_handover", metadata,
    col("token", String(64), "交接凭据 random single-use token (what Kefu's order names)", primary_key=True),
    col("password_hash", String(200), "新服务密码散列 scrypt$… (never the password)"),
    col("created_at", UTC_TIME, "写入时间 (UTC); unused rows are removed after a day"),
    comment="新服务密码交接 Kefu's own hand-over of a new service password's hash from the agent's step to "
            "its service order (moved into the order's params when the order is written; billing ignores it)",
    info={"writer": KEFU},
)

DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}


def render_ddl(dialect: str) -> str:
    """The CREATE statements of every table, in dependency order, for ``sqlite`` or ``postgresql``.

    Each column line ends with its comment as ``-- …``; on PostgreSQL the comments are also stored
    in the catalogue with COMMENT ON statements.
    """
    engine_dialect = DIALECTS[dialect]
    out = [f"-- Kefu billing interim tables (计费中间表), schema version {SCHEMA_VERSION}, for {dialect}.",
           "-- Generated by connectors.billing.schema.render_ddl; do not edit by hand.",
           "-- All times are UTC; all amounts are integer fen (分). See docs/billing-interim-tables.md.", ""]
    for table in metadata.tables.values():  # definition order: referenced tables come first
        out.append(f"-- {table.name}: {table.comment} [written by {table.info['writer']}]")
        create = str(CreateTable(table).compile(dialect=engine_dialect)).strip()
        out.append(_annotate(create, table) + ";")
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            out.append(str(CreateIndex(index).compile(dialect=engine_dialect)).strip() + ";")
        if dialect == "postgresql":
            out.append(str(SetTableComment(table).compile(dialect=engine_dialect)) + ";")
            out.extend(str(SetColumnComment(c).compile(dialect=engine_dialect)) + ";" for c in table.columns)
        out.append("")
    return "\n".join(out)


def _annotate(create: str, table: Table) -> str:
    lines = []
    for line in create.splitlines():
        text = line.strip()
        name = text.split(" ", 1)[0].strip('"')
        column = table.columns.get(name)
        if column is not None and text != name and not text.startswith(("PRIMARY", "UNIQUE", "CONSTRAINT")):
            text = f"{text.rstrip()}  -- {column.comment}"
        lines.append(("    " + text) if line.startswith("\t") else text)
    return "\n".join(lines)


def write_ddl_files() -> list[Path]:
    """Rewrite ``ddl/<dialect>.sql`` from the tables above."""
    written = []
    for dialect in DIALECTS:
        path = DDL_DIR / f"{dialect}.sql"
        path.write_text(render_ddl(dialect), encoding="utf-8")
        written.append(path)
    return written

