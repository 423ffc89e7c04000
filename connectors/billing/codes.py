"""The codes of the billing interim tables, with the Chinese labels agents see.

Codes are stable English identifiers stored in the tables (billing vendors write them too); labels
are for display only. Amounts everywhere are integer fen (分); :func:`yuan` formats them.
Imports nothing of the rest of Kefu.
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from typing import Any

from connectors.base import PermanentError

# Billing months and days are Beijing time (no daylight saving); stored times are UTC.
CHINA_TZ = timezone(timedelta(hours=8), "CST")

# -- customers -------------------------------------------------------------------------------------
LEVELS = {"standard": "大众客户", "large": "大客户", "vip": "VIP客户"}
CUSTOMER_TYPES = {"person": "个人", "company": "单位"}
ID_TYPES = {"id_card": "居民身份证", "passport": "护照", "business_license": "营业执照",
            "officer_card": "军官证"}
LANGUAGES = {"zh": "普通话", "en": "英语", "yue": "粤语"}

# -- subscriptions ---------------------------------------------------------------------------------
SERVICE_TYPES = {"gsm": "GSM移动电话", "ip": "IP电话", "fixed": "固网市话", "ld193": "193长途"}
SUBSCRIPTION_STATUSES = {"active": "正常", "one_way_suspended": "单向停机",
                         "two_way_suspended": "双向停机", "closed": "已销户"}
STATUS_REASONS = {"arrears": "欠费停机", "customer_request": "用户申请停机", "lost": "挂失停机",
                  "operator": "运营商停机", "closed_by_customer": "用户销户"}
# GSM features (功能) that can be switched on and off (seed 000 §4.2).
FEATURES = {
    "intl_long_distance": "国际长途",
    "intl_roaming": "国际漫游",
    "national_roaming": "国内漫游",
    "provincial_roaming": "省内漫游",
    "caller_id": "主叫显示",
    "call_forwarding": "呼叫转移",
    "call_barring": "呼叫限制",
    "sms": "短信",
    "call_waiting": "呼叫等待",
    "three_way_calling": "三方通话",
}
MAX_FAMILY_NUMBERS = 3  # 亲友号码 of a prepaid subscription

# -- bills, payments, call details -----------------------------------------------------------------
BILL_ITEMS = {
    "monthly_fee": "月租费",
    "local_call": "本地通话费",
    "long_distance": "长途费",
    "roaming": "漫游费",
    "sms": "短信费",
    "data": "数据流量费",
    "value_added": "增值业务费",
    "discount": "优惠减免",
}
BILL_STATUSES = {"unpaid": "未缴", "partly_paid": "部分缴纳", "paid": "已缴清"}
PAYMENT_CHANNELS = {"counter": "营业厅", "bank": "银行代收", "online": "网上缴费",
                    "card": "充值卡", "auto_debit": "银行托收"}
RECORD_TYPES = {"voice_out": "主叫", "voice_in": "被叫", "sms_out": "发短信", "sms_in": "收短信",
                "data": "上网", "forward": "呼转"}
ROAMING = {"none": "非漫游", "provincial": "省内漫游", "national": "国内漫游", "international": "国际漫游"}
LONG_DISTANCE = {"none": "本地", "domestic": "国内长途", "international": "国际长途", "ip": "IP长途"}
BLACKLIST_REASONS = {"malicious_arrears": "恶意欠费", "fraud": "欺诈", "harassment": "骚扰",
                     "fake_documents": "虚假证件"}

# -- service orders and change requests ------------------------------------------------------------
NEW, PROCESSING, DONE, REJECTED = "NEW", "PROCESSING", "DONE", "REJECTED"
ORDER_STATUSES = {NEW: "待处理", PROCESSING: "处理中", DONE: "已完成", REJECTED: "已拒绝"}
FINISHED = (DONE, REJECTED)

REQUEST_TYPES = {
    "feature_on": "开通功能",
    "feature_off": "关闭功能",
    "suspend": "停机（用户申请）",
    "resume": "开机",
    "report_loss": "挂失（紧急停机）",
    "change_password": "修改服务密码",
    "change_bill_address": "修改账单地址",
    "set_family_numbers": "设置亲友号码",
}
# Suspension modes of a ``suspend`` order (dunning suspends one way first, then both ways).
SUSPEND_MODES = {"one_way": "单向停机", "two_way": "双向停机"}
# Customer data a change request may set (客户资料变更).
CHANGEABLE_FIELDS = {
    "contact_person": "联系人",
    "contact_phone": "联系电话",
    "email": "电子邮箱",
    "address": "联系地址",
    "postcode": "邮政编码",
    "preferred_language": "服务语种",
}


def label(table: dict[str, str], code: str | None) -> str | None:
    """The label of ``code``; an unknown code is shown as itself (billing may add codes)."""
    if code is None:
        return None
    return table.get(code, code)


def yuan(fen: int) -> str:
    """``12345`` → ``"123.45"`` (negative amounts keep their sign)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


