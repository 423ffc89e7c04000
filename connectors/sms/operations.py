"""The SMS connector's operations, as BPMN service tasks name them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.base import Call, ConnectorError, Operation, PeerAnswer, PermanentError

# (template code, context) → text; the product reads its editable templates (see templates.py).
Renderer = Callable[[str, dict[str, Any]], str]


def operations(client: Any, render: Renderer) -> list[Operation]:
    """``sms.send``: one text message to ``to`` — either ``text`` or ``template`` + ``context``."""

    def send(params: dict[str, Any], call: Call) -> dict[str, Any]:
        to = str(params.get("to") or "").strip()
        digits = to.removeprefix("+")
        if not (digits.isascii() and digits.isdigit()) or not 5 <= len(digits) <= 20:
            raise PermanentError(f"'{to}' is not a phone number")
        if params.get("text"):
            text = str(params["text"])
        elif params.get("template"):
            try:
                text = render(str(params["template"]), dict(params.get("context") or {}))
            except ValueError as exc:
                raise PermanentError(f"SMS template '{params['template']}': {exc}") from exc
        else:
            raise PermanentError("sms.send needs 'text' or 'template'")
        noted = call.accepted
        sent = client.submit(to, text, source=params.get("source") or None, tag=call.key,
                             on_accepted=None if noted is None else (lambda mid: noted("smpp", [mid])),
                             before_send=call.handing_over)
        return {"to": to, "text": text, "parts": sent.parts, "message_ids": list(sent.message_ids),
                "peer_refs": {"kind": "smpp", "ids": list(sent.message_ids)}}

    def query(params: dict[str, Any], ids: list[str], reused: frozenset[str] = frozenset()) -> PeerAnswer:
        """query_sm for each id the SMSC gave: it has the text when it knows every part. An id the
        SMSC has given a later text since (it restarted) is not asked: the answer would be that text's."""
        if not ids:
            # The SMSC may have taken the text and answered after the worker died: without its id
            # nobody can tell (SMPP has no query by content), so this never reads as "not sent".
            return PeerAnswer(None, "短信中心在中断前没有返回短信编号，无法向短信中心查询：这条短信可能已经发出，"
                                    "也可能没有。请先向客户核实是否收到；确认未收到再重试（重试会再发一条）。")
        if reused:
            return PeerAnswer(None, f"短信中心重启过，编号 {'、'.join(sorted(reused))} 已分配给之后的另一条短信："
                                    "查询结果会是那条短信的，无法据此确认。请向客户核实：未收到则重试。")
        try:
            answers = [client.query(mid, source=params.get("source") or None) for mid in ids]
        except ConnectorError as exc:
            return PeerAnswer(None, f"暂时无法查询短信中心：{exc}")
        missing = [a.message_id for a in answers if not a.found]
        if missing:
            return PeerAnswer(False, f"短信中心没有编号为 {'、'.join(missing)} 的短信：这条短信没有完整发出，"
                                     "可以重试。")
        states = "、".join(f"{a.message_id}（{_STATE_ZH.get(a.state, a.state)}）" for a in answers)
        return PeerAnswer(True, f"短信中心已收到这条短信：{states}。不要重试，确认已发送即可。",
                          {"to": params.get("to"), "parts": len(ids), "message_ids": list(ids),
                           "peer_refs": {"kind": "smpp", "ids": list(ids)}, "confirmed": True})

    return [Operation("sms.send", "发送短信", send, required=("to",), optional=("text", "template", "context",
                                                                          "source"),
                      description="通过短信中心（SMPP）发送一条短信；长短信自动拆分。", query=query,
                      marks_handover=True)]


_STATE_ZH = {"ENROUTE": "发送中", "DELIVERED": "已送达", "EXPIRED": "已过期", "DELETED": "已删除",
             "UNDELIVERABLE": "无法送达", "ACCEPTED": "已接受", "UNKNOWN": "状态未知", "REJECTED": "已拒绝"}
