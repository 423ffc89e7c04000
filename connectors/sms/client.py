"""SMPP 3.4 transceiver client for the SMS centre: one bind shared by every sending thread.

``submit()`` is blocking and thread-safe. Callers are pipelined on the one bind within a window of
outstanding submit_sm and an even messages-per-second pace; ESME_RTHROTTLED is absorbed by resending
after a capped exponential backoff. A reader thread matches submit_sm_resp to callers by sequence
number, answers the SMSC, sends enquire_link as keep-alive and re-binds with backoff after the link
drops; a callback thread hands receipts and MO messages to the application, then acknowledges them.
smpplib supplies the PDU codec and the socket; this module adds the locking it lacks (its send_pdu
and sequence numbers are not thread-safe).

Delivery is at least once for parts in doubt: a part whose submit_sm was sent but not answered when
the link dropped (or within ``timeout``) raises ``TransientError`` and the caller's retry sends it
again — SMPP has no deduplication. Parts still waiting for the link or a window slot, or whose write
failed (so the SMSC never had the whole PDU), simply go after the re-bind; no wait exceeds ``timeout``.
A retried multi-part message is sent whole again (with a new concatenation reference).

A bind refused for its credentials (ESME_RINVPASWD, ESME_RINVSYSID, ESME_RINVSYSTYP) raises
``PermanentError`` — from ``connect()``, the first ``submit()``, and every submit while re-binds are
refused so; the reader keeps re-binding (backoff up to 30 s) in case the account is fixed. Other
refusals and network failures raise ``TransientError``.

Error statuses of submit_sm_resp that say the message itself is wrong (bad address, length, esm_class,
optional parameters, ESME_RX_P/R_APPN) raise ``PermanentError``; every other status — system error,
queue full, vendor codes — raises ``TransientError``, so the outbox retries and its attempt limit
ends it. Imports neither Flask nor the engine.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import select
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

from smpplib import consts, smpp
from smpplib import exceptions as smpp_errors
from smpplib.client import Client

from connectors.base import ConnectorError, PermanentError, TransientError
from connectors.sms.config import SmppConfig
from connectors.sms.text import (
    Reassembly,
    decode_text,
    encode_message,
    mask_number,
    parse_receipt,
    receipt_state,
    receipt_submit_time,
    split_udh,
)

log = logging.getLogger("kefu.sms")

ReceiptHandler = Callable[[str, str, dict[str, Any]], None]   # (message_id, state, raw fields)
MoHandler = Callable[[str, str, str], None]                   # (source, destination, text)

_STATUS_NAMES = {value: name.removeprefix("SMPP_") for name, value in vars(consts).items()
                 if name.startswith("SMPP_ESME_")}
# Bind refusals the same credentials cannot cure. ESME_RBINDFAIL is not one: SMSCs also give it when
# the account's sessions are used up, e.g. while the old session of a dropped link is not yet cleared.
_BIND_PERMANENT = frozenset({consts.SMPP_ESME_RINVPASWD, consts.SMPP_ESME_RINVSYSID,
                             consts.SMPP_ESME_RINVSYSTYP})
_SUBMIT_PERMANENT = frozenset({getattr(consts, f"SMPP_ESME_{name}") for name in (
    "RINVMSGLEN", "RINVCMDLEN", "RINVPRTFLG", "RINVREGDLVFLG", "RINVSRCADR", "RINVDSTADR", "RINVSERTYP",
    "RINVESMCLASS", "RINVSRCTON", "RINVSRCNPI", "RINVDSTTON", "RINVDSTNPI", "RINVSCHED", "RINVEXPIRY",
    "RINVDFTMSGID", "RX_P_APPN", "RX_R_APPN", "RINVOPTPARSTREAM", "ROPTPARNOTALLWD", "RINVPARLEN",
    "RMISSINGOPTPARAM", "RINVOPTPARAMVAL")})
_RECEIPT_TYPES = (0x04, 0x20)          # esm_class message type: SMSC receipt, intermediate notification
_THROTTLE_FIRST, _THROTTLE_MAX = 0.05, 2.0
_REBIND_FIRST, _REBIND_MAX, _STABLE = 0.1, 30.0, 10.0
_UNBIND_WAIT = 2.0
_TAGS_KEPT = 200_000                 # receipts usually come within minutes; a day's texts at most
_NUMBER = re.compile(r"\+?[0-9]{1,20}")


def describe_status(status: int) -> str:
    """``ESME_RINVPASWD (invalid password)`` — the name operators search for, and what it means."""
    name = _STATUS_NAMES.get(status)
    if name is None:
        return f"0x{status:08X} (a status SMPP 3.4 does not define)"
    meaning = consts.DESCRIPTIONS.get(status, "")
    return f"{name} ({meaning.lower()})" if meaning and not meaning.startswith("<") else name


# query_sm_resp message_state (SMPP 3.4, 5.2.28)
MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVERED", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIVERABLE",
                  6: "ACCEPTED", 7: "UNKNOWN", 8: "REJECTED"}
_NOT_FOUND = frozenset({consts.SMPP_ESME_RQUERYFAIL, consts.SMPP_ESME_RINVMSGID})


@dataclass(frozen=True)
class QueryResult:
    """The SMSC's answer to query_sm: ``found`` False when it has no such message."""

    message_id: str
    found: bool
    state: str = ""
    final_date: str = ""
    error_code: int = 0


