"""The SMS connector's operations, as BPMN service tasks name them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.base import Call, Operation, PermanentError

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
        sent = client.submit(to, text, source=params.get("source") or None, tag=call.key)
        return {"to": to, "text": text, "parts": sent.parts, "message_ids": list(sent.message_ids),
                "peer_refs": {"kind": "smpp", "ids": list(sent.message_ids)}}

    return [Operation("sms.send", "发送短信", send, required=("to",), optional=("text", "template", "context",
                                                                          "source"),
                      description="通过短信中心（SMPP）发送一条短信；长短信自动拆分。")]
