"""Turn AMI channel events into what the product needs: "agent 8001 is ringing with a call from
13800138000" (the screen pop) and, at hang-up, one call record per call.

A call is the group of channels sharing a ``Linkedid`` (the Uniqueid of its oldest channel). It is
*inbound* when that oldest channel is not an agent's phone (a trunk); an agent channel created
later in the group is a dial leg ringing that agent. Feed it with ``AmiClient(on_event=tracker.feed)``;
callbacks run on the client's reader thread, so they must be quick. Imports nothing from Flask or
the engine.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger("kefu.pbx")

# PJSIP/8001-00000012, SIP/8001-0000abcd, IAX2/8001-3, Local/8001@agents-00000003;1
_AGENT_CHANNEL = re.compile(r"^(?:PJSIP|SIP|IAX2|Local)/(\d{2,8})(?:@[^/;]+?)?-[0-9A-Fa-f]+(?:;\d)?$", re.ASCII)
_UNKNOWN = {"", "<unknown>", "<null>"}
RINGING, UP = "5", "6"
# MixMonitor sets MIXMONITOR_FILENAME; a dialplan may name its recording in KEFU_RECORDING.
RECORDING_VARIABLES = {"MIXMONITOR_FILENAME", "KEFU_RECORDING"}


def extension_of(channel: str) -> str | None:
    """The agent extension a channel name rings (``PJSIP/8001-00000012`` → ``8001``), else None."""
    match = _AGENT_CHANNEL.match(channel or "")
    return match.group(1) if match else None


def _known(value: str | None) -> str:
    return "" if value is None or value in _UNKNOWN else value


@dataclass
class CallRecord:
    """One finished call. ``caller``/``called`` are numbers as the PBX saw them; ``extension`` is
    the agent's (for inbound, the one who answered, else the last one rung)."""

    call_id: str                    # the Linkedid
    direction: str                  # inbound | outbound
    caller: str = ""
    called: str = ""
    extension: str = ""
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    cause: int | None = None
    cause_txt: str = ""
    recording_ref: str = ""         # the recording file, when the dialplan records (MixMonitor)

    @property
    def customer_number(self) -> str:
        """The outside party: the caller of an inbound call, the called number of an outbound one."""
        return self.caller if self.direction == "inbound" else self.called

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: times as ISO 8601 strings."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass
class _Call:
    record: CallRecord
    open_channels: set[str] = field(default_factory=set)
    origin_channel: str = ""
    rung: set[str] = field(default_factory=set)


