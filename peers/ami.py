"""A loopback Asterisk Manager Interface peer for tests and the demo, written from the Asterisk
documentation and packets seen on the wire from Asterisk 22 (it shares no code with the client).

It speaks the banner, Login (a wrong secret is answered after a one-second pause, then the link
closes, as Asterisk does), ``Permission denied`` before login, the unknown-command error, Ping,
Logoff, Command and asynchronous Originate, and plays scripted calls as channel events, with
noise events (VarSet, Newexten, DialBegin …) a client must ignore.

Simplification: on a real PBX, when the agent's phone is rung first, ``OriginateResponse`` reports
the agent's leg; here the outcome is scripted by the number dialled (``Exten``), default answer.

Tests get it through the ``ami_peer`` fixture (``tests/peers/ami_peer.py``); ``serve --demo``
starts one when ``KEFU_AMI_URL`` is unset.

By hand: ``python -m peers.ami --port 5038 --user kefu --secret kefu``, then type
``ring 13800138000 8001`` (or ``answer <call_id>``, ``hangup <call_id>``, ``script <number>
<outcome>``) on stdin, or with ``--http 8765``: ``curl 'localhost:8765/ring?caller=…&extension=8001'``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
CAUSE_TXT = {
    1: "Unallocated (unassigned) number", 16: "Normal Clearing", 17: "User busy",
    19: "User alerting, no answer", 34: "Circuit/channel congestion",
}
# outcome → (OriginateResponse Reason, Hangup Cause)
OUTCOMES = {"answer": (4, 16), "busy": (5, 17), "noanswer": (1, 19), "congested": (8, 34), "fail": (0, 1)}
Fields = list[tuple[str, str]]


@dataclass
class _Channel:
    name: str
    uniqueid: str
    linkedid: str
    state: int = 0
    cid_num: str = "<unknown>"
    cid_name: str = "<unknown>"
    conn_num: str = "<unknown>"
    conn_name: str = "<unknown>"
    context: str = "default"
    exten: str = "s"
    priority: int = 1

    def fields(self, prefix: str = "") -> Fields:
        return [
            (f"{prefix}Channel", self.name), (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (f"{prefix}CallerIDNum", self.cid_num), (f"{prefix}CallerIDName", self.cid_name),
            (f"{prefix}ConnectedLineNum", self.conn_num), (f"{prefix}ConnectedLineName", self.conn_name),
            (f"{prefix}Language", "en"), (f"{prefix}AccountCode", ""), (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten), (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid), (f"{prefix}Linkedid", self.linkedid),
        ]


@dataclass
class _Script:
    outcomes: list[str]
    ring_time: float | None
    talk_time: float | None


class _Session:
    """One manager connection."""

    def __init__(self, peer: AmiPeer, sock: socket.socket) -> None:
        self.peer, self.sock = peer, sock
        self.authenticated = False
        self.events_on = True
        self.muted = False  # simulates a half-open link: actions are read but never answered
        self._wlock = threading.Lock()

    def send(self, fields: Fields) -> None:
        data = "".join(f"{key}: {value}\r\n" for key, value in fields) + "\r\n"
        try:
            with self._wlock:
                self.sock.sendall(data.encode("utf-8"))
        except OSError:
            self.close()

    def respond(self, action_id: str | None, response: str, *fields: tuple[str, str]) -> None:
        head = [("Response", response)] + ([("ActionID", action_id)] if action_id is not None else [])
        self.send(head + list(fields))

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def serve(self) -> None:
        try:
            self.sock.sendall(BANNER)
            rfile = self.sock.makefile("rb")
            packet: Fields = []
            for raw in rfile:  # Asterisk accepts bare \n as well as \r\n from clients
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line:
                    key, _, value = line.partition(":")
                    packet.append((key.strip(), value.strip()))
                elif packet:
                    if not self.peer.handle(self, packet):
                        break
                    packet = []
        except (OSError, ValueError):
            pass
        finally:
            self.peer.forget(self)
            self.close()


class AmiPeer:
    """A threaded AMI server on 127.0.0.1 (``port=0``: a free port). See the module docstring."""

    def __init__(self, user: str = "kefu", secret: str = "s3cret", port: int = 0, *,
                 auth_fail_delay: float = 1.0, ring_time: float = 0.05, talk_time: float = 0.3) -> None:
        self.user, self.secret = user, secret
        self.auth_fail_delay, self.ring_time, self.talk_time = auth_fail_delay, ring_time, talk_time
        self.received_actions: list[dict[str, str]] = []   # every action, keys lower-cased
        self.sent_events: list[dict[str, str]] = []
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._sessions: set[_Session] = set()
        self._scripts: dict[str, _Script] = {}
        self._inbound: dict[str, dict[str, _Channel]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._counter = itertools.count(1)
        self._epoch = int(time.time())
        self._thread = threading.Thread(target=self._accept, name="ami-peer", daemon=True)

    @property
    def url(self) -> str:
        return f"ami://{self.user}:{self.secret}@127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._listener.close()  # before dropping links, so a client cannot reconnect meanwhile
        self.drop_connections()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- test controls
    def actions(self, name: str | None = None) -> list[dict[str, str]]:
        """The received actions, optionally only those named ``name`` (any case)."""
        return [a for a in self.received_actions if name is None or a.get("action", "").lower() == name.lower()]

    def script_originate(self, number: str, outcome: str, *then: str, ring_time: float | None = None,
                         talk_time: float | None = None) -> None:
        """Script what happens when ``number`` (the Originate's Exten, or the number in its Channel)
        is dialled: ``answer``, ``busy``, ``noanswer``, ``congested`` or ``fail``. Extra outcomes
        apply to the following attempts (``"busy", "answer"``: busy, then answered); the last repeats."""
        outcomes = [outcome, *then]
        unknown = [o for o in outcomes if o not in OUTCOMES]
        if unknown:
            raise ValueError(f"unknown outcome(s) {unknown}; known: {sorted(OUTCOMES)}")
        self._scripts[number] = _Script(outcomes, ring_time, talk_time)

    def drop_connections(self) -> None:
        """Cut every manager link (the server keeps listening), as a network failure would."""
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.close()

    def mute_connections(self) -> None:
        """Stop answering on the current links without closing them (a half-open link)."""
        with self._lock:
            for session in self._sessions:
                session.muted = True

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def emit(self, event: str, fields: Fields, privilege: str = "call,all") -> None:
        """Send an event to every logged-in session that asked for events."""
        packet = [("Event", event), ("Privilege", privilege), *fields]
        self.sent_events.append({k.lower(): v for k, v in packet})
        with self._lock:
            sessions = [s for s in self._sessions if s.authenticated and s.events_on]
        for session in sessions:
            session.send(packet)

    def ring_inbound(self, caller: str, extension: str, call_id: str | None = None,
                     did: str = "10010") -> str:
        """An outside call to ``did`` ringing agent ``extension``; returns the call id (Linkedid)."""
        trunk_id = call_id or self._uniqueid()
        trunk = _Channel(f"PJSIP/trunk-{self._serial()}", trunk_id, trunk_id, state=4, cid_num=caller,
                         context="from-trunk", exten=did)
        agent = _Channel(f"PJSIP/{extension}-{self._serial()}", self._uniqueid(), trunk_id,
                         cid_num=extension, conn_num=caller, context="from-internal", exten=extension)
        self._inbound[trunk_id] = {"trunk": trunk, "agent": agent}
        self.emit("Newchannel", trunk.fields())
        self.emit("VarSet", trunk.fields() + [("Variable", "__FROM_DID"), ("Value", did)])
        self.emit("Newexten", trunk.fields() + [("Extension", did), ("Application", "Dial"),
                                                 ("AppData", f"PJSIP/{extension},30")])
        self.emit("Newchannel", agent.fields())
        self.emit("DialBegin", trunk.fields() + agent.fields("Dest") + [("DialString", extension)])
        agent.state = 5
        self.emit("Newstate", agent.fields())
        self.emit("VarSet", agent.fields() + [("Variable", "DIALEDPEERNUMBER"), ("Value", extension)])
        return trunk_id

    def answer(self, call_id: str, record: bool = True) -> None:
        """The agent picks up the inbound call ``call_id``; with ``record``, the dialplan's
        MixMonitor starts recording (its VarSet names the file)."""
        trunk, agent = self._inbound[call_id]["trunk"], self._inbound[call_id]["agent"]
        agent.state = trunk.state = 6
        self.emit("Newstate", agent.fields())
        self.emit("DialEnd", trunk.fields() + agent.fields("Dest") + [("DialStatus", "ANSWER")])
        self.emit("Newstate", trunk.fields())
        if record:
            self.emit("VarSet", trunk.fields() + [("Variable", "MIXMONITOR_FILENAME"),
                                                  ("Value", f"/var/spool/asterisk/monitor/{call_id}.wav")])
        self.emit("BridgeEnter", trunk.fields() + [("BridgeUniqueid", f"bridge-{call_id}")])

    def hangup(self, call_id: str, cause: int = 16) -> None:
        """End the inbound call ``call_id`` (before an answer: the caller gave up)."""
        legs = self._inbound.pop(call_id)
        trunk, agent = legs["trunk"], legs["agent"]
        if agent.state != 6:
            self.emit("DialEnd", trunk.fields() + agent.fields("Dest") + [("DialStatus", "CANCEL")])
        for channel in (agent, trunk):
            self._hangup(channel, cause)

    def inbound_calls(self) -> dict[str, str]:
        """The inbound calls not hung up yet: call id → ``ringing`` or ``up``."""
        return {call_id: "up" if legs["agent"].state == 6 else "ringing"
                for call_id, legs in list(self._inbound.items())}

    # ------------------------------------------------------------------ protocol
    def handle(self, session: _Session, packet: Fields) -> bool:
        """Answer one action; False closes the connection."""
        headers: dict[str, str] = {}
        for key, value in packet:  # a repeated field (Variable) keeps every value, one per line
            headers[key.lower()] = f"{headers[key.lower()]}\n{value}" if key.lower() in headers else value
        self.received_actions.append(headers)
        if session.muted:
            return True
        action, action_id = headers.get("action", ""), headers.get("actionid")
        name = action.lower()
        if not action:
            session.respond(action_id, "Error", ("Message", "Missing action in request"))
        elif not session.authenticated and name not in ("login", "logoff", "challenge"):
            session.respond(action_id, "Error", ("Message", "Permission denied"))
        elif name == "login":
            return self._login(session, headers, action_id)
        elif name == "logoff":
            session.respond(action_id, "Goodbye", ("Message", "Thanks for all the fish."))
            return False
        elif name == "ping":
            session.respond(action_id, "Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))
        elif name == "originate":
            self._originate(session, headers, action_id)
        elif name == "coreshowchannels":
            self._core_show_channels(session, action_id)
        elif name == "command":
            lines = self._command_output(headers.get("command", ""))
            session.respond(action_id, "Success", ("Message", "Command output follows"),
                            *[("Output", line) for line in lines])
        else:
            message = f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
            session.respond(action_id, "Error", ("Message", message))
        return True

    def _login(self, session: _Session, headers: dict[str, str], action_id: str | None) -> bool:
        if headers.get("username", "").lower() != self.user.lower() or headers.get("secret") != self.secret:
            time.sleep(self.auth_fail_delay)  # Asterisk slows down password guessing
            session.respond(action_id, "Error", ("Message", "Authentication failed"))
            return False
        session.authenticated = True
        session.events_on = headers.get("events", "on").lower() not in ("off", "no", "false", "0")
        session.respond(action_id, "Success", ("Message", "Authentication accepted"))
        if session.events_on:
            session.send([("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "1234"),
                          ("LastReload", "1234"), ("Status", "Fully Booted")])
        return True

    def _originate(self, session: _Session, headers: dict[str, str], action_id: str | None) -> None:
        channel = headers.get("channel", "")
        if not channel:
            session.respond(action_id, "Error", ("Message", "Channel not specified"))
            return
        call = (action_id, channel, headers.get("exten", ""), headers.get("context", "default"),
                headers.get("callerid", ""))
        if headers.get("async", "").lower() in ("true", "yes", "1", "on", "y", "t"):
            session.respond(action_id, "Success", ("Message", "Originate successfully queued"))
            threading.Thread(target=self._play_originate, args=call, daemon=True).start()
        elif self._play_originate(*call):  # synchronous: the answer waits for the call's outcome
            session.respond(action_id, "Success", ("Message", "Originate successfully queued"))
        else:
            session.respond(action_id, "Error", ("Message", "Originate failed"))

    def _play_originate(self, action_id: str | None, requested: str, exten: str, context: str,
                        caller_id: str) -> bool:
        outcome, ring_time, talk_time = self._next_outcome(exten, requested)
        reason, cause = OUTCOMES[outcome]
        cid_num = caller_id.rpartition("<")[2].rstrip(">") or "<unknown>"

        def result(response: str, channel: str, uniqueid: str) -> None:
            self.emit("OriginateResponse", [
                ("ActionID", action_id or ""), ("Response", response), ("Channel", channel),
                ("Context", context), ("Exten", exten), ("Application", ""), ("Data", ""),
                ("Reason", str(reason)), ("Uniqueid", uniqueid), ("CallerIDNum", cid_num),
                ("CallerIDName", "<unknown>")])

        if outcome == "fail":  # no channel was ever created
            result("Failure", requested, "<null>")
            return False
        uid = self._uniqueid()
        agent = _Channel(self._channel_name(requested), uid, uid, cid_num=cid_num)
        self.emit("Newchannel", agent.fields())
        self.emit("VarSet", agent.fields() + [("Variable", "KEFU_NOISE"), ("Value", "1")])
        if outcome in ("answer", "noanswer"):
            agent.state = 5
            self.emit("Newstate", agent.fields())
        if self._stopped.wait(ring_time):
            return False
        if outcome != "answer":
            self._hangup(agent, cause)
            result("Failure", requested, "<null>")
            return False
        agent.state = 6
        self.emit("Newstate", agent.fields())
        result("Success", agent.name, uid)
        agent.context, agent.exten = context, exten
        self.emit("Newexten", agent.fields() + [("Extension", exten), ("Application", "Dial"),
                                                 ("AppData", f"PJSIP/{exten}@trunk")])
        customer = _Channel(f"PJSIP/trunk-{self._serial()}", self._uniqueid(), uid, cid_num=exten,
                            conn_num=cid_num, context=context, exten=exten)
        self.emit("Newchannel", customer.fields())
        self.emit("DialBegin", agent.fields() + customer.fields("Dest") + [("DialString", f"{exten}@trunk")])
        customer.state = 6
        self.emit("Newstate", customer.fields())
        self.emit("DialEnd", agent.fields() + customer.fields("Dest") + [("DialStatus", "ANSWER")])
        if not self._stopped.wait(talk_time):
            self._hangup(customer, 16)
            self._hangup(agent, 16)
        return True

    def _next_outcome(self, exten: str, requested: str) -> tuple[str, float, float]:
        resource = requested.partition("/")[2].partition("@")[0]
        key = exten if exten in self._scripts else resource
        script = self._scripts.get(key)
        if script is None:
            return "answer", self.ring_time, self.talk_time
        outcome = script.outcomes.pop(0) if len(script.outcomes) > 1 else script.outcomes[0]
        return (outcome, self.ring_time if script.ring_time is None else script.ring_time,
                self.talk_time if script.talk_time is None else script.talk_time)

    def _hangup(self, channel: _Channel, cause: int) -> None:
        self.emit("Hangup", channel.fields() + [("Cause", str(cause)),
                                                ("Cause-txt", CAUSE_TXT.get(cause, "Unknown"))])

    def _core_show_channels(self, session: _Session, action_id: str | None) -> None:
        """An event list: a response opening it, one event per channel, a closing event."""
        session.respond(action_id, "Success", ("EventList", "start"), ("Message", "Channels will follow"))
        channels = [leg for legs in list(self._inbound.values()) for leg in legs.values()]
        ident = [("ActionID", action_id)] if action_id is not None else []
        for channel in channels:
            session.send([("Event", "CoreShowChannel"), *ident, *channel.fields(),
                          ("Application", "Dial"), ("ApplicationData", ""), ("Duration", "00:00:01"),
                          ("BridgeId", "")])
        session.send([("Event", "CoreShowChannelsComplete"), *ident, ("EventList", "Complete"),
                      ("ListItems", str(len(channels)))])

    def _command_output(self, command: str) -> list[str]:
        if command.strip().lower() == "core show version":
            return ["Asterisk 22.0.0 built by kefu @ loopback on a x86_64 running Linux"]
        if command.strip().lower() == "core show channels":
            return ["Channel              Location             State   Application(Data)",
                    "0 active channels", "0 active calls", "0 calls processed"]
        return [f"No such command '{command}' (type 'core show help {command}' for other possible commands)"]

    # ------------------------------------------------------------------ plumbing
    def _serial(self) -> str:
        return f"{next(self._counter):08x}"

    def _uniqueid(self) -> str:
        return f"{self._epoch}.{next(self._counter)}"

    def _channel_name(self, requested: str) -> str:
        if requested.lower().startswith("local/"):
            return f"{requested}-{self._serial()};1"
        return f"{requested}-{self._serial()}"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._stopped.is_set():
                sock.close()
                return
            sock.settimeout(None)
            session = _Session(self, sock)
            with self._lock:
                self._sessions.add(session)
            threading.Thread(target=session.serve, name="ami-peer-session", daemon=True).start()

    def forget(self, session: _Session) -> None:
        with self._lock:
            self._sessions.discard(session)


# ---------------------------------------------------------------------- demo
def _command(peer: AmiPeer, verb: str, args: dict[str, str]) -> dict[str, str]:
    if verb == "ring":
        return {"call_id": peer.ring_inbound(args["caller"], args["extension"])}
    if verb == "answer":
        peer.answer(args["call_id"])
    elif verb == "hangup":
        peer.hangup(args["call_id"])
    elif verb == "script":
        peer.script_originate(args["number"], args["outcome"])
    else:
        raise KeyError(verb)
    return {"ok": "true"}


_ARGS = {"ring": ("caller", "extension"), "answer": ("call_id",), "hangup": ("call_id",),
         "script": ("number", "outcome")}


def _serve_http(peer: AmiPeer, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            args = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                body, status = _command(peer, url.path.strip("/"), args), 200
            except (KeyError, ValueError) as exc:
                body, status = {"error": f"bad request: {exc}"}, 400
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback Asterisk Manager Interface peer (demo)")
    parser.add_argument("--port", type=int, default=5038)
    parser.add_argument("--user", default="kefu")
    parser.add_argument("--secret", default="kefu")
    parser.add_argument("--talk-time", type=float, default=20.0)
    parser.add_argument("--http", type=int, default=0, help="also take commands over HTTP on this port")
    args = parser.parse_args(argv)
    peer = AmiPeer(args.user, args.secret, args.port, ring_time=3.0, talk_time=args.talk_time).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.http:
        _serve_http(peer, args.http)
    print(f"AMI peer ready on 127.0.0.1:{peer.port} (user {args.user})"
          + (f", commands on http://127.0.0.1:{args.http}/" if args.http else ""), flush=True)
    try:
        for line in sys.stdin:  # ring <caller> <extension> | answer <id> | hangup <id> | script <n> <o>
            if not line.split():
                continue
            verb, *words = line.split()
            try:
                print(json.dumps(_command(peer, verb, dict(zip(_ARGS[verb], words, strict=True)))), flush=True)
            except (KeyError, ValueError) as exc:
                print(f"usage: ring CALLER EXT | answer ID | hangup ID | script NUMBER OUTCOME ({exc})",
                      flush=True)
        stop.wait()  # stdin closed (started in the background): serve until SIGTERM
    except KeyboardInterrupt:
        pass
    finally:
        peer.stop()


if __name__ == "__main__":
    main()
