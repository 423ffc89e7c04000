"""The billing operations BPMN service tasks can name (``billing.*``), over one ``BillingGateway``.

Inline operations are quick reads used while the agent waits (identify the caller, check
standing); outbox operations write to or wait on billing and are retried by the engine's outbox.
Every outbox operation here is idempotent: the interim tables deduplicate by ``call.key``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from connectors.base import INLINE, OUTBOX, Call, Operation, PermanentError

from . import codes
from .gateway import BillingGateway


def _dict(value: Any, name: str) -> dict[str, Any]:
    """A parameter that should be an object (a BPMN expression may hand over JSON text)."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise PermanentError(f"parameter {name!r} is not a JSON object") from exc
    if not isinstance(value, dict):
        raise PermanentError(f"parameter {name!r} must be an object, not {type(value).__name__}")
    return value


def prepare_order(params: dict[str, Any], call: Call, seal: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Check an order the agent is taking, while the customer is on the line.

    ``fields`` holds the form's fields; those the request type does not take are dropped, so one
    form serves every type. A new service password is sealed here, inside the step (``seal``:
    hashed into billing's single-use hand-over row), so that the case's data and the order's job
    carry only a token — never the password nor its hash. Returns ``{ok, request_type, params,
    request_label, summary_zh}`` or ``{ok: False, error_zh}`` (the agent corrects the request)."""
    request_type = str(params.get("request_type") or "")
    fields = _dict(params.get("fields"), "fields")
    required, optional = codes.ORDER_PARAMS.get(request_type, ((), ()))
    wanted = {*required, *optional, "note"}
    given = {("numbers" if k == "family_numbers" else k): v for k, v in fields.items()
             if v not in (None, "", [])}
    chosen = {k: v for k, v in given.items() if k in wanted}
    try:
        checked = codes.validate_order(request_type, chosen)
    except PermanentError as exc:
        return {"ok": False, "error_zh": str(exc), "request_type": request_type}
    if "new_password" in checked:
        password = checked.pop("new_password")
        if seal is None:
            raise PermanentError("no billing gateway to hand the new service password to")
        checked["new_password_ref"] = seal(password)
    return {"ok": True, "error_zh": "", "request_type": request_type, "params": checked,
            "request_label": _short_label(request_type, checked),
            "summary_zh": codes.describe_order(request_type, checked)}


def _short_label(request_type: str, params: dict[str, Any]) -> str:
    """What the customer asked for in a few words, for texts: ``开通国际漫游``, ``挂失（紧急停机）``."""
    if request_type in ("feature_on", "feature_off"):
        verb = "开通" if request_type == "feature_on" else "关闭"
        return verb + (codes.label(codes.FEATURES, params.get("feature")) or "")
    return codes.label(codes.REQUEST_TYPES, request_type) or request_type


def operations(gateway: BillingGateway) -> list[Operation]:
    """The operations of the billing connector, bound to ``gateway``."""

    def verify_password(params: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"ok": gateway.verify_service_password(str(params["phone"]), str(params["password"]))}

    def check_standing(params: dict[str, Any], call: Call) -> dict[str, Any]:
        return gateway.standing(str(params["phone"]))

    def customer_360(params: dict[str, Any], call: Call) -> dict[str, Any]:
        found = gateway.customer_360(str(params["phone"]))
        return {"found": False, "phone": params["phone"]} if found is None else {"found": True, **found}

    def prepare(params: dict[str, Any], call: Call) -> dict[str, Any]:
        return prepare_order(params, call, lambda password: gateway.seal_password(password, call.now))

    def submit_order(params: dict[str, Any], call: Call) -> dict[str, Any]:
        return gateway.submit_order(call.key, str(params["phone"]), str(params["request_type"]),
                                    _dict(params.get("params"), "params"), requested_at=call.now,
                                    requested_by=params.get("requested_by"))

    def await_order(params: dict[str, Any], call: Call) -> dict[str, Any]:
        return gateway.await_order(str(params["order_key"]))

    def submit_change_request(params: dict[str, Any], call: Call) -> dict[str, Any]:
        return gateway.submit_change_request(call.key, str(params["phone"]), _dict(params["changes"], "changes"),
                                             requested_at=call.now, requested_by=params.get("requested_by"))

    def await_change_request(params: dict[str, Any], call: Call) -> dict[str, Any]:
        return gateway.await_change_request(str(params["request_key"]))

    return [
        Operation("billing.verify_password", "核验服务密码", verify_password, required=("phone", "password"),
                  mode=INLINE, description="Whether the caller gave the number's service password: {ok}. "
                                           "The password is never stored or logged."),
        Operation("billing.check_standing", "检查欠费与黑名单", check_standing, required=("phone",), mode=INLINE,
                  description="{can_accept, reasons_zh, advice_zh, message_zh, arrears_fen, blacklisted, …}"),
        Operation("billing.customer_360", "查询客户资料", customer_360, required=("phone",), mode=INLINE,
                  description="Customer, subscription, account, last 3 bills, payments, blacklist; {found}."),
        Operation("billing.prepare_order", "检查业务受理内容", prepare, required=("request_type",),
                  optional=("fields",), mode=INLINE,
                  description="Checks a service order's parameters at once: {ok, error_zh, request_type, "
                              "params, summary_zh}; a new service password comes back as a single-use "
                              "hand-over token (new_password_ref), never as the password or its hash."),
        Operation("billing.submit_order", "提交业务受理工单", submit_order,
                  required=("phone", "request_type"), optional=("params", "requested_by"), idempotent=True,
                  mode=OUTBOX, description="Writes one service order for billing (once per job key); "
                                           "returns the order, whose 'key' feeds billing.await_order."),
        Operation("billing.await_order", "等待计费系统处理工单", await_order, required=("order_key",),
                  idempotent=True, mode=OUTBOX,
                  description="Waits until billing finished the order: {status DONE|REJECTED, reason, "
                              "finished_at}; an unknown status becomes an incident."),
        Operation("billing.submit_change_request", "提交客户资料变更", submit_change_request,
                  required=("phone", "changes"), optional=("requested_by",), idempotent=True, mode=OUTBOX,
                  description="Writes one customer data change request (once per job key)."),
        Operation("billing.await_change_request", "等待客户资料变更结果", await_change_request,
                  required=("request_key",), idempotent=True, mode=OUTBOX,
                  description="Waits until billing applied or refused the change request."),
    ]
