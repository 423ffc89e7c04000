"""The PBX connector's operations for BPMN service tasks: ``pbx.originate`` (outbound call, the
agent's phone first, then the customer). Imports nothing from Flask or the engine."""

from __future__ import annotations

import re
from typing import Any

from connectors.base import OUTBOX, Call, Operation, PermanentError
from connectors.pbx.ami import AmiClient

_EXTENSION = re.compile(r"^\d{2,8}$")
_PHONE = re.compile(r"^\+?\d{3,20}$")
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")


def _extension(value: Any) -> str:
    text = str(value or "").strip()
    if not _EXTENSION.match(text):
        raise PermanentError(f"agent_extension must be 2 to 8 digits (got {text[:12]!r})")
    return text


def _phone(value: Any) -> str:
    text = _PHONE_SEPARATORS.sub("", str(value or ""))
    if not _PHONE.match(text):
        raise PermanentError("phone must be 3 to 20 digits, optionally with a leading +")
    return text


def _text(value: Any, name: str) -> str | None:
    text = str(value).strip() if value not in (None, "") else ""
    if any(c in text for c in "\r\n"):
        raise PermanentError(f"{name} must be a single line")
    return text or None


def operations(client: AmiClient, *, timeout_ms: int = 30000) -> list[Operation]:
    """The PBX operations, dialling through ``client``; the default context and the agent channel
    form come from the client's ``AmiConfig`` (``?context=…&agent_channel=…`` in the AMI URL)."""

    def originate(params: dict[str, Any], call: Call) -> dict[str, Any]:
        extension = _extension(params.get("agent_extension"))
        phone = _phone(params.get("phone"))
        context = _text(params.get("context"), "context") or client.config.context
        result = client.originate(
            client.config.agent_channel_for(extension),
            phone,
            context,
            caller_id=_text(params.get("caller_id"), "caller_id"),
            variables={"KEFU_JOB_ID": call.job_id, "KEFU_ATTEMPT": call.attempt},
            timeout_ms=timeout_ms,
        )
        return {
            "outcome": result.outcome,
            "reason": result.reason,
            "uniqueid": result.uniqueid,
            "channel": result.channel,
            "attempt_at": call.now.isoformat(),
        }

    return [
        Operation(
            name="pbx.originate",
            title="外呼：先振铃坐席分机，再呼叫客户",
            run=originate,
            required=("agent_extension", "phone"),
            optional=("context", "caller_id"),
            idempotent=False,
            mode=OUTBOX,
            description=(
                "Rings the agent's extension; when the agent answers, the PBX dials the customer. "
                "Returns outcome answered | busy | no_answer | congested | failed (the diagram decides "
                "on retries or an SMS fallback), reason, uniqueid, channel, attempt_at. A transient "
                "error after the call was queued means it may have been placed."
            ),
        )
    ]
