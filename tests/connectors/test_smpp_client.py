"""The SMPP client against the loopback SMSC (node-smpp's server, a separate implementation): bind,
encodings and concatenation, pipelining under a window and a pace, throttling, link drops, receipts,
MO messages, keep-alive and unbind. Plus the URL parser and the text helpers, without the peer."""

from __future__ import annotations

import dataclasses
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.base import PermanentError, TransientError
from connectors.sms import SmppClient, SmppConfig, SubmitResult, parse_smpp_url
from connectors.sms.text import encode_message, mask_number, parse_receipt, receipt_submit_time, split_udh

pytest_plugins = ["tests.peers.smsc"]
slow = pytest.mark.slow  # the project marks tests that start processes; these take well under a second

CUSTOMER = "13800000001"
LONG_CHINESE = "".join(chr(0x4E00 + (i * 37) % 0x5000) for i in range(200))


def _config(peer: Any, **changes: Any) -> SmppConfig:
    return dataclasses.replace(parse_smpp_url(peer.url), **changes)


@pytest.fixture
def client_for() -> Iterator[Callable[..., SmppClient]]:
    """Make clients that are closed after the test, whatever happens."""
    clients: list[SmppClient] = []

    def make(config: SmppConfig, **handlers: Any) -> SmppClient:
        clients.append(SmppClient(config, **handlers))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def _send_all(client: SmppClient, texts: list[str], threads: int,
              errors: list[str] | None = None) -> list[SubmitResult]:
    """Submit from several threads, retrying TransientError as the outbox would (noted in ``errors``)."""
    def send(text: str) -> SubmitResult:
        for _attempt in range(10):
            try:
                return client.submit(CUSTOMER, text)
            except TransientError as exc:
                if errors is not None:
                    errors.append(str(exc))
                time.sleep(0.05)
        raise AssertionError(f"{text!r} was never accepted")

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(send, texts))