# -- validation of what Kefu writes (messages are for the agent, so Chinese) ------------------------
NUMBER = re.compile(r"^\d{5,20}\Z", re.ASCII)
PASSWORD = re.compile(r"^\d{6}\Z", re.ASCII)
POSTCODE = re.compile(r"^\d{6}\Z", re.ASCII)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
HASH_PREFIX = "scrypt$"
# request type → (required parameters, optional parameters); every type may carry a ``note``.
ORDER_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "feature_on": (("feature",), ("forward_to",)),
    "feature_off": (("feature",), ()),
    "suspend": ((), ("mode", "reason")),
    "resume": ((), ()),
    "report_loss": ((), ("contact_phone",)),
    "change_password": ((), ("new_password", "new_password_hash", "new_password_ref")),
    "change_bill_address": (("bill_address",), ("postcode",)),
    "set_family_numbers": (("numbers",), ()),
}


def check_number(value: Any, what: str = "号码") -> str:
    """A phone number of digits only (area code included for fixed lines)."""
    text = str(value or "").strip().replace("-", "").replace(" ", "")
    if not NUMBER.match(text):
        raise PermanentError(f"{what}格式不正确：{str(value)[:30]!r}（应为5至20位数字）")
    return text


def _text(params: dict[str, Any], name: str, what: str, limit: int) -> str:
    value = str(params.get(name) or "").strip()
    if not value:
        raise PermanentError(f"缺少{what}")
    if len(value) > limit:
        raise PermanentError(f"{what}过长（最多{limit}个字）")
    return value


