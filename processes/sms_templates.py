"""SMS texts as Jinja2 templates that administrators edit in the product.

Templates are rendered in a sandbox with undefined names as errors, so a template that names a
field the process does not have is refused when it is saved, not when a customer should get it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, nodes
from jinja2.exceptions import SecurityError, TemplateAssertionError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base

MAX_TEXT = 700  # five concatenated UCS2 parts: longer is a letter, not a text message

# code → (title, body, sample context used to check the template at save time)
DEFAULTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "complaint_accepted": (
        "投诉受理通知",
        "尊敬的客户，您的投诉已受理，工单号{{ reference }}。我们将在{{ first_reply_hours }}小时内答复您。【客服中心】",
        {"reference": "CP20261123000001", "first_reply_hours": 2},
    ),
    "complaint_first_reply": (
        "投诉首次答复",
        "尊敬的客户，关于工单{{ reference }}：{{ first_reply }}【客服中心】",
        {"reference": "CP20261123000001", "first_reply": "已派单至网络部处理"},
    ),
    "complaint_closed": (
        "投诉办结通知",
        "尊敬的客户，您的投诉（工单{{ reference }}）已处理完毕：{{ final_reply }}【客服中心】",
        {"reference": "CP20261123000001", "final_reply": "基站故障已修复"},
    ),
    "complaint_survey": (
        "投诉办结满意度调查",
        ("尊敬的客户，您的投诉（工单{{ reference }}）已处理完毕：{{ final_reply }}。请回复数字评价："
        "1 满意 / 2 基本满意 / 3 不满意。【客服中心】"),
        {"reference": "CP20261123000001", "final_reply": "基站故障已修复"},
    ),
    "acceptance_done": (
        "业务受理成功",
        "尊敬的客户，您申请的{{ request_label }}已办理成功（受理单号{{ reference }}）。【客服中心】",
        {"reference": "BA20261123000001", "request_label": "开通国际漫游"},
    ),
    "acceptance_rejected": (
        "业务受理未成功",
        "尊敬的客户，您申请的{{ request_label }}未能办理：{{ reason }}。客服人员将与您联系。【客服中心】",
        {"reference": "BA20261123000001", "request_label": "开通国际漫游", "reason": "账户余额不足"},
    ),
    "complaint_upgraded": (
        "越级投诉督办",
        "【督办】越级投诉工单{{ reference }}（来源：{{ source }}）已受理，时限从严，请督办。",
        {"reference": "TS20261123000001", "source": "10015投诉监督"},
    ),
    "escalation": (
        "超时升级提醒",
        "【升级L{{ level }}】工单{{ reference }}「{{ step }}」已超时{{ late }}，处理人：{{ holder }}，请督办。",
        {"level": 1, "reference": "CP20261123000001", "step": "部门处理", "late": "30分钟", "holder": "张三"},
    ),
    "payment_reminder": (
        "缴费提醒（信用额度）",
        ("尊敬的客户，截至{{ as_of }}，您的号码{{ phone }}已用额度（欠费及未出账话费，扣除预存款）¥{{ used }}，"
         "已达信用额度¥{{ credit_limit }}的{{ percent }}%。为免停机，请及时缴费。【客服中心】"),
        {"phone": "13800000002", "used": "160.00", "credit_limit": "200.00", "percent": 80, "as_of": "11月23日"},
    ),
    "low_balance": (
        "余额不足提醒（预付费）",
        "尊敬的客户，截至{{ as_of }}，您的号码{{ phone }}余额¥{{ balance }}，已低于¥{{ floor }}。为免停机，请及时充值。【客服中心】",
        {"phone": "13800000005", "balance": "8.50", "floor": "10.00", "as_of": "11月23日"},
    ),
    "callback_unreached": (
        "回访未接通",
        "尊敬的客户，我们多次致电未能联系到您（{{ reason }}）。如需帮助请拨打10086。【客服中心】",
        {"reason": "遇忙回叫"},
    ),
}

MAX_BODY = 4000  # characters of a template: a text of at most MAX_TEXT, with its conditions

# What a text template may say: values, constants, conditions, ~ and + and -, and the filters and
# tests below. No loops, assignments, macros, calls or * ** % (string formatting): without them
# rendering is linear in the template's size, so no template can hold a process for minutes or
# build a gigabyte (a Jinja sandbox alone bounds ranges, not ``'a'|center(10**9)`` or a loop that
# doubles a string 28 times).
_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.If,
          nodes.CondExpr, nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.Neg,
          nodes.Pos, nodes.Concat, nodes.Add, nodes.Sub, nodes.Filter, nodes.Test, nodes.Keyword)
_FILTERS = frozenset({"default", "d", "trim", "upper", "lower", "capitalize", "title", "truncate", "round",
                      "int", "float", "string", "length", "count", "abs", "first", "last", "e", "escape"})
_TESTS = frozenset({"defined", "undefined", "none", "number", "string", "true", "false", "odd", "even",
                    "eq", "ne", "lt", "le", "gt", "ge", "in", "==", "!=", "<", "<=", ">", ">="})
_CONSTRUCTS = {nodes.For: "for", nodes.Assign: "set", nodes.AssignBlock: "set", nodes.Macro: "macro",
               nodes.CallBlock: "call", nodes.FilterBlock: "filter", nodes.With: "with",
               nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "import",
               nodes.Extends: "extends", nodes.Block: "block", nodes.Call: "()", nodes.Mul: "*",
               nodes.Pow: "**", nodes.Mod: "%", nodes.Div: "/", nodes.FloorDiv: "//",
               nodes.List: "[ ]", nodes.Dict: "{ }", nodes.Tuple: "( , )", nodes.Slice: "[:]",
               nodes.Getattr: ".", nodes.Getitem: "[ ]"}


class NotAllowed(SecurityError):
    """A construct a text template may not use; ``construct`` names it as the author wrote it."""

    def __init__(self, construct: str, lineno: int | None) -> None:
        super().__init__(f"a text template may not use {construct}")
        self.construct, self.lineno = construct, lineno


class TemplateTooLong(SecurityError):
    """A template body beyond :data:`MAX_BODY` characters (before it is even parsed)."""


def _check_nodes(tree: nodes.Template) -> None:
    for node in tree.find_all(nodes.Node):
        line = getattr(node, "lineno", None)
        if not isinstance(node, _NODES):
            raise NotAllowed(_CONSTRUCTS.get(type(node), type(node).__name__.lower()), line)
        # Unknown names are left to the compiler, which reports them as such (a typing error).
        if isinstance(node, nodes.Filter) and node.name not in _FILTERS and node.name in _env.filters:
            raise NotAllowed(f"|{node.name}", line)
        if isinstance(node, nodes.Test) and node.name not in _TESTS and node.name in _env.tests:
            raise NotAllowed(f"is {node.name}", line)
        if isinstance(node, nodes.Name) and node.name in _env.globals:  # lipsum, range, cycler …
            raise NotAllowed(node.name, line)


class _TextSandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus bounds on ``*`` and ``**`` (``"x" * 10**9`` would build a gigabyte
    string before the length check could refuse it); ranges are bounded by the sandbox itself."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (abs(_number(left)) > 1000 or abs(_number(right)) > 64):
            raise SecurityError("the power is too large for a text")
        if operator == "*" and (isinstance(left, str | list) or isinstance(right, str | list)):
            count = right if isinstance(left, str | list) else left
            if _number(count) * max(len(left) if isinstance(left, str | list) else len(right), 1) > MAX_TEXT * 10:
                raise SecurityError("the repetition is too long for a text")
        return super().call_binop(context, operator, left, right)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


_env = _TextSandbox(undefined=StrictUndefined, autoescape=False, trim_blocks=True)


class SmsTemplate(Base):
    """An SMS text an administrator may change; ``code`` is what the BPMN names."""

    __tablename__ = "sms_templates"

    code: Mapped[str] = mapped_column(String(60), primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime | None]
    updated_by: Mapped[str | None] = mapped_column(String(40))


def render_text(body: str, context: dict[str, Any]) -> str:
    """Render ``body``; raises ``ValueError`` with the reason when it cannot be rendered."""
    try:
        text = _compiled(body).render(**context).strip()
    except (TemplateError, OverflowError, ArithmeticError) as exc:  # the sandbox refuses with these
        raise ValueError(f"the template cannot be rendered: {exc}") from exc
    if not text:
        raise ValueError("the template renders to an empty text")
    if len(text) > MAX_TEXT:
        raise ValueError(f"the text is {len(text)} characters long; at most {MAX_TEXT}")
    return text


@lru_cache(maxsize=256)
def _compiled(body: str) -> Template:
    """``body`` parsed, checked against what a text template may say, and compiled (once per body)."""
    if len(body) > MAX_BODY:
        raise TemplateTooLong(f"the template is {len(body)} characters long; at most {MAX_BODY}")
    tree = _env.parse(body)
    _check_nodes(tree)
    return _env.from_string(tree)


def check_template(code: str, body: str) -> str | None:
    """Why ``body`` cannot be saved as template ``code`` (None when it can)."""
    problem = template_problem(code, body)
    return problem.technical if problem else None


@dataclass(frozen=True)
class TemplateProblem:
    """What is wrong with a template, for the page to say in the user's language: ``kind`` is one
    of unclosed_value ({{ without }}), bad_char (a character a value cannot have, mostly a }}
    missing before it), empty_value ({{ }}), unclosed_block ({% if %} without its
    end; ``detail`` the tag), unknown_tag, unknown_filter, unknown_value (``detail`` the name),
    unsafe, too_long (``detail`` the length), empty, syntax (anything else); ``line`` from 1."""
    kind: str
    line: int | None = None
    detail: str = ""
    technical: str = ""


_QUOTED = re.compile(r"'([^']*)'")


def template_problem(code: str, body: str) -> TemplateProblem | None:
    """What stops ``body`` from being saved as template ``code`` (None when it can be)."""
    sample = DEFAULTS.get(code, ("", "", {}))[2]
    try:
        render_text(body, sample)
    except ValueError as exc:
        return _problem(body, exc.__cause__, str(exc))
    return None


def _problem(body: str, cause: BaseException | None, technical: str) -> TemplateProblem:
    message = str(getattr(cause, "message", None) or cause or "")
    line = getattr(cause, "lineno", None)
    names = _QUOTED.findall(message)
    if isinstance(cause, TemplateAssertionError) and "filter" in message:
        return TemplateProblem("unknown_filter", line, names[0] if names else "", technical)
    if isinstance(cause, TemplateSyntaxError):
        if "end of print statement" in message and message.startswith("expected token") or message == "unexpected '}'":
            kind = "unclosed_value"
        elif message.startswith("unexpected char"):
            return TemplateProblem("bad_char", line, names[0] if names else "", technical)
        elif message.startswith("Expected an expression"):
            kind = "empty_value"
        elif "Unexpected end of template" in message and "innermost block" in message:
            return TemplateProblem("unclosed_block", line, names[-1] if names else "", technical)
        elif message.startswith("Encountered unknown tag"):
            return TemplateProblem("unknown_tag", line, names[0] if names else "", technical)
        else:
            kind = "syntax"
        return TemplateProblem(kind, line, "", technical)
    if isinstance(cause, UndefinedError):
        name = names[0] if names else ""
        found = [n for n, text in enumerate(body.splitlines(), 1) if name and name in text]
        return TemplateProblem("unknown_value", found[0] if found else None, name, technical)
    if isinstance(cause, TemplateTooLong):
        return TemplateProblem("body_too_long", None, str(len(body)), technical)
    if isinstance(cause, NotAllowed):
        return TemplateProblem("not_allowed", cause.lineno, cause.construct, technical)
    if isinstance(cause, SecurityError | OverflowError | ArithmeticError):
        return TemplateProblem("unsafe", None, "", technical)
    if "empty text" in technical:
        return TemplateProblem("empty", None, "", technical)
    if technical.startswith("the text is"):
        return TemplateProblem("too_long", None, technical.split()[3], technical)
    return TemplateProblem("syntax", line, "", technical)


def ensure_defaults(session: Session) -> None:
    """Create the shipped templates that do not exist yet (never overwrites an edit)."""
    have = set(session.scalars(select(SmsTemplate.code)))
    for code, (title, body, _sample) in DEFAULTS.items():
        if code not in have:
            session.add(SmsTemplate(code=code, title=title, body=body))


def render(session: Session, code: str, context: dict[str, Any]) -> str:
    """The text of template ``code`` for ``context`` (the shipped default if never stored)."""
    row = session.get(SmsTemplate, code)
    if row is not None:
        body = row.body
    elif code in DEFAULTS:
        body = DEFAULTS[code][1]
    else:
        raise ValueError(f"there is no SMS template '{code}'")
    return render_text(body, context)