def _wait(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# -- bind ------------------------------------------------------------------------------------------

@slow
def test_binds_as_transceiver(smsc, client_for):
    client = client_for(_config(smsc))
    client.connect()
    assert client.bound
    assert smsc.stats()["binds"] == 1


@slow
def test_a_wrong_password_is_a_permanent_error_naming_the_status(smsc, client_for):
    client = client_for(dataclasses.replace(_config(smsc), password="wrong"))
    with pytest.raises(PermanentError, match=r"SMSC refused the bind: ESME_RINVPASWD \(invalid password\)"):
        client.connect()
    with pytest.raises(PermanentError, match="ESME_RINVPASWD"):  # submit binds on first use
        client.submit(CUSTOMER, "hello")
    assert smsc.stats()["bind_failures"] == 2


def test_an_smsc_not_listening_is_a_transient_error_at_once(client_for):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = client_for(parse_smpp_url(f"smpp://kefu:secret@127.0.0.1:{port}?timeout=2"))
    started = time.monotonic()
    with pytest.raises(TransientError, match=f"cannot connect to SMSC 127.0.0.1:{port}"):
        client.submit(CUSTOMER, "hello")
    assert time.monotonic() - started < 1


# -- encodings and concatenation ------------------------------------------------------------------------

@slow
def test_a_short_chinese_message_arrives_as_ucs2(smsc, client_for):
    text = "您好，您的投诉（编号 C-1024）已受理，我们将在 24 小时内回复。"
    result = client_for(_config(smsc)).submit(CUSTOMER, text)
    [message] = smsc.wait_for(lambda peer: peer.messages())
    assert message["text"] == text
    assert message["data_coding"] == 8
    assert (message["source"], message["destination"]) == ("10010", CUSTOMER)
    assert message["message_ids"] == result.message_ids
    assert result.parts == 1


@slow
def test_plain_ascii_uses_the_default_alphabet_and_other_latin_text_ucs2(smsc, client_for):
    client = client_for(_config(smsc))
    client.submit(CUSTOMER, "Your code is 1234.")
    client.submit(CUSTOMER, "Mail us: kefu@example.com")  # '@' differs between GSM 03.38 and ASCII
    plain, mail = smsc.wait_for(lambda peer: len(peer.messages()) == 2 and peer.messages())
    assert (plain["text"], plain["data_coding"]) == ("Your code is 1234.", 0)
    assert (mail["text"], mail["data_coding"]) == ("Mail us: kefu@example.com", 8)


@slow
def test_a_long_chinese_message_is_split_with_udh_and_reassembled_exactly(smsc, client_for):
    result = client_for(_config(smsc)).submit(CUSTOMER, LONG_CHINESE, source="10086")
    [message] = smsc.wait_for(lambda peer: peer.messages())
    assert message["text"] == LONG_CHINESE
    assert message["source"] == "10086"
    assert result.parts == message["parts"] == 3  # 67 + 67 + 66 characters
    parts = smsc.parts()
    assert [(p["part"], p["total"]) for p in parts] == [(1, 3), (2, 3), (3, 3)]
    assert len({p["reference"] for p in parts}) == 1
    assert [p["message_id"] for p in parts] == result.message_ids


def test_a_character_outside_the_bmp_is_never_split_between_parts():
    text = "好" * 66 + "😀" + "好" * 10  # the emoji's two UTF-16 units straddle the 67-unit boundary
    encoded = encode_message(text, reference=7)
    bodies = [split_udh(encoded.esm_class, part)[1] for part in encoded.parts]
    assert [body.decode("utf-16-be") for body in bodies] == ["好" * 66, "😀" + "好" * 10]
    assert all(len(part) <= 140 for part in encoded.parts)


# -- pipelining, throttling, link drops -----------------------------------------------------------------

@slow
def test_fifty_concurrent_submits_arrive_once_within_the_window_and_pace(smsc, client_for):
    smsc.configure(response_delay_ms=60, receipts=False)  # slower than the pace: the window is the limit
    client = client_for(_config(smsc, window=4, mps=100))
    client.connect()
    texts = [f"第{n}条通知" for n in range(50)]
    results = _send_all(client, texts, threads=8)
    assert Counter(m["text"] for m in smsc.messages()) == Counter(texts)
    assert len({r.message_ids[0] for r in results}) == 50
    stats = smsc.stats()
    assert stats["max_outstanding"] == 4  # the window was used, and never exceeded
    assert stats["binds"] == 1
    assert _span(smsc.parts()) >= 49 / 100 - 0.01


@slow
def test_the_pace_keeps_to_the_messages_per_second(smsc, client_for):
    smsc.configure(receipts=False)
    client = client_for(_config(smsc, mps=50))
    _send_all(client, [f"pace {n}" for n in range(20)], threads=4)
    # Each send waits for a time slot 1/mps after the previous one's: 19 gaps of 20 ms at least.
    assert _span(smsc.parts()) >= 19 / 50 - 0.01


def _span(parts: list[dict]) -> float:
    """Seconds from the first submit_sm to the last, as the SMSC saw them."""
    times = [datetime.fromisoformat(part["submitted_at"]) for part in parts]
    return (max(times) - min(times)).total_seconds()


@slow
def test_throttled_submits_are_resent_until_accepted_exactly_once(smsc, client_for):
    smsc.configure(throttle_every=3, receipts=False)
    client = client_for(_config(smsc, mps=0))
    texts = [f"throttle test {n}" for n in range(20)]
    _send_all(client, texts, threads=4)
    assert Counter(m["text"] for m in smsc.messages()) == Counter(texts)
    stats = smsc.stats()
    assert stats["accepted"] == 20
    assert stats["throttled"] >= 9  # every third submit_sm, resends included


@slow
def test_after_a_link_drop_the_client_rebinds_and_retried_messages_arrive_once(smsc, client_for):
    # The held responses make sure other threads' submit_sm are on the wire when the link drops.
    smsc.configure(drop_after=5, response_delay_ms=20, receipts=False)
    client = client_for(_config(smsc, mps=0))
    client.connect()
    texts = [f"链路中断测试 {n}" for n in range(20)]
    errors: list[str] = []
    _send_all(client, texts, threads=4, errors=errors)
    assert errors
    assert all(error.startswith("link dropped before submit_sm_resp") for error in errors), errors
    assert Counter(m["text"] for m in smsc.messages()) == Counter(texts)
    stats = smsc.stats()
    assert (stats["drops"], stats["binds"]) == (1, 2)
    assert client.bound


@slow
def test_a_submit_while_the_smsc_is_down_fails_transiently_after_the_timeout(smsc, client_for):
    client = client_for(_config(smsc, timeout=0.5))
    client.connect()
    smsc.stop()
    started = time.monotonic()
    with pytest.raises(TransientError):
        client.submit(CUSTOMER, "hello")
    assert time.monotonic() - started < 2


@slow
def test_refused_rebinds_fail_submits_by_kind_until_the_smsc_accepts_again(smsc, client_for):
    client = client_for(_config(smsc, timeout=0.5))
    client.connect()
    smsc.configure(refuse_all_binds=True)  # as when the SMSC has not yet cleared the old session
    smsc.drop()
    _wait(lambda: not client.bound)
    with pytest.raises(TransientError, match=r"not bound .*last attempt: SMSC refused the bind: ESME_RBINDFAIL"):
        client.submit(CUSTOMER, "hello")

    smsc.configure(refuse_all_binds=False, password="changed")  # as if an operator changed it
    failures = smsc.stats()["bind_failures"]
    smsc.wait_for(lambda peer: peer.stats()["bind_failures"] > failures, timeout=3)
    with pytest.raises(PermanentError, match="SMSC refused the bind: ESME_RINVPASWD"):
        client.submit(CUSTOMER, "hello")

    smsc.configure(password="secret")
    _wait(lambda: client.bound)  # the re-bind backoff has grown to a second or two by now
    assert client.submit(CUSTOMER, "hello again").parts == 1
    assert smsc.stats()["binds"] == 2


@slow
def test_rejections_are_permanent_for_bad_numbers_and_transient_for_system_errors(smsc, client_for):
    smsc.configure(reject_destinations={"13800000003": "ESME_RINVDSTADR", "13800000004": "ESME_RSYSERR"})
    client = client_for(_config(smsc))
    with pytest.raises(PermanentError, match=r"138\*\*\*\*0003: ESME_RINVDSTADR"):
        client.submit("13800000003", "hello")
    with pytest.raises(TransientError, match="ESME_RSYSERR"):
        client.submit("13800000004", "hello")
    with pytest.raises(PermanentError, match="invalid destination"):
        client.submit("call me", "hello")


# -- receipts and MO messages ----------------------------------------------------------------------------

@slow
def test_receipts_reach_on_receipt_with_the_submitted_message_id(smsc, client_for):
    smsc.configure(receipt_delay_ms=10, receipt_stat_by_destination={"13800000002": "UNDELIV"})
    receipts: queue.Queue[tuple[str, str, dict]] = queue.Queue()
    client = client_for(_config(smsc), on_receipt=lambda *args: receipts.put(args))
    delivered = client.submit(CUSTOMER, "您的话费余额不足 10 元。", tag="job-1")
    message_id, state, raw = receipts.get(timeout=5)
    assert (message_id, state) == (delivered.message_ids[0], "delivered")
    assert raw["stat"] == "DELIVRD"
    assert raw["source"] == CUSTOMER
    assert raw["submit_tag"] == "job-1"  # the receipt names its submit, whatever the id

    failed = client.submit("13800000002", "hello")
    message_id, state, raw = receipts.get(timeout=5)
    assert (message_id, state) == (failed.message_ids[0], "undeliverable")
    assert "submit_tag" not in raw
    smsc.send_receipt(delivered.message_ids[0], "EXPIRED")
    assert receipts.get(timeout=5)[:2] == (delivered.message_ids[0], "expired")


@slow
def test_a_receipt_names_only_a_submit_of_its_own_bind_not_one_from_before_an_smsc_restart(smsc_factory, client_for):
    """A client that sent id 1 before the SMSC restarted must not tag the receipt of the text the
    restarted SMSC gave id 1 — another bind's, here — with its own old job (issue 17 item 2)."""
    smsc = smsc_factory(receipts=False, receipt_route="other")
    receipts: queue.Queue[tuple[str, str, dict]] = queue.Queue()
    old = client_for(_config(smsc), on_receipt=lambda *args: receipts.put(args))
    (before,) = old.submit(CUSTOMER, "before the restart", tag="job-old").message_ids

    port = smsc.smpp_port
    smsc.stop()
    restarted = smsc_factory(port=port, receipt_delay_ms=10, receipt_route="other")
    restarted.wait_for(lambda p: p.stats()["bound"] == 1, timeout=10)  # the old client bound again
    other = client_for(_config(restarted))
    (after,) = other.submit("13800000002", "after the restart", tag="job-new").message_ids
    assert after == before  # the id is given again
    message_id, state, raw = receipts.get(timeout=5)  # handed to the bind that did not submit
    assert (message_id, state, raw["source"]) == (after, "delivered", "13800000002")
    assert "submit_tag" not in raw  # not "job-old"
    submitted = datetime.fromisoformat(raw["submitted_at"])  # the receipt's submit date, in UTC
    assert timedelta(0) <= datetime.now(UTC) - submitted < timedelta(minutes=2)


@slow
def test_mo_messages_reach_on_mo_with_exact_text_and_a_failing_handler_does_no_harm(smsc, client_for):
    received: queue.Queue[tuple[str, str, str]] = queue.Queue()

    def on_mo(source: str, destination: str, text: str) -> None:
        received.put((source, destination, text))
        if text == "boom":
            raise RuntimeError("handler bug")

    client = client_for(_config(smsc), on_mo=on_mo)
    client.connect()
    smsc.send_mo(CUSTOMER, "10010", "boom")
    assert received.get(timeout=5)[2] == "boom"
    smsc.send_mo(CUSTOMER, "10010", "1")
    assert received.get(timeout=5) == (CUSTOMER, "10010", "1")
    smsc.send_mo(CUSTOMER, "10010", "满意")
    assert received.get(timeout=5)[2] == "满意"
    assert smsc.send_mo(CUSTOMER, "10010", LONG_CHINESE)["parts"] == 3
    assert received.get(timeout=5) == (CUSTOMER, "10010", LONG_CHINESE)
    smsc.wait_for(lambda peer: peer.stats()["deliver_sm_resp"] == 6)  # every part acknowledged


# -- keep-alive and unbind -------------------------------------------------------------------------------

@slow
def test_enquire_link_keeps_the_link_alive(smsc, client_for):
    client_for(_config(smsc, enquire_link=0.1)).connect()
    smsc.wait_for(lambda peer: peer.stats()["enquire_links"] >= 3, timeout=2)


@slow
def test_close_unbinds_and_later_submits_fail(smsc):
    with SmppClient(_config(smsc)) as client:
        client.submit(CUSTOMER, "bye")
    assert smsc.stats()["unbinds"] == 1
    assert not client.bound
    assert not [t for t in threading.enumerate() if t.name.startswith("kefu-smpp")]
    with pytest.raises(TransientError, match="closed"):
        client.submit(CUSTOMER, "too late")


# -- configuration and helpers ---------------------------------------------------------------------------

def test_parses_the_url_with_defaults_and_options():
    config = parse_smpp_url("smpp://kefu:p%40ss@smsc.example.com?source=10010&window=20&mps=50"
                            "&enquire_link=15&timeout=5")
    assert (config.host, config.port, config.system_id, config.password) == (
        "smsc.example.com", 2775, "kefu", "p@ss")
    assert (config.source, config.window, config.mps, config.enquire_link, config.timeout) == (
        "10010", 20, 50.0, 15.0, 5.0)
    assert "p@ss" not in repr(config) + str(config)


@pytest.mark.parametrize(("url", "message"), [
    ("http://kefu:secret@host:2775", "must start with smpp://"),
    ("smpp://host:2775", "no system_id"),
    ("smpp://kefu:secret@:2775", "no host"),
    ("smpp://kefu:secret@host:99999", "invalid port"),
    ("smpp://a_very_long_system:secret@host", "system_id 'a_very_long_system' is 18 characters"),
    ("smpp://kefu:password9@host", "password is 9 characters; SMPP 3.4 allows at most 8"),
    ("smpp://kefu:secret@host?windw=3", "unknown parameter"),
    ("smpp://kefu:secret@host?window=many", "window='many' is not a number"),
    ("smpp://kefu:secret@host?window=0", "window must be at least 1"),
])
def test_bad_urls_are_refused_with_a_clear_message(url, message):
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace("*", r"\*")):
        parse_smpp_url(url)


