"""The AMI client, call tracker and ``pbx.originate`` against the loopback AMI peer over real TCP
(no mocks), and the peer itself checked byte for byte on a raw socket."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from connectors.base import OUTBOX, Call, ConnectorError, PermanentError, TransientError
from connectors.pbx import AmiClient, AmiConfig, CallTracker, extension_of, operations, parse_ami_url
from connectors.pbx.ami import format_packet, mask_numbers, parse_packet

if TYPE_CHECKING:
    from peers.ami import AmiPeer

pytest_plugins = ["tests.peers.ami_peer"]  # the ami_peer fixture

CUSTOMER = "13800138000"
FAST = {"ping_interval": 30.0, "action_timeout": 2.0, "connect_timeout": 2.0,
        "reconnect_initial": 0.05, "reconnect_max": 0.2, "originate_grace": 0.5}


def wait_until(predicate: Callable[[], Any], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def make_client(ami_peer: AmiPeer) -> Iterator[Callable[..., AmiClient]]:
    """Build connected clients on the peer (``secret=`` to log in wrongly); closed after the test."""
    clients: list[AmiClient] = []

    def make(on_event: Callable[[dict[str, str]], None] | None = None, secret: str | None = None,
             connect: bool = True, **options: Any) -> AmiClient:
        config = AmiConfig(host="127.0.0.1", port=ami_peer.port, username=ami_peer.user,
                           secret=secret or ami_peer.secret)
        client = AmiClient(config, on_event, **{**FAST, **options})
        clients.append(client)
        if connect:
            client.connect()
        return client

    yield make
    for client in clients:
        client.close()


def in_thread(func: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``func`` in a thread; the dict receives its result or error and the elapsed time."""
    out: dict[str, Any] = {}

    def run() -> None:
        start = time.monotonic()
        try:
            out["result"] = func()
        except ConnectorError as exc:
            out["error"] = exc
        out["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


# --------------------------------------------------------------------------- the peer on the wire
def _recv_packet(rfile: Any) -> bytes:
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        line = rfile.readline()
        assert line, f"connection closed after {data!r}"
        data += line
    return data


def test_peer_speaks_ami_on_a_raw_socket(ami_peer: AmiPeer) -> None:
    with socket.create_connection(("127.0.0.1", ami_peer.port), timeout=2) as sock:
        rfile = sock.makefile("rb")
        assert rfile.readline() == b"Asterisk Call Manager/11.0.0\r\n"
        sock.sendall(b"Action: Ping\nActionID: p1\n\n")  # bare \n is accepted
        assert _recv_packet(rfile) == b"Response: Error\r\nActionID: p1\r\nMessage: Permission denied\r\n\r\n"
        sock.sendall(b"action: login\nactionid: l1\nusername: kefu\nsecret: s3cret\n\n")  # any key case
        assert _recv_packet(rfile) == (b"Response: Success\r\nActionID: l1\r\n"
                                       b"Message: Authentication accepted\r\n\r\n")
        assert _recv_packet(rfile).startswith(b"Event: FullyBooted\r\n")
        sock.sendall(b"Action: FooBar\r\nActionID: u1\r\n\r\n")
        assert _recv_packet(rfile) == (b"Response: Error\r\nActionID: u1\r\nMessage: Invalid/unknown command: "
                                       b"FooBar. Use Action: ListCommands to show available commands.\r\n\r\n")
        sock.sendall(b"Action: Ping\r\nActionID: p2\r\n\r\n")
        assert _recv_packet(rfile).startswith(b"Response: Success\r\nActionID: p2\r\nPing: Pong\r\n")
        sock.sendall(b"Action: Logoff\r\nActionID: o1\r\n\r\n")
        assert _recv_packet(rfile).startswith(b"Response: Goodbye\r\nActionID: o1\r\n")
        assert rfile.readline() == b""  # the server closed the link


# --------------------------------------------------------------------------------- login, errors
def test_login_succeeds_and_fully_booted_arrives(make_client: Callable[..., AmiClient],
                                                 ami_peer: AmiPeer) -> None:
    events: list[dict[str, str]] = []
    client = make_client(events.append)
    wait_until(lambda: any(e["event"] == "FullyBooted" for e in events))
    assert client.connected and client.logins == 1
    assert [(a["username"], a["secret"]) for a in ami_peer.actions("Login")] == [("kefu", "s3cret")]
    assert client.action("Ping")["ping"] == "Pong"


def test_bad_secret_is_refused_permanently_after_the_delay(make_client: Callable[..., AmiClient],
                                                           ami_peer: AmiPeer) -> None:
    start = time.monotonic()
    with pytest.raises(PermanentError, match="^AMI login refused: Authentication failed$"):
        make_client(secret="wrong")
    assert time.monotonic() - start >= 0.9
    wait_until(lambda: ami_peer.connection_count == 0)


def test_unreachable_pbx_is_transient() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AmiClient(AmiConfig("127.0.0.1", "kefu", "x", port=port), **FAST)
    with pytest.raises(TransientError, match="AMI unreachable"):
        client.connect()
    with pytest.raises(TransientError, match="link is down"):
        client.action("Ping")


def test_actions_answered_with_errors_lists_and_multiline_output(make_client: Callable[..., AmiClient],
                                                                 ami_peer: AmiPeer) -> None:
    client = make_client()
    assert client.action("FooBar")["message"].startswith("Invalid/unknown command: FooBar.")
    output = client.action("Command", Command="core show channels")["output"].splitlines()
    assert output[0].startswith("Channel") and output[1:] == ["0 active channels", "0 active calls",
                                                             "0 calls processed"]
    call_id = ami_peer.ring_inbound(CUSTOMER, "8001")
    listing = client.action("CoreShowChannels")
    assert listing["response"] == "Success"
    assert sorted(e["channel"].split("-")[0] for e in listing["events"]) == ["PJSIP/8001", "PJSIP/trunk"]
    assert all(e["linkedid"] == call_id for e in listing["events"])
    with pytest.raises(ValueError, match="line breaks"):
        client.action("Ping", Note="x\r\nAction: Originate")


def test_parser_is_tolerant() -> None:
    packet = parse_packet(["RESPONSE: Success", "actionid:a1", "Output: one", "Output: two"])
    assert packet == {"response": "Success", "actionid": "a1", "output": "one\ntwo"}
    old_style = parse_packet(["Response: Follows", "Privilege: Command", "Name  State  Time",
                              "8001  Idle   0:00", "--END COMMAND--"])
    assert old_style["output"] == "Name  State  Time\n8001  Idle   0:00"
    assert format_packet([("Action", "Ping"), ("Async", True), ("Variable", ["A=1", "B=2"]),
                          ("CallerID", None)]) == (b"Action: Ping\r\nAsync: true\r\n"
                                                   b"Variable: A=1\r\nVariable: B=2\r\n\r\n")
    assert mask_numbers(f"Exten: {CUSTOMER} Uniqueid: 1795320771.12 PJSIP/8001-00000012") == (
        "Exten: 138****8000 Uniqueid: 1795320771.12 PJSIP/8001-00000012")


# ------------------------------------------------------------------------------------- originate
@pytest.mark.parametrize(("script", "outcome", "reason"), [
    ("answer", "answered", 4), ("busy", "busy", 5), ("noanswer", "no_answer", 1),
    ("congested", "congested", 8), ("fail", "failed", 0),
])
def test_originate_outcomes_are_mapped(make_client: Callable[..., AmiClient], ami_peer: AmiPeer,
                                       script: str, outcome: str, reason: int) -> None:
    ami_peer.script_originate(CUSTOMER, script)
    client = make_client()
    result = client.originate("PJSIP/8001", CUSTOMER, "from-internal", caller_id="10010", timeout_ms=2000)
    assert (result.outcome, result.reason) == (outcome, reason)
    assert bool(result.uniqueid) is (outcome == "answered")
    sent = ami_peer.actions("Originate")[-1]
    assert (sent["channel"], sent["exten"], sent["context"], sent["async"], sent["timeout"]) == (
        "PJSIP/8001", CUSTOMER, "from-internal", "true", "2000")
    assert sent["actionid"] == result.action_id


def test_busy_then_answered_on_a_retry(make_client: Callable[..., AmiClient], ami_peer: AmiPeer) -> None:
    ami_peer.script_originate(CUSTOMER, "busy", "answer")
    client = make_client()
    first = client.originate("Local/8001@agents", CUSTOMER, "from-internal", timeout_ms=1000)
    second = client.originate("Local/8001@agents", CUSTOMER, "from-internal", timeout_ms=1000)
    assert (first.outcome, second.outcome) == ("busy", "answered")
    assert second.channel.startswith("Local/8001@agents-") and second.channel.endswith(";1")


def test_unknown_events_and_a_failing_handler_break_nothing(make_client: Callable[..., AmiClient],
                                                            ami_peer: AmiPeer) -> None:
    seen: list[str] = []

    def handler(event: dict[str, str]) -> None:
        seen.append(event["event"])
        if event["event"] == "VarSet":
            raise RuntimeError("a consumer's bug")

    client = make_client(handler)
    ami_peer.emit("SuccessfulAuth", [("EventTV", "2026-11-23T09:00:00"), ("Severity", "Informational"),
                                     ("Service", "AMI"), ("AccountID", "kefu")], privilege="security,all")
    ami_peer.emit("PeerStatus", [("ChannelType", "PJSIP"), ("Peer", "PJSIP/8001"),
                                 ("PeerStatus", "Reachable")], privilege="system,all")
    ami_peer.ring_inbound(CUSTOMER, "8001")
    assert client.originate("PJSIP/8001", "13900000000", "from-internal", timeout_ms=1000).outcome == "answered"
    assert {"SuccessfulAuth", "PeerStatus", "VarSet", "Newexten", "DialBegin"} <= set(seen)
    assert client.connected and client.logins == 1


# ---------------------------------------------------------------------------- drops, keep-alive
def test_link_drop_fails_the_inflight_originate_then_reconnects(make_client: Callable[..., AmiClient],
                                                                 ami_peer: AmiPeer) -> None:
    ami_peer.script_originate(CUSTOMER, "answer", ring_time=4.0)  # its result comes too late
    client = make_client(originate_grace=0.3)
    thread, out = in_thread(lambda: client.originate("PJSIP/8001", CUSTOMER, "from-internal", timeout_ms=700))
    wait_until(lambda: ami_peer.actions("Originate"))
    ami_peer.drop_connections()
    thread.join(timeout=3)
    assert isinstance(out.get("error"), TransientError) and out["elapsed"] < 2.0
    wait_until(lambda: client.logins == 2 and client.connected)
    assert len(ami_peer.actions("Login")) == 2
    later = client.originate("PJSIP/8001", "13900000000", "from-internal", timeout_ms=1000)
    assert later.outcome == "answered"


def test_originate_result_arriving_after_a_reconnect_is_kept(make_client: Callable[..., AmiClient],
                                                             ami_peer: AmiPeer) -> None:
    """Asterisk sends OriginateResponse to every session, so the new link still delivers it."""
    ami_peer.script_originate(CUSTOMER, "answer", ring_time=0.6)
    client = make_client()
    thread, out = in_thread(lambda: client.originate("PJSIP/8001", CUSTOMER, "from-internal", timeout_ms=2000))
    wait_until(lambda: ami_peer.actions("Originate"))
    ami_peer.drop_connections()
    thread.join(timeout=3)
    assert out["result"].outcome == "answered" and client.logins == 2


def test_pending_action_fails_at_once_when_the_link_drops(make_client: Callable[..., AmiClient],
                                                          ami_peer: AmiPeer) -> None:
    client = make_client()
    ami_peer.mute_connections()
    thread, out = in_thread(lambda: client.action("Ping", timeout=3.0))
    wait_until(lambda: len(ami_peer.actions("Ping")) == 1)
    ami_peer.drop_connections()
    thread.join(timeout=2)
    assert str(out["error"]) == "AMI link dropped" and isinstance(out["error"], TransientError)
    assert out["elapsed"] < 1.0


def test_keep_alive_pings_and_detects_a_half_open_link(make_client: Callable[..., AmiClient],
                                                       ami_peer: AmiPeer) -> None:
    client = make_client(ping_interval=0.1, action_timeout=0.3)
    wait_until(lambda: len(ami_peer.actions("Ping")) >= 2)
    ami_peer.mute_connections()  # the link stays open but nothing comes back
    wait_until(lambda: client.logins >= 2 and client.connected, timeout=3.0)
    pings = len(ami_peer.actions("Ping"))
    wait_until(lambda: len(ami_peer.actions("Ping")) > pings)  # the new link is pinged too


def test_close_sends_logoff_and_stops_reconnecting(make_client: Callable[..., AmiClient],
                                                   ami_peer: AmiPeer) -> None:
    client = make_client()
    client.close()
    assert [a["action"] for a in ami_peer.actions()][-1] == "Logoff"
    assert not client.connected
    time.sleep(0.3)
    assert len(ami_peer.actions("Login")) == 1 and ami_peer.connection_count == 0
    client.close()  # twice is harmless
    with pytest.raises(TransientError):
        client.action("Ping")


def test_start_waits_for_the_pbx_in_the_background(ami_peer: AmiPeer) -> None:
    client = AmiClient(parse_ami_url(ami_peer.url), **FAST)
    client.start()
    try:
        assert client.wait_connected(2.0)
    finally:
        client.close()


# ------------------------------------------------------------------------------------ call tracker
@pytest.mark.parametrize(("channel", "extension"), [
    ("PJSIP/8001-00000012", "8001"), ("SIP/8001-0000abcd", "8001"),
    ("Local/8001@agents-00000003;1", "8001"), ("Local/8001@from-internal-0000000a;2", "8001"),
    ("PJSIP/trunk-0000000b", None), ("PJSIP/8001", None), ("DAHDI/1-1", None), ("", None),
])
def test_extension_of_agent_channels(channel: str, extension: str | None) -> None:
    assert extension_of(channel) == extension


def test_tracker_reports_inbound_ringing_for_that_extension_only(make_client: Callable[..., AmiClient],
                                                                 ami_peer: AmiPeer) -> None:
    rings: list[tuple[str, str, str]] = []
    ended = []
    tracker = CallTracker(on_inbound_ringing=lambda *args: rings.append(args), on_call_ended=ended.append)
    client = make_client(tracker.feed)
    outbound = client.originate("PJSIP/8002", "13900000000", "from-internal", timeout_ms=1000)  # not inbound
    call_id = ami_peer.ring_inbound(CUSTOMER, "8001")
    wait_until(lambda: rings)
    assert rings == [(CUSTOMER, "8001", call_id)]
    ami_peer.answer(call_id)
    ami_peer.hangup(call_id)
    wait_until(lambda: len(ended) == 2)
    records = {r.call_id: r for r in ended}
    inbound = records[call_id]
    assert (inbound.direction, inbound.caller, inbound.called, inbound.extension) == (
        "inbound", CUSTOMER, "10010", "8001")
    assert (inbound.cause, inbound.cause_txt, inbound.customer_number) == (16, "Normal Clearing", CUSTOMER)
    assert inbound.started_at <= inbound.answered_at <= inbound.ended_at
    out = records[outbound.uniqueid]
    assert (out.direction, out.extension, out.called, out.cause) == ("outbound", "8002", "13900000000", 16)
    assert out.answered_at is not None
    assert rings == [(CUSTOMER, "8001", call_id)] and tracker.active_calls() == []
    assert inbound.as_dict()["ended_at"] == inbound.ended_at.isoformat()


def test_tracker_records_an_abandoned_inbound_call(make_client: Callable[..., AmiClient],
                                                   ami_peer: AmiPeer) -> None:
    ended = []
    tracker = CallTracker(on_call_ended=ended.append, clock=lambda: datetime(2026, 11, 23, 1, tzinfo=UTC))
    make_client(tracker.feed)
    call_id = ami_peer.ring_inbound(CUSTOMER, "8003", call_id="1795000000.1")
    wait_until(lambda: tracker.active_calls())
    ami_peer.hangup(call_id)
    wait_until(lambda: ended)
    assert (ended[0].call_id, ended[0].extension, ended[0].answered_at) == ("1795000000.1", "8003", None)


# -------------------------------------------------------------------------------- config, operation
def test_parse_ami_url() -> None:
    config = parse_ami_url("ami://kefu:p%40ss@pbx.example:5039")
    assert (config.host, config.port, config.username, config.secret) == ("pbx.example", 5039, "kefu", "p@ss")
    assert "p@ss" not in repr(config)
    default = parse_ami_url("ami://kefu:x@10.0.0.5?context=outbound&agent_channel=Local/{extension}@agents")
    assert (default.port, default.context, default.agent_channel_for("8001")) == (
        5038, "outbound", "Local/8001@agents")


@pytest.mark.parametrize(("url", "message"), [
    ("", "empty"), ("http://u:s@h:5038", "ami://"), ("ami://u:s@:5038", "no host"),
    ("ami://h:5038", "no user"), ("ami://u@h", "no secret"), ("ami://u:s@h:99999", "invalid port"),
    ("ami://u:s@h:abc", "invalid port"), ("ami://u:s@h/x", "no path"), ("ami://u:s@h?foo=1", "unknown option"),
    ("ami://u:s@h?agent_channel=PJSIP/8001", "{extension}"),
])
def test_parse_ami_url_errors(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")) as info:
        parse_ami_url(url)
    assert ":s@" not in str(info.value)


def test_pbx_originate_operation(make_client: Callable[..., AmiClient], ami_peer: AmiPeer) -> None:
    op = next(o for o in operations(make_client()) if o.name == "pbx.originate")
    assert (op.name, op.idempotent, op.mode, op.required) == (
        "pbx.originate", False, OUTBOX, ("agent_extension", "phone"))
    assert any("\u4e00" <= ch <= "\u9fff" for ch in op.title)
    now = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    result = op.run({"agent_extension": "8001", "phone": "138-0013-8000"}, Call(7, "job-7", 1, now))
    assert result["outcome"] == "answered" and result["attempt_at"] == now.isoformat()
    assert result["uniqueid"] and result["channel"].startswith("PJSIP/8001-")
    sent = ami_peer.actions("Originate")[-1]
    assert (sent["channel"], sent["exten"], sent["context"]) == ("PJSIP/8001", CUSTOMER, "from-internal")
    assert sent["variable"].splitlines() == ["KEFU_JOB_ID=7", "KEFU_ATTEMPT=1"]
    ami_peer.script_originate(CUSTOMER, "busy")
    busy = op.run({"agent_extension": "8001", "phone": CUSTOMER, "context": "outbound", "caller_id": "10010"},
                  Call(7, "job-7", 2, now))
    assert busy["outcome"] == "busy" and ami_peer.actions("Originate")[-1]["callerid"] == "10010"
    for bad in ({"agent_extension": "x", "phone": CUSTOMER}, {"agent_extension": "8001", "phone": "call me"},
                {"agent_extension": "8001", "phone": CUSTOMER, "caller_id": "a\nb"}):
        with pytest.raises(PermanentError):
            op.run(bad, Call(7, "job-7", 3, now))


def test_operation_is_transient_when_the_pbx_is_down(make_client: Callable[..., AmiClient]) -> None:
    client = make_client(connect=False)
    op = next(o for o in operations(client) if o.name == "pbx.originate")
    with pytest.raises(TransientError):
        op.run({"agent_extension": "8001", "phone": CUSTOMER}, Call(1, "k", 1, datetime.now(UTC)))


def test_phone_numbers_are_masked_in_logs(make_client: Callable[..., AmiClient],
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kefu.pbx")
    client = make_client()
    client.originate("PJSIP/8001", CUSTOMER, "from-internal", timeout_ms=1000)
    assert "138****8000" in caplog.text and CUSTOMER not in caplog.text
    assert "s3cret" not in caplog.text
