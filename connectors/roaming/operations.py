"""The roaming exchange's operations (outbox jobs queued by ``processes.roaming``):
``roaming.dispatch`` sends an electronic dispatch (电子派单), ``roaming.receipt`` an electronic
receipt (电子回单). Both are idempotent: the receiver deduplicates by (company code, serial
number), so a job interrupted mid-call is simply sent again."""

from __future__ import annotations

from typing import Any

from connectors.base import OUTBOX, Call, Operation, PermanentError

from .client import DISPATCH_PATH, RECEIPT_PATH, RoamingClient


def operations(client: RoamingClient) -> list[Operation]:
    """The two operations, over ``client``."""

    def send(path: str, serial_field: str) -> Any:
        def run(params: dict[str, Any], call: Call) -> dict[str, Any]:
            body = params.get("body")
            if not isinstance(body, dict) or not body.get(serial_field):
                raise PermanentError(f"parameter 'body' must be an object with '{serial_field}'")
            answer = client.post(str(params.get("partner") or ""), path, body)
            return {"ack": "ok", "serial_no": answer.get("serial_no", body[serial_field]),
                    "partner": params.get("partner")}

        return run

    return [
        Operation("roaming.dispatch", "漫游投诉：电子派单", send(DISPATCH_PATH, "serial_no"),
                  required=("partner", "body"), idempotent=True, mode=OUTBOX,
                  description="Posts a signed electronic dispatch (13 fields) to the partner homing the "
                              "number; done on the partner's success mark."),
        Operation("roaming.receipt", "漫游投诉：电子回单", send(RECEIPT_PATH, "dispatch_serial_no"),
                  required=("partner", "body"), idempotent=True, mode=OUTBOX,
                  description="Posts a signed electronic receipt (7 fields) back to the dispatching "
                              "partner; done on its success mark."),
    ]
