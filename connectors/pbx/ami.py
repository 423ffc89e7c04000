"""Asterisk Manager Interface (AMI) client: the wire protocol, login, actions, asynchronous
originate, events, keep-alive and automatic reconnection.

One TCP link per client; a reader thread parses packets (``Key: Value`` lines ended by a blank
line), hands each response to the action waiting for its ActionID and every event to ``on_event``
(keys lower-cased, unknown events passed through). A keep-alive thread pings the server so a
half-open link is noticed; when the link drops, pending actions fail with ``TransientError`` and the
reader logs in again with exponential backoff. Imports nothing from Flask or the engine.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO, Self

from connectors.base import ConnectorError, PermanentError, TransientError
from connectors.pbx.config import AmiConfig

log = logging.getLogger("kefu.pbx")

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_LINE = 65536
# OriginateResponse ``Reason`` is an AST_CONTROL_* code; 3 (still ringing) means the ring timed out.
REASON_OUTCOMES = {4: "answered", 1: "no_answer", 3: "no_answer", 5: "busy", 8: "congested"}
EventHandler = Callable[[dict[str, str]], None]

_HEADER = re.compile(r"^([^\s:]+):[ \t]?(.*)$")
_LONG_NUMBER = re.compile(r"(?<![\w.-])\+?\d{7,}(?![\w.])", re.ASCII)  # not Uniqueids nor channel serials
_SECRET_LINE = re.compile(r"(?im)^(secret|key):.*$")


def mask_numbers(text: str) -> str:
    """Mask phone numbers (runs of 7+ digits) for logs: ``13800138000`` → ``138****8000``."""

    def mask(match: re.Match[str]) -> str:
        number = match.group(0)
        keep_head, keep_tail = (3, 4) if len(number) >= 11 else (2, 2)
        return number[:keep_head] + "*" * (len(number) - keep_head - keep_tail) + number[-keep_tail:]

    return _LONG_NUMBER.sub(mask, text)


def parse_packet(lines: Iterable[str]) -> dict[str, str]:
    """One packet's lines as a dict with lower-cased keys.

    A repeated key (``Output:`` of a Command, ``ChanVariable:``) keeps every value, joined by
    newlines. Lines that are not ``Key: Value`` (the raw text of old ``Response: Follows`` command
    output) are collected under ``output``; the ``--END COMMAND--`` terminator is dropped.
    """
    packet: dict[str, str] = {}
    for line in lines:
        match = _HEADER.match(line)
        if match:
            key, value = match.group(1).lower(), match.group(2).strip()
        elif line.strip() == "--END COMMAND--":
            continue
        else:
            key, value = "output", line
        packet[key] = f"{packet[key]}\n{value}" if key in packet else value
    return packet


def read_packet(rfile: BinaryIO) -> list[str] | None:
    """The next packet's lines, or None at end of stream. Accepts ``\\r\\n`` and bare ``\\n``."""
    lines: list[str] = []
    while True:
        raw = rfile.readline(MAX_LINE)
        if not raw:
            return None
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line:
            lines.append(line)
        elif lines:
            return lines


def format_packet(fields: Iterable[tuple[str, Any]]) -> bytes:
    """Encode an action; a CR or LF inside a key or value would inject headers, so it is refused."""
    out = []
    for key, value in fields:
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            if any(c in key or c in text for c in "\r\n") or not key or ":" in key:
                raise ValueError(f"invalid AMI field {key!r}: line breaks are not allowed")
            out.append(f"{key}: {text}\r\n")
    return ("".join(out) + "\r\n").encode("utf-8")


@dataclass(frozen=True)
class OriginateResult:
    """What became of one originate: ``outcome`` is answered, busy, no_answer, congested or failed."""

    outcome: str
    reason: int
    uniqueid: str
    channel: str
    action_id: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def originate_result(event: Mapping[str, str], action_id: str) -> OriginateResult:
    """Map an ``OriginateResponse`` event to an ``OriginateResult``."""
    try:
        reason = int(event.get("reason", "0") or 0)
    except ValueError:
        reason = 0
    if event.get("response", "").lower() == "success":
        outcome = "answered"
    else:
        outcome = REASON_OUTCOMES.get(reason, "failed") if reason != 4 else "failed"
    uniqueid = event.get("uniqueid", "")
    return OriginateResult(
        outcome=outcome,
        reason=reason,
        uniqueid="" if uniqueid == "<null>" else uniqueid,
        channel=event.get("channel", ""),
        action_id=action_id,
    )


