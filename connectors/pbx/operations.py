"""The PBX connector's operations for BPMN service tasks: ``pbx.originate`` (outbound call, the
agent's phone first, then the customer) and ``pbx.announce`` (the same Originate, the customer first,
answered by an IVR announcement, e.g. the dunning notice). Imports nothing from Flask or the engine."""

from __future__ import annotations

import re
from typing import Any

from connectors.base import OUTBOX, Call, Operation, PermanentError
from connectors.pbx.ami import AmiClient

_EXTENSION = re.compile(r"^\d{2,8}\Z", re.ASCII)
_PHONE = re.compile(r"^\+?\d{3,20}\Z", re.ASCII)
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")
_ANNOUNCEMENT = re.compile(r"^[A-Za-z0-9_+*#-]{1,40}\Z")
_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}\Z")
DEFAULT_IVR_CONTEXT = "kefu-ivr"


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


def _variables(value: Any) -> dict[str, str]:
    """Channel variables for the IVR (``{"KEFU_AMOUNT": "123.45"}``): upper-case names, one-line values."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise PermanentError("variables must be an object of channel variable names to values")
    out: dict[str, str] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or not _VARIABLE.match(name):
            raise PermanentError(f"channel variable name {str(name)[:40]!r} must be upper-case letters, digits, _")
        out[name] = _text(raw, name) or ""
    return out


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
        return _attempt(result, call)

    def announce(params: dict[str, Any], call: Call) -> dict[str, Any]:
        phone = _phone(params.get("phone"))
        announcement = str(params.get("announcement") or "").strip()
        if not _ANNOUNCEMENT.match(announcement):
            raise PermanentError("announcement must be 1 to 40 letters, digits or _ + * # -")
        context = _text(params.get("context"), "context") or DEFAULT_IVR_CONTEXT
        # The customer's leg is dialled through the outbound context; once answered, the call
        # enters the announcement extension of the IVR context, which plays the notice.
        result = client.originate(
            f"Local/{phone}@{client.config.context}",
            announcement,
            context,
            caller_id=_text(params.get("caller_id"), "caller_id"),
            variables={**_variables(params.get("variables")), "KEFU_JOB_ID": call.job_id,
                       "KEFU_ATTEMPT": call.attempt},
            timeout_ms=timeout_ms,
        )
        return _attempt(result, call)

    return [
        Operation(
            name="pbx.announce",
            title="语音通知：呼叫客户并播放录音（IVR）",
            run=announce,
            required=("phone", "announcement"),
            optional=("context", "caller_id", "variables"),
            idempotent=False,
            mode=OUTBOX,
            description=(
                "Dials the customer (Local/<phone>@<the AMI URL's context>); when answered, the call "
                "enters extension 'announcement' of 'context' (default kefu-ivr), which plays the "
                "recording; 'variables' become channel variables (e.g. the amount to read out). Returns "
                "outcome answered | busy | no_answer | congested | failed, reason, uniqueid, channel, "
                "attempt_at, as pbx.originate."
            ),
        ),
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


def _attempt(result: Any, call: Call) -> dict[str, Any]:
    """What one dialling attempt gives the case (the same for agent calls and announcements)."""
    return {"outcome": result.outcome, "reason": result.reason, "uniqueid": result.uniqueid,
            "channel": result.channel, "attempt_at": call.now.isoformat()}
