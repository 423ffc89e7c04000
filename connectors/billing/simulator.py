"""DEMO ONLY — a stand-in for the billing system, so that ``make run`` shows the whole loop.

``BillingSimulator`` plays billing's side of the interim tables: it picks up NEW service orders
and change requests (→ PROCESSING), and after ``delay`` executes them against the demo
subscriptions (→ DONE, the change applied) or refuses what billing would refuse (→ REJECTED with
a reason). It runs only on a database made by ``demo_data.seed`` (``kf_meta.demo_seed``): pointed
at a real billing database it does nothing but log a warning, and the composition root should not
start it at all when ``KEFU_BILLING_URL`` is configured. It is not part of the interface.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection, Row

from . import codes
from .gateway import BillingGateway, utc
from .schema import balances, change_requests, customers, service_orders, subscriptions

log = logging.getLogger("kefu.billing.simulator")

Outcome = tuple[str, str | None, dict[str, Any]]  # status, reason, subscription changes


class BillingSimulator:
    """The demo billing side. ``run_once(now)`` is one tick; it returns how many rows it moved."""

    def __init__(self, gateway: BillingGateway, delay: timedelta = timedelta(seconds=5), batch: int = 100):
        self.gateway, self.delay, self.batch = gateway, delay, batch
        self._demo: bool | None = None
        log.info("DEMO billing simulator on %r: NEW service orders are executed after %gs",
                 gateway, delay.total_seconds())

    def run_once(self, now: datetime) -> int:
        """Finish what has been PROCESSING for ``delay``, then claim what is NEW."""
        if not self._is_demo():
            return 0
        now = utc(now)
        moved = self._finish(service_orders, now) + self._finish(change_requests, now)
        return moved + self._claim(service_orders, now) + self._claim(change_requests, now)

    def _is_demo(self) -> bool:
        if self._demo is None:
            self._demo = self.gateway.is_demo()
            if not self._demo:
                log.warning("billing simulator disabled: %r is not a demo billing database", self.gateway)
        return self._demo

    def _claim(self, table: Table, now: datetime) -> int:
        with self.gateway.connect(write=True) as conn:
            ids = list(conn.scalars(select(table.c.id).where(table.c.status == codes.NEW)
                                    .order_by(table.c.id).limit(self.batch)))
            if not ids:
                return 0
            return conn.execute(update(table).where(table.c.id.in_(ids), table.c.status == codes.NEW)
                                .values(status=codes.PROCESSING, processing_at=now)).rowcount

    def _finish(self, table: Table, now: datetime) -> int:
        with self.gateway.connect() as conn:
            ids = list(conn.scalars(select(table.c.id).where(
                table.c.status == codes.PROCESSING, table.c.processing_at <= now - self.delay)
                .order_by(table.c.id).limit(self.batch)))
        finished = 0
        for row_id in ids:  # one transaction each: the row and the change it makes go together
            with self.gateway.connect(write=True) as conn:
                row = conn.execute(select(table).where(table.c.id == row_id,
                                                       table.c.status == codes.PROCESSING)).first()
                if row is None:
                    continue
                if table is service_orders:
                    status, reason = _execute_order(conn, row, now)
                else:
                    status, reason = _apply_changes(conn, row, now)
                conn.execute(update(table).where(table.c.id == row_id).values(
                    status=status, reason=reason, finished_at=now, billing_ref=f"SIM{row_id:08d}"))
            log.info("DEMO billing: %s %s → %s%s", table.name, row_id, status, f" ({reason})" if reason else "")
            finished += 1
        return finished


def _execute_order(conn: Connection, order: Row, now: datetime) -> tuple[str, str | None]:
    sub = conn.execute(select(subscriptions, balances.c.arrears_fen)
                       .outerjoin(balances, balances.c.subscription_id == subscriptions.c.id)
                       .where(subscriptions.c.phone == order.phone)).first()
    if sub is None:
        return codes.REJECTED, f"号码 {order.phone} 不存在"
    try:
        params = json.loads(order.params or "{}")
    except ValueError:
        return codes.REJECTED, "工单参数无法识别"
    status, reason, changes = _decide(order.request_type, params, sub)
    if status == codes.DONE:
        if order.request_type == "change_bill_address":
            values = {"bill_address": params["bill_address"], "updated_at": now}
            if params.get("postcode"):
                values["postcode"] = params["postcode"]
            conn.execute(update(customers).where(customers.c.id == sub.customer_id).values(**values))
        if changes:
            if "status" in changes:
                changes["status_changed_at"] = now
            conn.execute(update(subscriptions).where(subscriptions.c.id == sub.id)
                         .values(**changes, updated_at=now))
    return status, reason


def _decide(request_type: str, params: dict[str, Any], sub: Row) -> Outcome:
    """What billing does with one order: the rules a real billing system would apply, simplified."""
    if sub.status == "closed":
        return codes.REJECTED, "号码已销户，不能办理", {}
    if request_type == "suspend" and params.get("reason") == "arrears":  # dunning: suspend for arrears
        mode = params.get("mode") or "two_way"
        if sub.status == f"{mode}_suspended" or sub.status == "two_way_suspended":
            return codes.REJECTED, "号码已处于该停机状态", {}
        return codes.DONE, None, {"status": f"{mode}_suspended", "status_reason": "arrears"}
    if (sub.arrears_fen or 0) > 0 and request_type != "report_loss":
        return codes.REJECTED, f"用户欠费 ¥{codes.yuan(sub.arrears_fen)}，请先缴清欠费", {}
    if request_type in ("feature_on", "feature_off"):
        return _feature(request_type, params, sub)
    if request_type == "suspend":
        if sub.status != "active":
            return codes.REJECTED, "号码已处于停机状态", {}
        return codes.DONE, None, {"status": "two_way_suspended", "status_reason": "customer_request"}
    if request_type == "resume":
        if sub.status == "active":
            return codes.REJECTED, "号码状态正常，无需开机", {}
        if sub.status_reason == "lost":
            return codes.REJECTED, "挂失停机的号码需本人持证件到营业厅补卡后开机", {}
        if sub.status_reason == "operator":  # arrears: resumed once paid (the check above)
            return codes.REJECTED, f"{codes.label(codes.STATUS_REASONS, sub.status_reason)}，不能受理开机", {}
        return codes.DONE, None, {"status": "active", "status_reason": None}
    if request_type == "report_loss":
        if sub.status_reason == "lost":
            return codes.REJECTED, "号码已挂失", {}
        return codes.DONE, None, {"status": "two_way_suspended", "status_reason": "lost"}
    if request_type == "change_password":
        return codes.DONE, None, {"service_password_hash": params["new_password_hash"]}
    if request_type == "change_bill_address":
        return codes.DONE, None, {}
    if request_type == "set_family_numbers":
        if not sub.prepaid:
            return codes.REJECTED, "亲友号码仅适用于预付费用户", {}
        return codes.DONE, None, {"family_numbers": ",".join(params.get("numbers") or [])}
    return codes.REJECTED, f"计费系统不支持业务类型 {request_type}", {}


def _feature(request_type: str, params: dict[str, Any], sub: Row) -> Outcome:
    code = params.get("feature")
    name = codes.label(codes.FEATURES, code)
    if sub.service_type != "gsm":
        return codes.REJECTED, "只有GSM用户可以办理功能开关", {}
    enabled = [c for c in (sub.features or "").split(",") if c]
    if request_type == "feature_on":
        if code in enabled:
            return codes.REJECTED, f"{name}已开通，无需重复办理", {}
        if sub.status != "active":
            return codes.REJECTED, "号码处于停机状态，不能开通功能", {}
        if code == "intl_roaming" and "intl_long_distance" not in enabled:
            return codes.REJECTED, "开通国际漫游前需先开通国际长途", {}
        enabled.append(code)
    else:
        if code not in enabled:
            return codes.REJECTED, f"{name}未开通，无需关闭", {}
        enabled.remove(code)
    order = list(codes.FEATURES)
    enabled.sort(key=lambda c: order.index(c) if c in order else len(order))
    return codes.DONE, None, {"features": ",".join(enabled)}


def _apply_changes(conn: Connection, request: Row, now: datetime) -> tuple[str, str | None]:
    try:
        changes = json.loads(request.changes or "{}")
    except ValueError:
        return codes.REJECTED, "变更内容无法识别"
    allowed = {k: v for k, v in changes.items() if k in codes.CHANGEABLE_FIELDS}
    if not allowed or len(allowed) != len(changes):
        return codes.REJECTED, "变更内容包含不能修改的字段"
    done = conn.execute(update(customers).where(customers.c.id == request.customer_id)
                        .values(**allowed, updated_at=now)).rowcount
    return (codes.DONE, None) if done else (codes.REJECTED, "客户不存在")