@dataclass(frozen=True)
class SubmitResult:
    """The SMSC accepted the message: one message_id per part (receipts name these ids)."""

    message_ids: list[str]
    parts: int


class _Waiter:
    """One submit_sm in flight; the reader thread fills it in and sets ``done``."""

    __slots__ = ("done", "error", "message_id", "response", "status", "tag")

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag  # the caller's name for this submit, given back with its receipt
        self.response: Any = None  # the whole response PDU (query_sm_resp)
        self.done = threading.Event()
        self.status = consts.SMPP_ESME_RUNKNOWNERR
        self.message_id = ""
        self.error: TransientError | None = None


class _Sequence:
    """Sequence numbers for smpplib, safe across threads (its own generator is a bare counter)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    @property
    def sequence(self) -> int:
        return self._value

    def next_sequence(self) -> int:
        with self._lock:
            self._value = self._value % 0x7FFFFFFF + 1
            return self._value


class _Pace:
    """A token bucket holding one token: sends evenly spaced at ``mps`` per second (0 = no limit).
    SMSCs count per second and answer bursts with ESME_RTHROTTLED."""

    def __init__(self, mps: float) -> None:
        self._interval = 1.0 / mps if mps > 0 else 0.0
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:  # reserve a time slot, then sleep outside the lock
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self._interval
        if at > now:
            time.sleep(at - now)


class SmppClient:
    """A transceiver bind to the SMSC shared by many threads; see the module docstring.

    ``on_receipt(message_id, state, raw)`` and ``on_mo(source, destination, text)`` run on the
    client's callback thread (they may call ``submit``); their exceptions are logged, not raised.
    """

    def __init__(self, config: SmppConfig, on_receipt: ReceiptHandler | None = None,
                 on_mo: MoHandler | None = None) -> None:
        self.config = config
        self.on_receipt = on_receipt
        self.on_mo = on_mo
        self._cond = threading.Condition()  # guards _link, _pending, _in_flight, _bind_error, _closed
        self._link: Client | None = None    # the bound link; None while (re)binding
        self._pending: dict[int, _Waiter] = {}
        self._in_flight = 0
        self._bind_error: ConnectorError | None = None  # why the last re-bind failed
        self._closed = False
        self._write = threading.Lock()      # one PDU at a time on the socket
        self._connecting = threading.Lock()
        self._stop = threading.Event()
        self._unbound = threading.Event()
        self._sequence = _Sequence()
        self._pace = _Pace(config.mps)
        self._reference = random.randrange(256)  # a concatenation reference, not a secret
        self._inbox: queue.Queue[tuple[Client, Any, int] | None] = queue.Queue()
        self._reassembly = Reassembly()
        self._threads: list[threading.Thread] = []
        self._answered = 0                  # submit_sm_resp received (by the reader thread, on any link)
        # message_id -> the tag of the newest submit the SMSC gave that id on the current bind. Filled
        # by the reader thread before any later PDU is read, so a receipt always finds the submit it
        # reports on. Emptied at every bind: the link may have dropped because the SMSC restarted and
        # numbers its messages from 1 again, and a tag from before would name an older text's job.
        self._tags: OrderedDict[str, str] = OrderedDict()
        self._session = 0                   # bind number: a receipt's tag must come from its own bind

    # -- lifecycle -------------------------------------------------------------------------------

    def connect(self) -> None:
        """Bind now, in the calling thread, and start the background threads (no-op if running).

        Raises ``PermanentError`` if the SMSC refuses the bind, ``TransientError`` if it cannot be reached.
        """
        with self._connecting:
            if self._closed:
                raise TransientError("SMPP client is closed")
            if self._threads:
                return
            link = self._bind()
            self._install(link)
            self._threads = [
                threading.Thread(target=self._run_link, args=(link,), name="kefu-smpp-reader", daemon=True),
                threading.Thread(target=self._run_callbacks, name="kefu-smpp-callbacks", daemon=True)]
            for thread in self._threads:
                thread.start()

    def close(self) -> None:
        """Unbind (waiting briefly for unbind_resp), close the socket and stop the threads. Idempotent."""
        with self._connecting:
            with self._cond:
                if self._closed:
                    return
                self._closed = True
                link = self._link
                self._cond.notify_all()
            if link is not None and self._write_pdu(link, smpp.make_pdu("unbind", client=link)):
                self._unbound.wait(min(_UNBIND_WAIT, self.config.timeout))
            self._stop.set()
            if link is not None:
                _shutdown(link)
            self._inbox.put(None)
            for thread in self._threads:
                if thread is not threading.current_thread():  # close() called from a callback
                    thread.join(self.config.timeout + 1)
        log.info("SMPP client for %s closed", self.config)

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def bound(self) -> bool:
        """True while a bind is up (False during a re-bind)."""
        return self._link is not None

    # -- sending ---------------------------------------------------------------------------------

    def submit(self, to: str, text: str, source: str | None = None, tag: str | None = None,
               on_accepted: Callable[[str], None] | None = None,
               before_send: Callable[[], None] | None = None) -> SubmitResult:
        """Send ``text`` to ``to``; block until the SMSC has accepted every part. Thread-safe.

        ``tag`` (e.g. the outbox job's key) comes back in the raw fields of this message's receipts
        as ``submit_tag``, so that a receipt names its submit even when message ids repeat.
        ``on_accepted(message_id)`` runs as each part is accepted (to store the id before the rest).
        ``before_send()`` runs once, when the first part has its link and window slot and is about to
        be written (what raises there is raised here, and nothing is sent).

        Raises ``PermanentError`` when sending it again cannot help (bad number, empty or too long
        text, a rejecting status, bind refused) and ``TransientError`` when it may (SMSC unreachable
        or busy, link dropped before the SMSC answered — see the module docstring).
        """
        destination, dest_ton, dest_npi = _address(str(to), "destination")
        source_addr, source_ton, source_npi = _address(source or self.config.source, "source")
        if not text:
            raise PermanentError("the SMS text is empty")
        try:
            encoded = encode_message(text, self._next_reference())
        except ValueError as exc:
            raise PermanentError(str(exc)) from None
        if not self._threads:
            self.connect()  # first use: bind in this thread so a refusal surfaces here
        fields = {"source_addr_ton": source_ton, "source_addr_npi": source_npi, "source_addr": source_addr,
                  "dest_addr_ton": dest_ton, "dest_addr_npi": dest_npi, "destination_addr": destination,
                  "esm_class": encoded.esm_class, "data_coding": encoded.data_coding,
                  "registered_delivery": 1}  # ask for a receipt on final delivery
        ids = []
        for index, part in enumerate(encoded.parts):
            ids.append(self._submit_part(fields, part, tag, before_send if index == 0 else None))
            if on_accepted is not None:
                on_accepted(ids[-1])
        log.info("SMS to %s accepted: %d characters in %d part(s), message id(s) %s",
                 mask_number(destination), len(text), len(ids), ",".join(ids))
        return SubmitResult(message_ids=ids, parts=len(ids))

    def query(self, message_id: str, source: str | None = None) -> QueryResult:
        """Ask the SMSC (query_sm) about a message it accepted from ``source`` (default: ours).
        Raises ``TransientError`` when the SMSC cannot be asked now."""
        source_addr, source_ton, source_npi = _address(source or self.config.source, "source")
        if not self._threads:
            self.connect()
        deadline = time.monotonic() + self.config.timeout
        while True:
            link = self._take_slot(deadline)
            try:
                sent = self._send_request(link, "query_sm", message_id=str(message_id), source_addr=source_addr,
                                          source_addr_ton=source_ton, source_addr_npi=source_npi)
                if sent is None:
                    continue
                sequence, waiter = sent
                if not waiter.done.wait(self.config.timeout):
                    with self._cond:
                        self._pending.pop(sequence, None)
                    raise TransientError(f"no query_sm_resp within {self.config.timeout:g}s")
            finally:
                self._release_slot()
            if waiter.error is not None:
                raise waiter.error
            if waiter.status in _NOT_FOUND:
                return QueryResult(str(message_id), found=False)
            if waiter.status != consts.SMPP_ESME_ROK or waiter.response is None:
                raise TransientError(f"SMSC refused query_sm: {describe_status(waiter.status)}")
            pdu = waiter.response
            state = int(getattr(pdu, "message_state", 0) or 0)
            return QueryResult(str(message_id), found=True, state=MESSAGE_STATES.get(state, str(state)),
                               final_date=_text(getattr(pdu, "final_date", None)),
                               error_code=int(getattr(pdu, "error_code", 0) or 0))

    def _submit_part(self, fields: dict[str, Any], short_message: bytes, tag: str | None = None,
                     before_send: Callable[[], None] | None = None) -> str:
        """Send one part, resending after ESME_RTHROTTLED; return its message_id. ``before_send``
        runs once, holding the link and the window slot, just before the first write."""
        timeout = self.config.timeout
        throttled_for, delay = 0.0, _THROTTLE_FIRST
        deadline = time.monotonic() + timeout  # for the link and a window slot, however often it drops
        while True:
            link = self._take_slot(deadline)
            try:
                self._pace.wait()
                if before_send is not None:
                    before_send()
                    before_send = None
                sent = self._send_submit(link, fields, short_message, tag)
                if sent is None:
                    continue  # not sent, the link is gone: go again once re-bound
                sequence, waiter = sent
                if not waiter.done.wait(timeout):
                    with self._cond:
                        self._pending.pop(sequence, None)
                    raise TransientError(f"no submit_sm_resp within {timeout:g}s; "
                                         "the SMSC may have accepted the part")
            finally:
                self._release_slot()
            if waiter.error is not None:
                raise waiter.error
            if waiter.status == consts.SMPP_ESME_ROK:
                return waiter.message_id
            if waiter.status != consts.SMPP_ESME_RTHROTTLED:
                raise _submit_error(waiter.status, fields["destination_addr"])
            if throttled_for + delay > timeout:
                raise TransientError(f"SMSC kept answering ESME_RTHROTTLED for {throttled_for:.1f}s")
            log.debug("SMSC throttled a submit_sm; resending in %.2fs", delay)
            if self._stop.wait(delay):
                raise TransientError("SMPP client closed while backing off from throttling")
            throttled_for, delay = throttled_for + delay, min(delay * 2, _THROTTLE_MAX)
            deadline = time.monotonic() + timeout

    def _take_slot(self, deadline: float) -> Client:
        """Wait (until ``deadline``) for a bound link and a free window slot; return the link."""
        with self._cond:
            while True:
                if self._closed:
                    raise TransientError("SMPP client is closed")
                if self._link is not None and self._in_flight < self.config.window:
                    self._in_flight += 1
                    return self._link
                if self._link is None and isinstance(self._bind_error, PermanentError):
                    raise PermanentError(str(self._bind_error))  # e.g. the password changed
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if self._link is None:
                        last = f"; last attempt: {self._bind_error}" if self._bind_error else ""
                        raise TransientError(f"SMSC {self.config} is not bound (re-binding in the background{last})")
                    raise TransientError(f"no free slot in the submit window ({self.config.window}) "
                                         f"within {self.config.timeout:g}s")
                self._cond.wait(remaining)

    def _release_slot(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def _send_submit(self, link: Client, fields: dict[str, Any], short_message: bytes,
                     tag: str | None = None) -> tuple[int, _Waiter] | None:
        """Register a waiter and write the submit_sm; None if it was not sent because ``link`` is gone."""
        return self._send_request(link, "submit_sm", tag, short_message=short_message, **fields)

    def _send_request(self, link: Client, command: str, tag: str | None = None,
                      **fields: Any) -> tuple[int, _Waiter] | None:
        """Register a waiter and write the request; None if it was not sent because ``link`` is gone."""
        with self._write:
            with self._cond:
                # _socket: smpplib has no public accessor
                if self._link is None or self._link is not link or link._socket is None:
                    return None
                pdu = smpp.make_pdu(command, client=link, **fields)
                waiter = _Waiter(tag)
                self._pending[pdu.sequence] = waiter  # before sending: the response may come at once
            try:
                link.send_pdu(pdu)
            except (smpp_errors.ConnectionError, smpp_errors.PDUError, OSError) as exc:
                # sendall failed, so the SMSC never got the whole PDU: safe to send again after the re-bind.
                log.debug("link failed while sending %s (%s); resending after the re-bind", command, exc)
                with self._cond:
                    self._pending.pop(pdu.sequence, None)
                self._abandon(link)
                return None
        return pdu.sequence, waiter

    def _write_pdu(self, link: Client, pdu: Any) -> bool:
        """Write one PDU under the write lock; False if the link is gone (the reader then re-binds)."""
        with self._write:
            if link._socket is None:
                return False
            try:
                link.send_pdu(pdu)
            except (smpp_errors.ConnectionError, smpp_errors.PDUError, OSError) as exc:
                log.debug("could not send %s: %s", pdu.command, exc)
                self._abandon(link)
                return False
        return True

    def _abandon(self, link: Client) -> None:
        """Stop using a link that failed a write: senders wait for the re-bind, the reader wakes and drops it."""
        with self._cond:
            if self._link is link:
                self._link = None
        _shutdown(link)

    def _respond(self, link: Client, request: Any, command: str, status: int = consts.SMPP_ESME_ROK) -> bool:
        response = smpp.make_pdu(command, client=link, status=status)
        response.sequence = request.sequence
        return self._write_pdu(link, response)

    def _next_reference(self) -> int:
        with self._cond:
            self._reference = (self._reference + 1) % 256
            return self._reference

    # -- the link: bind, read, re-bind ---------------------------------------------------------------

    def _bind(self) -> Client:
        cfg = self.config
        link = Client(cfg.host, cfg.port, timeout=cfg.timeout, sequence_generator=self._sequence,
                      logger_name="kefu.sms.smpplib", allow_unknown_opt_params=True)
        stage = "connect to"
        try:
            link.connect()
            stage = "bind with"
            link.bind_transceiver(system_id=cfg.system_id, password=cfg.password,
                                  system_type=cfg.system_type)
        except smpp_errors.PDUError as exc:
            _close_socket(link)
            status = exc.args[1] if len(exc.args) > 1 else consts.SMPP_ESME_RUNKNOWNERR
            error = PermanentError if status in _BIND_PERMANENT else TransientError
            raise error(f"SMSC refused the bind: {describe_status(status)}") from None
        except (smpp_errors.ConnectionError, OSError) as exc:
            _close_socket(link)
            cause = exc.__context__ or exc  # smpplib replaces the socket error with a bare ConnectionError
            raise TransientError(f"cannot {stage} SMSC {cfg.host}:{cfg.port}: "
                                 f"{str(cause) or 'connection closed'}") from exc
        except Exception as exc:  # e.g. an answer smpplib cannot parse: the reader must survive it
            _close_socket(link)
            raise TransientError(f"unexpected answer from SMSC {cfg.host}:{cfg.port} to bind: {exc!r}") from exc
        return link

    def _install(self, link: Client) -> None:
        self._unbound.clear()
        with self._cond:
            self._link, self._bind_error = link, None
            self._session += 1
            self._tags.clear()
            self._cond.notify_all()
        log.info("bound to SMSC %s as transceiver", self.config)

    def _run_link(self, link: Client) -> None:
        """Reader thread: serve the link until it drops, re-bind with backoff, until close()."""
        delay = _REBIND_FIRST
        while True:
            started, answered = time.monotonic(), self._answered
            try:
                reason = self._serve(link)
            except Exception:  # a bug here must cost a re-bind, not the reader thread
                log.exception("SMPP reader failed")
                reason = "reader error"
            self._drop(link, reason)
            if self._stop.is_set() or self._closed:
                return
            if self._answered > answered or time.monotonic() - started > _STABLE:
                delay = _REBIND_FIRST  # a link that did work was fine; one that fails at once waits longer
            while True:
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, _REBIND_MAX)
                try:
                    link = self._bind()
                    break
                except ConnectorError as exc:
                    with self._cond:
                        self._bind_error = exc
                        self._cond.notify_all()
                    log.warning("re-bind to SMSC %s failed: %s; next attempt in %.1fs", self.config, exc, delay)
            if self._closed:
                _close_socket(link)
                return
            self._install(link)

    def _serve(self, link: Client) -> str:
        """Read and dispatch PDUs, sending enquire_link every ``enquire_link`` seconds; return why it ended."""
        sock = link._socket
        interval, patience = self.config.enquire_link, max(self.config.timeout, self.config.enquire_link)
        next_ping, ping_sent = time.monotonic() + interval, None
        while True:
            now = time.monotonic()
            if ping_sent is not None and now - ping_sent > patience:
                return f"no answer to enquire_link within {patience:g}s"
            if now >= next_ping:
                if not self._write_pdu(link, smpp.make_pdu("enquire_link", client=link)):
                    return "could not send enquire_link"
                ping_sent = ping_sent or now
                next_ping = now + interval
            wake = next_ping if ping_sent is None else min(next_ping, ping_sent + patience)
            try:
                readable, _, _ = select.select([sock], [], [], max(wake - time.monotonic(), 0))
                if not readable:
                    continue
                pdu = link.read_pdu()
            except (smpp_errors.ConnectionError, OSError, ValueError) as exc:
                return "client closed" if self._closed else f"connection lost ({str(exc) or 'closed by the SMSC'})"
            except Exception:  # a PDU smpplib cannot parse was read whole: skip it, keep the link
                log.warning("skipped a PDU from the SMSC that smpplib cannot parse", exc_info=True)
                continue
            ping_sent = None  # anything from the SMSC shows the link is alive
            reason = self._dispatch(link, pdu)
            if reason:
                return reason

    def _dispatch(self, link: Client, pdu: Any) -> str | None:
        """Act on one PDU from the SMSC; return a reason if the link is to end."""
        command = pdu.command
        if command in ("submit_sm_resp", "query_sm_resp", "generic_nack"):
            with self._cond:
                waiter = self._pending.pop(pdu.sequence, None)
            self._answered += 1
            if waiter is not None:
                waiter.response = pdu
                waiter.status = pdu.status if command != "generic_nack" else (
                    pdu.status or consts.SMPP_ESME_RUNKNOWNERR)
                waiter.message_id = _text(getattr(pdu, "message_id", None))
                if waiter.tag is not None and waiter.message_id and waiter.status == consts.SMPP_ESME_ROK:
                    self._remember_tag(waiter.message_id, waiter.tag)
                waiter.done.set()
        elif command == "deliver_sm":
            self._inbox.put((link, pdu, self._session))
        elif command == "enquire_link":
            self._respond(link, pdu, "enquire_link_resp")
        elif command == "unbind":
            self._respond(link, pdu, "unbind_resp")
            return "the SMSC unbound"
        elif command == "unbind_resp":
            self._unbound.set()
            return "unbound"
        elif pdu.is_request() and command != "alert_notification":
            self._respond(link, pdu, "generic_nack", consts.SMPP_ESME_RINVCMDID)
        return None

    def _drop(self, link: Client, reason: str) -> None:
        """Close the link and fail the parts it left unanswered (their callers retry them)."""
        _shutdown(link)  # first, so a sender blocked in sendall lets go of the write lock
        with self._write:
            _close_socket(link)
        with self._cond:
            if self._link is link:
                self._link = None
            stranded = list(self._pending.values())
            self._pending.clear()
            self._cond.notify_all()
        for waiter in stranded:
            waiter.error = TransientError(f"link dropped before submit_sm_resp ({reason}); the SMSC may "
                                          "have accepted the part, so a retry may send it twice")
            waiter.done.set()
        level = logging.INFO if self._closed else logging.WARNING
        log.log(level, "SMPP link to %s ended: %s; %d submit(s) unanswered", self.config, reason, len(stranded))

    # -- receiving -----------------------------------------------------------------------------------

    def _run_callbacks(self) -> None:
        """Callback thread: hand each deliver_sm to the application, then acknowledge it — after, so
        what the application did not see is delivered again; apart from the reader, so a callback
        may call submit() without stalling the responses it waits for."""
        while (item := self._inbox.get()) is not None:
            link, pdu, session = item
            try:
                self._deliver(pdu, session)
            except Exception:
                log.exception("SMS receipt/MO handler failed; the deliver_sm is acknowledged anyway")
            self._respond(link, pdu, "deliver_sm_resp")

    def _deliver(self, pdu: Any, session: int = 0) -> None:
        esm_class, coding = pdu.esm_class or 0, pdu.data_coding or 0
        source, destination = _text(pdu.source_addr), _text(pdu.destination_addr)
        body = pdu.short_message or getattr(pdu, "message_payload", None) or b""
        if (esm_class & 0x3C) in _RECEIPT_TYPES:
            self._receipt(pdu, source, destination, decode_text(coding, body), session)
            return
        concat, data = split_udh(esm_class, body)
        if concat is not None:
            whole = self._reassembly.add((source, destination), concat, data, time.monotonic())
            if whole is None:
                return  # acknowledged; the message goes up when its last part arrives
            data = whole
        text = decode_text(coding, data)
        log.info("MO SMS from %s to %s: %d characters", mask_number(source), destination, len(text))
        if self.on_mo is not None:
            self.on_mo(source, destination, text)

    def _remember_tag(self, message_id: str, tag: str) -> None:
        with self._cond:
            self._tags[message_id] = tag
            self._tags.move_to_end(message_id)
            while len(self._tags) > _TAGS_KEPT:
                self._tags.popitem(last=False)

    def _receipt(self, pdu: Any, source: str, destination: str, text: str, session: int = 0) -> None:
        fields = parse_receipt(text)
        tlv_id = _text(getattr(pdu, "receipted_message_id", None))
        message_state = getattr(pdu, "message_state", None)
        message_id = tlv_id or fields.get("id", "")
        state = receipt_state(fields.get("stat"), message_state)
        error = getattr(pdu, "network_error_code", None)
        raw = {**fields, "source": source, "destination": destination, "receipted_message_id": tlv_id,
               "message_state": message_state, "network_error_code": error.hex() if error else None}
        with self._cond:
            # A tag remembered on another bind is not trusted: this receipt may come from an SMSC
            # that restarted since and gave the id again (the other bind's tags are gone).
            tag = self._tags.get(message_id) if session == self._session else None
        if tag is not None:
            raw["submit_tag"] = tag
        submitted = receipt_submit_time(fields, self.config.receipt_tz, datetime.now(UTC))
        if submitted is not None:
            raw["submitted_at"] = submitted.isoformat()
        log.info("receipt for message %s to %s: %s", message_id, mask_number(source), state)
        if self.on_receipt is not None:
            self.on_receipt(message_id, state, raw)


def _address(value: str, what: str) -> tuple[str, int, int]:
    """(address, TON, NPI): digits with an optional leading + (international); a source may also be
    alphanumeric (a sender name); an empty source lets the SMSC use the account's default."""
    value = re.sub(r"[\s-]", "", value or "")
    if _NUMBER.fullmatch(value):
        if value.startswith("+"):
            return value[1:], consts.SMPP_TON_INTL, consts.SMPP_NPI_ISDN
        return value, consts.SMPP_TON_UNK, consts.SMPP_NPI_ISDN
    if what == "source" and (not value or (len(value) <= 11 and value.isascii() and value.isalnum())):
        return value, (consts.SMPP_TON_ALNUM if value else consts.SMPP_TON_UNK), consts.SMPP_NPI_UNK
    raise PermanentError(f"invalid {what} address {mask_number(value)!r}: expected up to 20 digits")


def _submit_error(status: int, destination: str) -> ConnectorError:
    message = f"SMSC rejected the SMS to {mask_number(destination)}: {describe_status(status)}"
    return PermanentError(message) if status in _SUBMIT_PERMANENT else TransientError(message)


def _text(value: bytes | str | None) -> str:
    """smpplib hands C-octet strings over as bytes (NUL already stripped)."""
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    return value or ""


def _shutdown(link: Client) -> None:
    """Wake anything blocked on the socket (select, recv, sendall) without closing it under them."""
    sock = link._socket
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _close_socket(link: Client) -> None:
    """Close without smpplib's disconnect(), which warns about closing a bound link — expected here."""
    sock, link._socket = link._socket, None
    link.state = consts.SMPP_CLIENT_STATE_CLOSED
    if sock is not None:
        sock.close()