def test_receipt_text_and_masking():
    fields = parse_receipt("id:1A2B sub:001 dlvrd:000 submit date:2611230900 done date:2611230901 "
                           "stat:UNDELIV err:012 text:id:99 stat:DELIVRD")
    assert (fields["id"], fields["stat"], fields["done date"]) == ("1A2B", "UNDELIV", "2611230901")
    assert fields["text"] == "id:99 stat:DELIVRD"
    assert mask_number("13800000001") == "138****0001"


def test_a_receipts_submit_date_is_read_in_the_smscs_zone_and_distrusted_when_it_cannot_be_right():
    now = datetime(2026, 11, 23, 1, 5, 30, tzinfo=UTC)  # 09:05:30 in Beijing
    beijing = {"submit date": "2611230904", "done date": "2611230905"}
    assert receipt_submit_time(beijing, ZoneInfo("Asia/Shanghai"), now) == datetime(2026, 11, 23, 1, 4, tzinfo=UTC)
    assert receipt_submit_time(beijing, timezone(timedelta(hours=8)), now) == datetime(2026, 11, 23, 1, 4,
                                                                                       tzinfo=UTC)
    with_seconds = {"submit date": "261123090412", "done date": "261123090501"}
    assert receipt_submit_time(with_seconds, ZoneInfo("Asia/Shanghai"), now) == datetime(2026, 11, 23, 1, 4,
                                                                                         tzinfo=UTC)
    # Read as UTC, Beijing dates lie 8 hours ahead: the zone is wrong, the dates are not used.
    assert receipt_submit_time(beijing, UTC, now) is None
    # A receipt that comes late (the link was down) keeps its submit date.
    assert receipt_submit_time(beijing, ZoneInfo("Asia/Shanghai"), now + timedelta(hours=3)) is not None
    assert receipt_submit_time({"submit date": "2611231004", "done date": "2611230905"},
                               ZoneInfo("Asia/Shanghai"), now) is None  # submitted after it was done
    for fields in ({}, {"submit date": "yesterday"}, {"submit date": "2613450000"}):
        assert receipt_submit_time(fields, UTC, now) is None
    assert parse_smpp_url("smpp://kefu:secret@smsc?receipt_tz=Asia/Shanghai").receipt_tz == ZoneInfo("Asia/Shanghai")
    assert parse_smpp_url("smpp://kefu:secret@smsc?receipt_tz=%2B08:00").receipt_tz == timezone(timedelta(hours=8))
    assert parse_smpp_url("smpp://kefu:secret@smsc?receipt_tz=UTC").receipt_tz == UTC
    assert parse_smpp_url("smpp://kefu:secret@smsc").receipt_tz is None  # this host's zone
    with pytest.raises(ValueError, match="receipt_tz='Mars/Olympus' is not a time zone"):
        parse_smpp_url("smpp://kefu:secret@smsc?receipt_tz=Mars/Olympus")


@slow
def test_query_sm_says_whether_the_smsc_has_a_message_and_its_state(smsc, client_for):
    smsc.configure(receipt_delay_ms=300, receipt_stat_by_destination={"13800000002": "UNDELIV"})
    client = client_for(_config(smsc))
    noted: list[str] = []
    sent = client.submit(CUSTOMER, LONG_CHINESE, on_accepted=noted.append)
    assert noted == sent.message_ids and len(noted) == 3  # each part's id as soon as it is accepted
    first = client.query(sent.message_ids[0])
    assert first.found and first.state == "ENROUTE" and first.final_date == ""
    failed = client.submit("13800000002", "hello")
    _wait(lambda: client.query(sent.message_ids[2]).state == "DELIVERED")
    _wait(lambda: client.query(failed.message_ids[0]).state != "ENROUTE")
    later = client.query(failed.message_ids[0])
    assert later.found and later.state == "UNDELIVERABLE" and later.final_date
    assert client.query("0000009999") == client.query("0000009999")  # repeatable
    assert not client.query("0000009999").found
    assert not client.query(sent.message_ids[0], source="10086").found  # another sender's view
    assert smsc.stats()["queries"] >= 6