def validate_order(request_type: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters of a service order, checked and normalised; ``PermanentError`` says what is
    wrong in words an agent understands. ``new_password`` stays plain here: the gateway hashes it."""
    if request_type not in REQUEST_TYPES:
        raise PermanentError(f"未知的业务类型：{request_type!r}")
    params = dict(params or {})
    required, optional = ORDER_PARAMS[request_type]
    unknown = sorted(set(params) - set(required) - set(optional) - {"note"})
    if unknown:
        raise PermanentError(f"{REQUEST_TYPES[request_type]}不支持参数：{', '.join(unknown)}")
    missing = [name for name in required if params.get(name) in (None, "")]
    if missing:
        raise PermanentError(f"{REQUEST_TYPES[request_type]}缺少参数：{', '.join(missing)}")
    out: dict[str, Any] = {}
    if params.get("note"):
        out["note"] = _text(params, "note", "备注", 200)
    if request_type in ("feature_on", "feature_off"):
        feature = str(params["feature"]).strip()
        if feature not in FEATURES:
            raise PermanentError(f"未知的功能代码：{feature!r}")
        out["feature"] = feature
        if params.get("forward_to"):
            if feature != "call_forwarding":
                raise PermanentError("只有呼叫转移需要转移号码")
            out["forward_to"] = check_number(params["forward_to"], "转移号码")
    elif request_type == "suspend":
        if params.get("mode") not in (None, ""):
            if params["mode"] not in SUSPEND_MODES:
                raise PermanentError(f"未知的停机方式：{str(params['mode'])[:20]!r}（应为 one_way 或 two_way）")
            out["mode"] = params["mode"]
        if params.get("reason") not in (None, ""):
            if params["reason"] not in STATUS_REASONS:
                raise PermanentError(f"未知的停机原因：{str(params['reason'])[:20]!r}")
            out["reason"] = params["reason"]
    elif request_type == "report_loss" and params.get("contact_phone"):
        out["contact_phone"] = check_number(params["contact_phone"], "联系电话")
    elif request_type == "change_password":
        out.update(_new_password(params))
    elif request_type == "change_bill_address":
        out["bill_address"] = _text(params, "bill_address", "账单地址", 200)
        if params.get("postcode"):
            postcode = str(params["postcode"]).strip()
            if not POSTCODE.match(postcode):
                raise PermanentError("邮政编码应为6位数字")
            out["postcode"] = postcode
    elif request_type == "set_family_numbers":
        out["numbers"] = _family_numbers(params["numbers"])
    return out


HANDOVER = re.compile(r"^pw-[0-9a-f]{32}\Z", re.ASCII)


def _new_password(params: dict[str, Any]) -> dict[str, str]:
    if params.get("new_password_ref"):  # a sealed hand-over (see BillingGateway.seal_password)
        ref = str(params["new_password_ref"])
        if not HANDOVER.match(ref):
            raise PermanentError("新密码交接凭据格式不正确")
        return {"new_password_ref": ref}
    if params.get("new_password_hash"):
        hashed = str(params["new_password_hash"])
        if not hashed.startswith(HASH_PREFIX) or hashed.count("$") != 5:
            raise PermanentError("新密码散列格式不正确")
        return {"new_password_hash": hashed}
    password = str(params.get("new_password") or "")
    if not PASSWORD.match(password):
        raise PermanentError("新服务密码应为6位数字")
    if len(set(password)) == 1 or password in "01234567890" or password in "9876543210":
        raise PermanentError("新服务密码过于简单（不能是相同或连续的数字）")
    return {"new_password": password}


def _family_numbers(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part for part in re.split(r"[,，\s]+", value) if part]
    if not isinstance(value, list | tuple):
        raise PermanentError("亲友号码应为号码列表")
    numbers = [check_number(v, "亲友号码") for v in value]
    if len(numbers) > MAX_FAMILY_NUMBERS:
        raise PermanentError(f"亲友号码最多{MAX_FAMILY_NUMBERS}个")
    if len(set(numbers)) != len(numbers):
        raise PermanentError("亲友号码不能重复")
    return numbers


def validate_changes(changes: dict[str, Any] | None) -> dict[str, str]:
    """The fields of a customer data change request, checked and normalised."""
    if not changes:
        raise PermanentError("没有要变更的客户资料")
    unknown = sorted(set(changes) - set(CHANGEABLE_FIELDS))
    if unknown:
        raise PermanentError(f"不能通过变更申请修改：{', '.join(unknown)}")
    out = {name: _text(changes, name, CHANGEABLE_FIELDS[name], 200) for name in changes}
    if "contact_phone" in out:
        out["contact_phone"] = check_number(out["contact_phone"], "联系电话")
    if "postcode" in out and not POSTCODE.match(out["postcode"]):
        raise PermanentError("邮政编码应为6位数字")
    if "email" in out and not EMAIL.match(out["email"]):
        raise PermanentError("电子邮箱格式不正确")
    if "preferred_language" in out and out["preferred_language"] not in LANGUAGES:
        raise PermanentError(f"未知的服务语种：{out['preferred_language']!r}")
    return out


def describe_order(request_type: str, params: dict[str, Any]) -> str:
    """One line in Chinese for lists and SMS texts, e.g. ``开通功能：国际漫游``."""
    title = REQUEST_TYPES.get(request_type, request_type)
    if request_type in ("feature_on", "feature_off"):
        detail = label(FEATURES, params.get("feature")) or ""
        if params.get("forward_to"):
            detail += f"（转至{params['forward_to']}）"
        return f"{title}：{detail}"
    if request_type == "suspend" and params.get("mode"):
        reason = label(STATUS_REASONS, params.get("reason"))
        return f"{SUSPEND_MODES.get(params['mode'], params['mode'])}" + (f"（{reason}）" if reason else "")
    if request_type == "set_family_numbers":
        return f"{title}：{'、'.join(params.get('numbers') or []) or '清空'}"
    if request_type == "change_bill_address":
        return f"{title}：{params.get('bill_address', '')}"
    return title


def describe_changes(changes: dict[str, Any]) -> str:
    return "变更客户资料：" + "、".join(CHANGEABLE_FIELDS.get(name, name) for name in changes)
