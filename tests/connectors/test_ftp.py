"""The FTP exchange client and the ``ftp.*`` operations against the loopback pyftpdlib peer over real
TCP on 127.0.0.1 (no mocks): the .part/.sent/.ok marks, re-uploads, a server down, a link cut
mid-upload, a refused login, the inbox flow and the URL parser."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import OUTBOX, Call, NotReady, PermanentError, TransientError
from connectors.ftp import FtpConfig, FtpExchangeClient, check_name, operations, parse_ftp_url
from peers.ftp import FtpPeer

CALL = Call(job_id=1, key="job-1", attempt=1, now=datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
BIG = bytes(range(256)) * 4096  # 1 MiB: far more than one read of the server's data channel


@pytest.fixture
def ftp_peer() -> Iterator[FtpPeer]:
    """A started loopback FTP peer on a free port, with a short pause after a wrong password."""
    peer = FtpPeer().start(password="s3cret", auth_fail_delay=0.05)
    yield peer
    peer.close()


def make_client(peer: FtpPeer, query: str = "", password: str | None = None) -> FtpExchangeClient:
    url = peer.url if password is None else peer.url.replace(f":{peer.password}@", f":{password}@")
    return FtpExchangeClient(parse_ftp_url(url + ("?timeout=5" + query)))


@pytest.fixture
def client(ftp_peer: FtpPeer) -> FtpExchangeClient:
    return make_client(ftp_peer)


# ---------------------------------------------------------------------- upload
def test_upload_stores_the_file_and_its_sent_mark_without_a_part_left(
        ftp_peer: FtpPeer, client: FtpExchangeClient) -> None:
    sent = client.upload("arrears-202611.csv", b"phone,amount\n13800138000,1200\n")
    assert sent == {"name": "arrears-202611.csv", "size": 30,
                    "sha256": hashlib.sha256(b"phone,amount\n13800138000,1200\n").hexdigest()}
    assert ftp_peer.files() == ["arrears-202611.csv", "arrears-202611.csv.sent"]
    assert ftp_peer.read("arrears-202611.csv") == b"phone,amount\n13800138000,1200\n"
    assert ftp_peer.read("arrears-202611.csv.sent") == b""


def test_acknowledged_once_the_receiver_writes_the_ok_mark(ftp_peer: FtpPeer, client: FtpExchangeClient) -> None:
    client.upload("a.csv", b"1")
    assert client.acknowledged("a.csv") is False
    ftp_peer.ack("a.csv")
    assert client.acknowledged("a.csv") is True
    assert client.acknowledged("other.csv") is False


def test_upload_again_under_the_same_name_leaves_exactly_one_file(
        ftp_peer: FtpPeer, client: FtpExchangeClient) -> None:
    client.upload("a.csv", b"first")
    ftp_peer.ack("a.csv")
    (ftp_peer.root / "a.csv.part").write_bytes(b"stale half of an earlier try")
    client.upload("a.csv", b"second")
    assert ftp_peer.files() == ["a.csv", "a.csv.sent"]
    assert ftp_peer.read("a.csv") == b"second"
    # The old success mark acknowledged the old content, not this one.
    assert client.acknowledged("a.csv") is False


def test_upload_to_a_configured_folder(ftp_peer: FtpPeer) -> None:
    (ftp_peer.root / "up").mkdir()
    client = make_client(ftp_peer, "&outbox=up")
    client.upload("a.csv", b"x")
    ftp_peer.ack("up/a.csv")
    assert client.acknowledged("a.csv")
    assert ftp_peer.files() == ["up/a.csv", "up/a.csv.ok", "up/a.csv.sent"]


def test_a_missing_folder_is_permanent(ftp_peer: FtpPeer) -> None:
    with pytest.raises(PermanentError, match="folder 'nowhere'"):
        make_client(ftp_peer, "&outbox=nowhere").upload("a.csv", b"x")


# ---------------------------------------------------------------------- faults
def test_server_down_is_transient_and_the_upload_succeeds_once_it_is_back(
        ftp_peer: FtpPeer, client: FtpExchangeClient) -> None:
    port = ftp_peer.port
    ftp_peer.stop()
    with pytest.raises(TransientError, match="unreachable"):
        client.upload("a.csv", b"x")
    with pytest.raises(TransientError):
        client.acknowledged("a.csv")
    ftp_peer.start()
    assert ftp_peer.port == port
    assert client.upload("a.csv", b"x")["size"] == 1
    assert ftp_peer.files() == ["a.csv", "a.csv.sent"]


def test_a_link_cut_mid_upload_is_transient_leaves_no_truncated_file_and_the_retry_replaces_it(
        ftp_peer: FtpPeer, client: FtpExchangeClient) -> None:
    ftp_peer.drop_upload_after(64 * 1024)
    with pytest.raises(TransientError):
        client.upload("big.bin", BIG)
    assert ftp_peer.drops == 1
    assert ftp_peer.files() == ["big.bin.part"]  # truncated, and never under the real name
    assert len(ftp_peer.read("big.bin.part")) < len(BIG)

    client.upload("big.bin", BIG)
    assert ftp_peer.files() == ["big.bin", "big.bin.sent"]
    assert ftp_peer.read("big.bin") == BIG


def test_a_wrong_password_is_permanent(ftp_peer: FtpPeer) -> None:
    client = make_client(ftp_peer, password="wrong")
    with pytest.raises(PermanentError, match="refused the login of user 'kefu'") as refused:
        client.upload("a.csv", b"x")
    assert "wrong" not in str(refused.value)
    assert ftp_peer.files() == []


def test_an_unreachable_port_is_transient() -> None:
    with socket.socket() as probe:  # a port nobody listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = FtpExchangeClient(parse_ftp_url(f"ftp://kefu:x@127.0.0.1:{port}/?timeout=2"))
    with pytest.raises(TransientError, match="unreachable"):
        client.list_incoming()


def test_a_server_that_never_answers_times_out_as_transient() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never sends the banner
        port = silent.getsockname()[1]
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
        client = FtpExchangeClient(parse_ftp_url(f"ftp://kefu:x@127.0.0.1:{port}/?timeout=0.3"))
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out"):
            client.acknowledged("a.csv")
        assert time.monotonic() - started < 2
        for sock in accepted:
            sock.close()


# ---------------------------------------------------------------------- download side
def test_incoming_files_are_listed_downloaded_and_acknowledged(
        ftp_peer: FtpPeer, client: FtpExchangeClient) -> None:
    assert client.list_incoming() == []
    ftp_peer.offer("orders-2.csv", b"two")
    ftp_peer.offer("orders-1.csv", "一,二\n".encode())
    ftp_peer.offer("done.csv", b"old")
    (ftp_peer.root / "inbox" / "done.csv.ok").write_bytes(b"")
    (ftp_peer.root / "inbox" / "unsent.csv").write_bytes(b"still being written")
    (ftp_peer.root / "inbox" / "half.csv.part").write_bytes(b"h")

    assert client.list_incoming() == ["orders-1.csv", "orders-2.csv"]
    assert client.download("orders-1.csv") == "一,二\n".encode()
    client.acknowledge("orders-1.csv")
    assert ftp_peer.read("inbox/orders-1.csv.ok") == b""
    assert client.list_incoming() == ["orders-2.csv"]
    client.acknowledge("orders-1.csv")  # again: harmless
    assert client.list_incoming() == ["orders-2.csv"]


def test_downloading_a_missing_file_is_permanent(client: FtpExchangeClient) -> None:
    with pytest.raises(PermanentError, match="download of 'nothing.csv'"):
        client.download("nothing.csv")


def test_a_configured_inbox_folder(ftp_peer: FtpPeer) -> None:
    (ftp_peer.root / "from-centre").mkdir()
    (ftp_peer.root / "from-centre" / "x.txt").write_bytes(b"x")
    (ftp_peer.root / "from-centre" / "x.txt.sent").write_bytes(b"")
    client = make_client(ftp_peer, "&inbox=from-centre")
    assert client.list_incoming() == ["x.txt"]
    assert client.download("x.txt") == b"x"


# ---------------------------------------------------------------------- names
@pytest.mark.parametrize("name", [
    "", "a/b.csv", "..", "a..b", "../etc", "a\\b", "a\r\nDELE x", "tab\there", "x" * 201, ".hidden",
    " padded.csv", "a.csv.part", "a.csv.sent", "a.csv.ok",
])
def test_bad_names_are_refused_before_connecting(ftp_peer: FtpPeer, client: FtpExchangeClient, name: str) -> None:
    ftp_peer.stop()  # a refused name must not even try the server
    with pytest.raises(PermanentError):
        check_name(name)
    for call in (lambda: client.upload(name, b"x"), lambda: client.acknowledged(name),
                 lambda: client.download(name), lambda: client.acknowledge(name)):
        with pytest.raises(PermanentError):
            call()


def test_long_and_unicode_names_are_fine(ftp_peer: FtpPeer, client: FtpExchangeClient) -> None:
    for name in ("x" * 200, "恶意欠费档案-202611.csv"):
        assert check_name(name) == name
        client.upload(name, b"1")
    assert sorted(ftp_peer.files()) == sorted(["x" * 200, "x" * 200 + ".sent", "恶意欠费档案-202611.csv",
                                               "恶意欠费档案-202611.csv.sent"])


# ---------------------------------------------------------------------- operations
def test_the_operations_are_outbox_operations(client: FtpExchangeClient) -> None:
    ops = {op.name: op for op in operations(client)}
    assert set(ops) == {"ftp.upload", "ftp.check_ack", "ftp.collect", "ftp.acknowledge"}
    assert ops["ftp.upload"].required == ("name",)
    assert set(ops["ftp.upload"].optional) == {"content", "content_b64"}
    assert ops["ftp.check_ack"].required == ("name",)
    assert all(op.mode == OUTBOX and op.idempotent and op.title for op in ops.values())


def test_ftp_upload_sends_text_as_utf8_or_base64(ftp_peer: FtpPeer, client: FtpExchangeClient) -> None:
    upload = {op.name: op for op in operations(client)}["ftp.upload"]
    result = upload.run({"name": "t.txt", "content": "欠费"}, CALL)
    assert result == {"name": "t.txt", "size": 6, "sha256": hashlib.sha256("欠费".encode()).hexdigest(),
                      "peer_refs": {"kind": "ftp", "ids": ["t.txt"]}}
    assert ftp_peer.read("t.txt") == "欠费".encode()
    upload.run({"name": "b.bin", "content_b64": base64.b64encode(b"\x00\xff").decode()}, CALL)
    assert ftp_peer.read("b.bin") == b"\x00\xff"


@pytest.mark.parametrize("params", [
    {"name": "a"}, {"name": "a", "content": "x", "content_b64": "eA=="}, {"name": "a", "content_b64": "not base64!"},
    {"name": "a", "content": 12}, {"name": None, "content": "x"}, {"name": "../a", "content": "x"},
])
def test_ftp_upload_refuses_bad_parameters(ftp_peer: FtpPeer, client: FtpExchangeClient,
                                           params: dict[str, object]) -> None:
    upload = {op.name: op for op in operations(client)}["ftp.upload"]
    with pytest.raises(PermanentError):
        upload.run(params, CALL)
    assert ftp_peer.files() == []


def test_ftp_check_ack_is_not_ready_until_the_mark_appears(ftp_peer: FtpPeer, client: FtpExchangeClient) -> None:
    ops = {op.name: op for op in operations(client, poll_delay=timedelta(seconds=7))}
    ops["ftp.upload"].run({"name": "a.csv", "content": "x"}, CALL)
    with pytest.raises(NotReady) as waiting:
        ops["ftp.check_ack"].run({"name": "a.csv"}, CALL)
    assert waiting.value.delay == timedelta(seconds=7)
    ftp_peer.ack("a.csv")
    assert ops["ftp.check_ack"].run({"name": "a.csv"}, CALL) == {"name": "a.csv", "acknowledged": True}


def test_ftp_check_ack_while_the_server_is_down_is_transient(ftp_peer: FtpPeer, client: FtpExchangeClient) -> None:
    check_ack = {op.name: op for op in operations(client)}["ftp.check_ack"]
    ftp_peer.stop()
    with pytest.raises(TransientError):
        check_ack.run({"name": "a.csv"}, CALL)


# ---------------------------------------------------------------------- URL
def test_parse_ftp_url() -> None:
    config = parse_ftp_url("ftp://kefu:p%40ss@ftp.example.net:2121/exchange/kefu")
    assert config == FtpConfig(host="ftp.example.net", port=2121, user="kefu", password="p@ss",
                               root="exchange/kefu", tls=False, timeout=30.0, upload_dir="exchange/kefu",
                               inbox_dir="exchange/kefu/inbox")
    assert "p@ss" not in repr(config) and "p@ss" not in str(config)


def test_parse_ftps_url_sets_tls_and_the_default_port() -> None:
    config = parse_ftp_url("ftps://kefu:pw@ftp.example.net")
    assert (config.tls, config.port, config.root, config.upload_dir, config.inbox_dir) == (
        True, 21, "", "", "inbox")


def test_parse_ftp_url_folders() -> None:
    config = parse_ftp_url("ftp://u:p@h/%2Fdata/kefu/?inbox=down&outbox=up&timeout=5")
    assert (config.root, config.upload_dir, config.inbox_dir, config.timeout) == (
        "/data/kefu", "/data/kefu/up", "/data/kefu/down", 5.0)
    config = parse_ftp_url("ftp://u:p@h/x?inbox=/abs/in")
    assert (config.upload_dir, config.inbox_dir) == ("x", "/abs/in")
    assert parse_ftp_url("ftp://u:p@h/%2F").inbox_dir == "/inbox"


@pytest.mark.parametrize(("url", "message"), [
    ("", "empty"),
    ("sftp://u:p@h/", "must start with ftp:// or ftps://"),
    ("ftp:///path", "no host"),
    ("ftp://h/", "no user name"),
    ("ftp://u@h/", "no password"),
    ("ftp://u:p@h:99999/", "invalid port"),
    ("ftp://u:p@h:0/", "invalid port"),
    ("ftp://u:p@h/?passive=no", "unknown parameter"),
    ("ftp://u:p@h/?timeout=soon", "not a number"),
    ("ftp://u:p@h/?timeout=0", "more than 0"),
    ("ftp://u:p@h/?inbox=a&inbox=b", "repeats"),
    ("ftp://u:p@h/../etc", "'..'"),
    ("ftp://u:p%0A@h/", "line break"),
])
def test_parse_ftp_url_refuses_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        parse_ftp_url(url)
    assert "p%0A" not in str(refused.value)


def test_ftp_collect_fetches_offered_files_and_acknowledge_marks_them(ftp_peer: FtpPeer,
                                                                      client: FtpExchangeClient) -> None:
    ops = {op.name: op for op in operations(client)}
    ftp_peer.offer("SPEC_1.txt", "规范".encode())
    call = Call(job_id=1, key="k", attempt=1, now=datetime.now(UTC), instance_id=None)
    (item,) = ops["ftp.collect"].run({}, call)["files"]
    assert item["name"] == "SPEC_1.txt" and base64.b64decode(item["content_b64"]) == "规范".encode()
    assert client.list_incoming() == ["SPEC_1.txt"]  # collecting acknowledges nothing
    ops["ftp.acknowledge"].run({"name": "SPEC_1.txt"}, call)
    assert client.list_incoming() == []