class CallTracker:
    """Consumes AMI events (``feed``) and reports inbound ringing and finished calls."""

    def __init__(
        self,
        on_inbound_ringing: Callable[[str, str, str], None] | None = None,
        on_call_ended: Callable[[CallRecord], None] | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_age: timedelta = timedelta(hours=6),
    ) -> None:
        self.on_inbound_ringing = on_inbound_ringing
        self.on_call_ended = on_call_ended
        self.clock = clock
        self.max_age = max_age  # a call whose Hangup was lost (link drop) is forgotten after this
        self._calls: dict[str, _Call] = {}
        self._lock = threading.Lock()

    def active_calls(self) -> list[CallRecord]:
        """The calls not yet hung up (copies)."""
        with self._lock:
            return [replace(call.record) for call in self._calls.values()]

    def feed(self, event: dict[str, str]) -> None:
        """Take one AMI event (keys lower-cased, as ``AmiClient`` delivers them); others are ignored."""
        name = event.get("event", "").lower()
        handler = _HANDLERS.get(name)
        if handler is None or not event.get("uniqueid"):
            return
        now = self.clock()
        notices: list[Callable[[], None]] = []
        with self._lock:
            handler(self, event, now, notices)
        for notice in notices:  # outside the lock: a callback may ask the tracker questions
            try:
                notice()
            except Exception:
                log.exception("call tracker callback failed")

    # Each handler runs under the lock and queues callbacks in ``notices``.
    def _call_for(self, event: dict[str, str], now: datetime) -> _Call:
        linkedid = event.get("linkedid") or event["uniqueid"]
        call = self._calls.get(linkedid)
        if call is None:
            self._forget_stale(now)
            call = self._calls[linkedid] = _Call(CallRecord(call_id=linkedid, direction="inbound",
                                                            started_at=now))
        return call

    def _on_newchannel(self, event: dict[str, str], now: datetime, notices: list) -> None:
        call = self._call_for(event, now)
        uniqueid, channel = event["uniqueid"], event.get("channel", "")
        call.open_channels.add(uniqueid)
        if uniqueid == call.record.call_id:  # the oldest channel says who started the call
            call.origin_channel = uniqueid
            agent = extension_of(channel)
            if agent:
                call.record.direction, call.record.caller = "outbound", agent
                call.record.extension = agent
            else:
                call.record.caller = _known(event.get("calleridnum"))
                call.record.called = _known(event.get("exten")) if event.get("exten") != "s" else ""
        self._on_state(event, now, notices)

    def _on_newstate(self, event: dict[str, str], now: datetime, notices: list) -> None:
        call = self._call_for(event, now)
        call.open_channels.add(event["uniqueid"])
        self._on_state(event, now, notices)

    def _on_state(self, event: dict[str, str], now: datetime, notices: list) -> None:
        call = self._calls[event.get("linkedid") or event["uniqueid"]]
        record, state = call.record, event.get("channelstate", "")
        agent = extension_of(event.get("channel", ""))
        is_origin = event["uniqueid"] == record.call_id
        if record.direction == "inbound" and agent and not is_origin:
            if state == RINGING and agent not in call.rung:
                call.rung.add(agent)
                record.extension = record.extension if record.answered_at else agent
                caller = record.caller or _known(event.get("connectedlinenum"))
                if not record.caller:
                    record.caller = caller
                if self.on_inbound_ringing is not None:
                    callback = self.on_inbound_ringing
                    notices.append(lambda: callback(caller, agent, record.call_id))
            elif state == UP and record.answered_at is None:
                record.answered_at, record.extension = now, agent
        elif record.direction == "outbound" and not is_origin and state == UP and record.answered_at is None:
            record.answered_at = now  # the customer's leg answered
            record.called = record.called or _known(event.get("calleridnum"))

    def _on_dialbegin(self, event: dict[str, str], now: datetime, notices: list) -> None:
        call = self._call_for(event, now)
        if call.record.direction == "outbound" and not call.record.called:
            call.record.called = _known(event.get("destcalleridnum")) or event.get("dialstring", "")

    def _on_newexten(self, event: dict[str, str], now: datetime, notices: list) -> None:
        call = self._call_for(event, now)
        exten = event.get("exten", "")
        if (call.record.direction == "outbound" and event["uniqueid"] == call.record.call_id
                and not call.record.called and exten not in ("", "s")):
            call.record.called = exten  # the originated agent leg entered the customer's number

    def _on_varset(self, event: dict[str, str], now: datetime, notices: list) -> None:
        call = self._calls.get(event.get("linkedid") or event["uniqueid"])
        if call is not None and event.get("variable", "").upper() in RECORDING_VARIABLES and event.get("value"):
            call.record.recording_ref = event["value"]

    def _on_hangup(self, event: dict[str, str], now: datetime, notices: list) -> None:
        call = self._calls.get(event.get("linkedid") or event["uniqueid"])
        if call is None:  # a call that started before we listened: nothing worth recording
            return
        record = call.record
        call.open_channels.discard(event["uniqueid"])
        cause = event.get("cause", "")
        # The outside party's cause tells why the call ended; fall back to the first one seen.
        if cause.isdigit() and (record.cause is None or not extension_of(event.get("channel", ""))):
            record.cause, record.cause_txt = int(cause), event.get("cause-txt", "")
        if call.open_channels:
            return
        record.ended_at = now
        del self._calls[record.call_id]
        if self.on_call_ended is not None:
            callback = self.on_call_ended
            notices.append(lambda: callback(record))

    def _forget_stale(self, now: datetime) -> None:
        stale = [key for key, call in self._calls.items()
                 if call.record.started_at and now - call.record.started_at > self.max_age]
        for key in stale:
            del self._calls[key]


_HANDLERS: dict[str, Callable[..., None]] = {
    "newchannel": CallTracker._on_newchannel,
    "newstate": CallTracker._on_newstate,
    "dialbegin": CallTracker._on_dialbegin,
    "newexten": CallTracker._on_newexten,
    "hangup": CallTracker._on_hangup,
    "varset": CallTracker._on_varset,
}