class _Waiter:
    """One thread waiting for a response (or an event list, or an OriginateResponse)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.packet: dict[str, Any] | None = None
        self.error: ConnectorError | None = None
        self.events: list[dict[str, str]] | None = None  # set once a response opens an event list

    def finish(self, packet: dict[str, Any] | None = None, error: ConnectorError | None = None) -> None:
        self.packet, self.error = packet, error
        self.done.set()


class AmiClient:
    """A threaded AMI client; see the module docstring. ``on_event`` runs on the reader thread, so
    it must be quick and must not call ``action`` and wait (that would wait for itself)."""

    def __init__(
        self,
        config: AmiConfig,
        on_event: EventHandler | None = None,
        *,
        ping_interval: float = 20.0,
        action_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 30.0,
        originate_grace: float = 5.0,
    ) -> None:
        self.config = config
        self.on_event = on_event
        self.ping_interval = ping_interval
        self.action_timeout = action_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.originate_grace = originate_grace
        self.logins = 0  # successful logins, reconnections included
        self._lock = threading.Lock()     # guards the link and the waiter tables
        self._wlock = threading.Lock()    # one packet at a time on the socket
        self._sock: socket.socket | None = None
        self._rfile: BinaryIO | None = None
        self._pending: dict[str, _Waiter] = {}
        self._originates: dict[str, _Waiter] = {}
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ids = itertools.count(1)
        # Unique across processes sharing one PBX: OriginateResponse events reach every session.
        self._id_prefix = f"kefu-{os.getpid()}-{secrets.token_hex(3)}"

    # ----------------------------------------------------------------- lifecycle
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until logged in (or ``timeout`` seconds); True when connected."""
        return self._connected.wait(timeout)

    def connect(self) -> None:
        """Connect and log in now, then keep the link up in the background.

        Raises ``TransientError`` when the PBX is unreachable and ``PermanentError`` when it
        refuses the login or is not an AMI server."""
        if self._closing.is_set():
            raise PermanentError("AMI client is closed")
        if self._threads:  # already started: wait for the background login instead
            if not self._connected.wait(self.connect_timeout):
                raise TransientError("AMI is not connected yet (reconnecting in the background)")
            return
        self._open()
        self._start_threads()

    def start(self) -> None:
        """Connect in the background and keep reconnecting; never raises (the app may start before
        the PBX). Use ``wait_connected`` to wait for the first login."""
        if not self._threads and not self._closing.is_set():
            self._start_threads()

    def close(self) -> None:
        """Log off, close the link and stop the threads; waiting originates fail as transient."""
        if self._closing.is_set():
            return
        self._closing.set()  # first, so the reader does not reconnect after the server's Goodbye
        if self.connected:
            try:
                self.action("Logoff", timeout=min(self.action_timeout, 2.0))
            except ConnectorError as exc:
                log.debug("AMI logoff: %s", exc)
        self._drop_link()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)
        with self._lock:
            waiting = list(self._originates.values()) + list(self._pending.values())
            self._originates.clear()
            self._pending.clear()
        for waiter in waiting:
            waiter.finish(error=TransientError("AMI client closed"))
        log.info("AMI client closed")

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------- actions
    def action(self, name: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one action and return its response (keys lower-cased; ``Response: Error`` is
        returned, not raised). An action answered by an event list (``EventList: start``) returns
        once the list completes, with the events under ``events``. A list value repeats its field.

        Raises ``TransientError`` when the link is down or drops, or no response comes in time."""
        action_id = str(fields.pop("ActionID", None) or self._next_id())
        packet = format_packet([("Action", name), ("ActionID", action_id), *fields.items()])
        waiter = _Waiter()
        with self._lock:
            sock = self._sock
            if sock is None:
                raise TransientError("AMI link is down")
            if action_id in self._pending:
                raise ValueError(f"ActionID {action_id!r} is already waiting for a response")
            self._pending[action_id] = waiter
        wait = self.action_timeout if timeout is None else timeout
        try:
            self._send(sock, packet)
            if not waiter.done.wait(wait):
                raise TransientError(f"AMI did not answer {name} within {wait:g}s")
        finally:
            with self._lock:
                if self._pending.get(action_id) is waiter:
                    del self._pending[action_id]
        if waiter.error is not None:
            raise waiter.error
        assert waiter.packet is not None
        return waiter.packet

    def ping(self, timeout: float | None = None) -> None:
        """One keep-alive round trip; raises ``TransientError`` when the PBX does not answer."""
        response = self.action("Ping", timeout=timeout)
        if response.get("response", "").lower() != "success":
            raise TransientError(f"AMI ping refused: {response.get('message', '')}")

    def originate(
        self,
        channel: str,
        exten: str,
        context: str,
        caller_id: str | None = None,
        variables: Mapping[str, Any] | None = None,
        timeout_ms: int = 30000,
        action_id: str | None = None,
        priority: int = 1,
    ) -> OriginateResult:
        """Ring ``channel``; when it answers, send it to ``exten`` in ``context``. Blocks until the
        ``OriginateResponse`` for this ActionID, at most ``timeout_ms`` plus a grace period.

        Busy, no answer and so on are returned as the result's ``outcome``, not raised. Raises
        ``PermanentError`` when the PBX refuses the action (bad channel, no permission) and
        ``TransientError`` when the link is down, or the result does not arrive in time (then the
        call may or may not have been placed)."""
        action_id = action_id or self._next_id()
        waiter = _Waiter()
        with self._lock:
            if action_id in self._originates:
                raise ValueError(f"ActionID {action_id!r} is already originating")
            # Registered before sending: the result event may follow the response at once.
            self._originates[action_id] = waiter
        try:
            response = self.action(
                "Originate", ActionID=action_id, Channel=channel, Exten=exten, Context=context,
                Priority=priority, Timeout=int(timeout_ms), CallerID=caller_id, Async="true",
                Variable=[f"{key}={value}" for key, value in (variables or {}).items()],
            )
            if response.get("response", "").lower() != "success":
                raise PermanentError(f"AMI refused the originate: {response.get('message', 'no reason')}")
            log.info("originate %s: %s → %s@%s queued", action_id, mask_numbers(channel), mask_numbers(exten), context)
            wait = timeout_ms / 1000 + self.originate_grace
            # The wait survives a reconnection: Asterisk sends OriginateResponse to every session.
            if not waiter.done.wait(wait):
                raise TransientError(f"no result for originate {action_id} within {wait:g}s")
        finally:
            with self._lock:
                if self._originates.get(action_id) is waiter:
                    del self._originates[action_id]
        if waiter.error is not None:
            raise waiter.error
        assert waiter.packet is not None
        result = originate_result(waiter.packet, action_id)
        log.info("originate %s: %s (reason %s)", action_id, result.outcome, result.reason)
        return result

    # ---------------------------------------------------------------- internals
    def _next_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    def _start_threads(self) -> None:
        self._threads = [
            threading.Thread(target=self._supervise, name="ami-reader", daemon=True),
            threading.Thread(target=self._keep_alive, name="ami-keepalive", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _open(self) -> None:
        """Connect, check the banner and log in; on success the link is installed."""
        host, port = self.config.host, self.config.port
        try:
            sock = socket.create_connection((host, port), timeout=self.connect_timeout)
        except OSError as exc:
            raise TransientError(f"AMI unreachable at {host}:{port}: {exc}") from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            rfile = sock.makefile("rb")
            banner = rfile.readline(MAX_LINE).decode("utf-8", "replace").strip()
            if not banner:
                raise TransientError("AMI closed the connection before its banner")
            if not banner.startswith(BANNER_PREFIX):
                raise PermanentError(f"not an Asterisk manager interface at {host}:{port}: {banner[:60]!r}")
            response = self._login(sock, rfile)
            if response.get("response", "").lower() != "success":
                raise PermanentError(f"AMI login refused: {response.get('message') or 'no reason given'}")
        except TimeoutError as exc:
            sock.close()
            raise TransientError(f"AMI at {host}:{port} did not complete the login in time") from exc
        except ConnectorError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            raise TransientError(f"AMI link failed during login: {exc}") from exc
        sock.settimeout(None)  # the keep-alive notices a dead link; reads may block indefinitely
        with self._lock:
            self._sock, self._rfile = sock, rfile
        self.logins += 1
        self._connected.set()
        log.info("AMI logged in to %s:%s as %s (%s)", host, port, self.config.username, banner)

    def _login(self, sock: socket.socket, rfile: BinaryIO) -> dict[str, str]:
        action_id = self._next_id()
        self._send(sock, format_packet([
            ("Action", "Login"), ("ActionID", action_id),
            ("Username", self.config.username), ("Secret", self.config.secret),
        ]), log_text="Action: Login (secret hidden)")
        while True:
            lines = read_packet(rfile)
            if lines is None:
                raise TransientError("AMI closed the connection during login")
            packet = parse_packet(lines)
            if "response" in packet and "event" not in packet and packet.get("actionid") == action_id:
                return packet
            self._dispatch(packet)

    def _send(self, sock: socket.socket, data: bytes, log_text: str | None = None) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("AMI ← %s", mask_numbers(log_text or _SECRET_LINE.sub(r"\1: ***", data.decode())))
        try:
            with self._wlock:
                sock.sendall(data)
        except OSError as exc:
            self._drop_link(sock)
            raise TransientError("AMI link dropped") from exc

    def _supervise(self) -> None:
        """The reader thread: read until the link drops, then log in again with backoff."""
        delay = self.reconnect_initial
        while not self._closing.is_set():
            if self._sock is None:
                try:
                    self._open()
                except ConnectorError as exc:
                    # A refused login is logged loudly but retried: the PBX account may be fixed.
                    level = logging.ERROR if isinstance(exc, PermanentError) else logging.WARNING
                    log.log(level, "AMI connect failed (%s); retrying in %.1fs", exc, delay)
                    if self._closing.wait(delay * (1 + random.random() * 0.2)):  # jitter spreads workers
                        break
                    delay = min(delay * 2, self.reconnect_max)
                    continue
                if self._closing.is_set():
                    break
            delay = self.reconnect_initial
            self._read_until_eof()
            self._link_lost("AMI link dropped")
        self._link_lost("AMI client closed")

    def _read_until_eof(self) -> None:
        rfile = self._rfile
        if rfile is None:
            return
        while True:
            try:
                lines = read_packet(rfile)
            except (OSError, ValueError):  # ValueError: the file was closed under us
                lines = None
            if lines is None:
                return
            try:
                self._dispatch(parse_packet(lines))
            except Exception:  # one odd packet must never stop the link
                log.exception("AMI packet could not be handled")

    def _dispatch(self, packet: dict[str, str]) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("AMI → %s", mask_numbers(repr(packet)))
        action_id = packet.get("actionid", "")
        # An event may carry a Response field too (OriginateResponse): "Event" decides.
        if "response" in packet and "event" not in packet:
            with self._lock:
                waiter = self._pending.get(action_id)
                if waiter is not None and packet.get("eventlist", "").lower() == "start":
                    waiter.events = []  # complete later, when the list's last event arrives
                    waiter.packet = packet
                    return
                if waiter is not None:
                    del self._pending[action_id]
            if waiter is not None:
                waiter.finish(packet)
            return
        if "event" not in packet:
            return
        self._collect_list_event(action_id, packet)
        if packet["event"].lower() == "originateresponse" and action_id:
            with self._lock:
                waiter = self._originates.pop(action_id, None)
            if waiter is not None:
                waiter.finish(packet)
        if self.on_event is not None:
            try:
                self.on_event(packet)
            except Exception:  # a consumer's bug must not take the link down
                log.exception("AMI event handler failed on %s", packet.get("event"))

    def _collect_list_event(self, action_id: str, packet: dict[str, str]) -> None:
        with self._lock:
            waiter = self._pending.get(action_id) if action_id else None
            if waiter is None or waiter.events is None:
                return
            if packet.get("eventlist", "").lower() != "complete":
                waiter.events.append(packet)
                return
            del self._pending[action_id]
        assert waiter.packet is not None
        waiter.finish({**waiter.packet, "events": waiter.events})

    def _drop_link(self, sock: socket.socket | None = None) -> None:
        """Shut the socket down so the reader sees end of stream and takes over."""
        with self._lock:
            current = self._sock
        if current is None or (sock is not None and sock is not current):
            return
        try:
            current.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _link_lost(self, reason: str) -> None:
        with self._lock:
            sock, self._sock, self._rfile = self._sock, None, None
            pending, self._pending = self._pending, {}
        self._connected.clear()
        for waiter in pending.values():
            waiter.finish(error=TransientError(reason))
        if sock is None:
            return
        try:
            sock.close()
        except OSError:
            pass
        if not self._closing.is_set():
            log.warning("%s; %d pending action(s) failed; reconnecting", reason, len(pending))

    def _keep_alive(self) -> None:
        while not self._closing.wait(self.ping_interval):
            sock = self._sock
            if sock is None:
                continue
            try:
                self.ping()
            except TransientError as exc:
                if self._closing.is_set():
                    return
                log.warning("AMI keep-alive failed (%s); dropping the link to reconnect", exc)
                self._drop_link(sock)  # only that link: the reader may already have a new one
