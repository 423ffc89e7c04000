"""Operations the product itself offers to BPMN service tasks (not a peer's): the calling window of
callbacks, the dialling agent, the record of each attempt, a return visit's result, and starting a
callback from another case. Registered beside the connectors' operations by ``build_registry``;
the implementations live in ``web.callbacks``."""

from __future__ import annotations

from functools import partial

from flask import Flask

from connectors.base import INLINE, OUTBOX, Operation

from . import callbacks


def operations(app: Flask) -> list[Operation]:
    """The product's own operations."""
    return [
        Operation(
            "callback.window", "外呼时段检查", partial(callbacks.op_window, app), optional=("priority",),
            mode=INLINE,
            description="Whether customers may be called now (KEFU_CALLBACK_HOURS, Beijing time): "
                        "{open, opens_at (ISO instant, for a timeDate timer), dial_due (the dialling "
                        "task's deadline by priority: 10 min from priority 5 / VIP, else 30 min)}."),
        Operation(
            "callback.plan", "查询客户等级与优先级", partial(callbacks.op_plan, app), required=("phone",),
            optional=("priority",), mode=INLINE,
            description="The customer's level from billing and the callback's priority: {vip, level, "
                        "priority (at least 5 for a VIP), note}. Billing down: not VIP, note says why."),
        Operation(
            "callback.agent", "确定外呼坐席", callbacks.op_agent, optional=("task",), mode=INLINE,
            description="The agent who completed the task 'task' (default dial) of this case in this "
                        "step: {user_id, username, name, extension}; refused when they have no extension."),
        Operation(
            "callback.attempt", "记录外呼结果", callbacks.op_attempt, required=("call", "attempt", "phone"),
            optional=("dialer", "kind", "title", "max_attempts"), mode=INLINE,
            description="Records one attempt (a calls row, a history line) and pops the case on the "
                        "agent's screen when answered: {outcome, attempt, call_id}."),
        Operation(
            "callback.visit_result", "回访结果记入投诉", callbacks.op_visit_result,
            required=("origin_id", "satisfaction"), optional=("comment", "agent"), mode=INLINE,
            description="Writes a return visit's satisfaction on the history of the case it visits."),
        Operation(
            "callback.request", "发起回访/回叫", partial(callbacks.op_request, app), required=("phone",),
            optional=("kind", "reason", "priority"), idempotent=True, mode=OUTBOX,
            description="Starts an outbound_callback case for this case (kind return_visit by default): "
                        "{instance_id, reference, created}; a repeated run finds the case it started."),
    ]
