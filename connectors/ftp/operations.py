"""The file-exchange operations BPMN service tasks can name (``ftp.*``), over one ``FtpExchangeClient``.

``ftp.upload`` sends a file; ``ftp.check_ack`` then waits (``NotReady``, asked again by the outbox
without counting attempts) until the receiver's success mark appears. The time limit for that mark
belongs to the diagram (a boundary timer that uploads again, then raises an incident), not here.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import Any

from connectors.base import OUTBOX, Call, NotReady, Operation, PermanentError

from .client import FtpExchangeClient, check_name

DEFAULT_POLL_DELAY = timedelta(seconds=30)
MAX_COLLECT_BYTES = 8 * 1024 * 1024  # one exchange file travels in a job result (JSON)


def _content(params: dict[str, Any]) -> bytes:
    """The file's bytes from ``content`` (text, sent as UTF-8) or ``content_b64`` — exactly one."""
    text, encoded = params.get("content"), params.get("content_b64")
    if (text is None) == (encoded is None):
        raise PermanentError("ftp.upload needs exactly one of 'content' (text) or 'content_b64'")
    if text is not None:
        if not isinstance(text, str):
            raise PermanentError(f"parameter 'content' must be text, not {type(text).__name__}")
        return text.encode("utf-8")
    if not isinstance(encoded, str):
        raise PermanentError(f"parameter 'content_b64' must be base64 text, not {type(encoded).__name__}")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PermanentError(f"parameter 'content_b64' is not valid base64: {exc}") from exc


def _name(params: dict[str, Any]) -> str:
    name = params.get("name")
    if not isinstance(name, str):
        raise PermanentError("parameter 'name' must be a file name")
    return check_name(name)


def operations(client: FtpExchangeClient, poll_delay: timedelta = DEFAULT_POLL_DELAY) -> list[Operation]:
    """The operations of the FTP connector, bound to ``client``; ``poll_delay`` spaces the checks
    for a success mark."""

    def upload(params: dict[str, Any], call: Call) -> dict[str, Any]:
        name = _name(params)
        sent = client.upload(name, _content(params))
        return {**sent, "peer_refs": {"kind": "ftp", "ids": [name]}}

    def check_ack(params: dict[str, Any], call: Call) -> dict[str, Any]:
        name = _name(params)
        if not client.acknowledged(name):
            raise NotReady(poll_delay, f"no success mark {name}.ok on the FTP server yet")
        return {"name": name, "acknowledged": True}

    def collect(params: dict[str, Any], call: Call) -> dict[str, Any]:
        limit = int(params.get("limit") or 20)
        files = []
        for name in client.list_incoming()[:limit]:
            data = client.download(name)
            if len(data) > MAX_COLLECT_BYTES:
                files.append({"name": name, "size": len(data), "error": "too large"})
                continue
            files.append({"name": name, "size": len(data), "content_b64": base64.b64encode(data).decode()})
        return {"files": files}

    def acknowledge(params: dict[str, Any], call: Call) -> dict[str, Any]:
        name = _name(params)
        client.acknowledge(name)
        return {"name": name, "acknowledged": True}

    return [
        Operation("ftp.collect", "收取交换文件", collect, optional=("limit",), idempotent=True, mode=OUTBOX,
                  description="Downloads the files offered in the inbox folder (marked NAME.sent, not yet "
                              "NAME.ok): {files: [{name, size, content_b64}]}. Nothing is acknowledged: "
                              "record them first, then ftp.acknowledge each."),
        Operation("ftp.acknowledge", "确认收到文件", acknowledge, required=("name",), idempotent=True,
                  mode=OUTBOX, description="Writes the success mark NAME.ok for a received file."),
        Operation("ftp.upload", "上传交换文件", upload, required=("name",), optional=("content", "content_b64"),
                  idempotent=True, mode=OUTBOX,
                  description="Uploads one file to the exchange folder (as NAME.part, renamed to NAME, then "
                              "the sent mark NAME.sent): {name, size, sha256}. Give 'content' (text, sent "
                              "as UTF-8) or 'content_b64'. The same name again replaces the file."),
        Operation("ftp.check_ack", "等待对方确认接收", check_ack, required=("name",), idempotent=True,
                  mode=OUTBOX,
                  description="Waits until the receiver wrote the success mark NAME.ok: {name, acknowledged}. "
                              "Put a timer on the task for the time limit."),
    ]
