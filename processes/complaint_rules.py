"""The complaint loop's own operations: the dispatch check and the return visit's result.

``complaint.check_dispatch`` (inline) refuses a dispatch whose department deadlines are already
past, or whose first-reply deadline falls after the final one, and ``complaint.check_pass_on``
a pass-on to the department that has the order, each as a validation error on the field (the
step is refused and nothing of it is written). ``complaint.return_visit`` (outbox, its
own unit of work) brings a return visit's satisfaction into the complaint that waits for it
(message ``return_visit``, delivered to that case by id): 不满意 reopens the case, back to the
handling department. Imports engine and connectors.base only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import INLINE, OUTBOX, Call, Operation, PermanentError, TransientError
from engine import outbox
from engine.clock import parse_instant
from engine.errors import Conflict, ValidationFailed
from engine.messages import MessageWait
from engine.models import RUNNING, ProcessInstance
from engine.runtime import Engine
from engine.unit_of_work import Sessions

VISIT_MESSAGE = "return_visit"
SATISFACTIONS = ("satisfied", "basic", "unsatisfied")


def operations(sessions: Sessions, engine: Callable[[], Engine]) -> list[Operation]:
    return [
        Operation("complaint.check_dispatch", "核对派单时限", op_check_dispatch,
                  optional=("first_reply_due", "final_reply_due", "received_from"), mode=INLINE,
                  description="Refuses a dispatch whose first_reply_due / final_reply_due is past, or whose "
                              "first-reply deadline is after the final one (422 on that field): {checked}."),
        Operation("complaint.check_pass_on", "核对下一责任部门", op_check_pass_on,
                  required=("department", "next_department"), mode=INLINE,
                  description="Refuses passing a work order on to the department that has it (422 on "
                              "next_department): {checked}."),
        Operation("complaint.return_visit", "回访结果送回投诉", partial(op_return_visit, sessions, engine),
                  required=("origin_id", "satisfaction"), optional=("comment", "callback_reference"),
                  idempotent=True, mode=OUTBOX,
                  description="Delivers a return visit's satisfaction to the complaint waiting for it "
                              "(不满意 reopens it): {delivered}."),
    ]


def _refuse(field: str, code: str, message: str) -> ValidationFailed:
    exc = ValidationFailed(message, {field: message})
    exc.codes = {field: {"code": code, "params": {}}}  # type: ignore[attr-defined]
    return exc


def op_check_dispatch(params: dict[str, Any], call: Call) -> dict[str, Any]:
    """``complaint.check_dispatch``: the department deadlines of a dispatch lie ahead, in order. A
    complaint received from a partner province (``received_from``) carries the partner's deadlines,
    which the agent did not set: they are not checked."""
    if params.get("received_from"):
        return {"checked": False}
    due = {name: parse_instant(params.get(name)) for name in ("first_reply_due", "final_reply_due")}
    for name, instant in due.items():
        if instant is not None and instant <= call.now:
            raise _refuse(name, "deadline_past", f"{name} is already past: give a time still ahead")
    first, final = due["first_reply_due"], due["final_reply_due"]
    if first is not None and final is not None and first > final:
        raise _refuse("first_reply_due", "deadline_order",
                      "the first-reply deadline must not be later than the final-reply deadline")
    return {"checked": True}


def op_check_pass_on(params: dict[str, Any], call: Call) -> dict[str, Any]:
    """``complaint.check_pass_on``: the next department is another one."""
    if str(params.get("next_department") or "") == str(params.get("department") or ""):
        raise _refuse("next_department", "same_department",
                      "the work order is already with this department: choose another one")
    return {"checked": True}


def queue_return_visit(session: Session, origin: ProcessInstance, *, satisfaction: str, comment: str,
                       callback_id: int | None, callback_reference: str, now: datetime) -> None:
    """Written with the return visit's step: the job that brings its result into the complaint
    (the outbox makes it durable and retried; the job's key makes it once per visit)."""
    if origin.process_key != "complaint" or satisfaction not in SATISFACTIONS:
        return
    outbox.enqueue(session, "complaint.return_visit",
                   {"origin_id": origin.id, "satisfaction": satisfaction, "comment": comment,
                    "callback_reference": callback_reference},
                   key=f"kefu-visit-{callback_id}-{origin.id}", now=now, instance_id=origin.id)


def waits_for_visit(session: Session, origin: ProcessInstance) -> bool:
    """Whether this very complaint waits for its return visit's result (the message index, by
    case: another complaint of the same customer may wait too)."""
    return origin.status == RUNNING and session.scalar(select(MessageWait.id).where(
        MessageWait.instance_id == origin.id, MessageWait.name == VISIT_MESSAGE).limit(1)) is not None


def op_return_visit(sessions: Sessions, engine: Callable[[], Engine], params: dict[str, Any],
                    call: Call) -> dict[str, Any]:
    """``complaint.return_visit`` (outbox): deliver the visit's result to the complaint if it still
    waits for it (a complaint that timed out meanwhile, or a repeated job, finds nothing to do)."""
    with sessions() as session:
        origin = session.get(ProcessInstance, int(params["origin_id"]))
        if origin is None or not origin.reference:
            raise PermanentError("the return visit names no complaint")
        if not waits_for_visit(session, origin):
            return {"delivered": False}
        payload = {"satisfaction": str(params.get("satisfaction") or ""),
                   "comment": str(params.get("comment") or "")[:500],
                   "callback_reference": str(params.get("callback_reference") or "")}
        try:
            engine().deliver_message(session, origin.id, VISIT_MESSAGE, payload, call.now)
            session.commit()
        except Conflict as exc:  # another step moved the case meanwhile: try again later
            session.rollback()
            raise TransientError(f"the complaint is busy: {exc.message}") from exc
        return {"delivered": True}
