"""The file exchange end to end: the product's tick, the outbox and the FTP connector against a
real FTP server on loopback (pyftpdlib) — sent marks, the receiver's success mark, a missed mark
sent again under the same name then an incident, a server that is down, offered files collected,
recorded once and confirmed, and the API."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from engine import outbox
from peers.ftp import FtpPeer
from processes import file_exchange
from processes.tick import tick
from tests.conftest import T0
from web.connectors_setup import use_ftp

LIMIT = timedelta(hours=1)


@pytest.fixture
def ftp(app, ctx):
    peer = FtpPeer().start(port=0, user="kefu", password=secrets.token_hex(8))
    use_ftp(app, peer.url)
    yield ctx[0], ctx[1], peer
    peer.close()


def _tick(session, engine, now, collect=False):
    return tick(session, engine, now, ftp_ack_limit=LIMIT, collect_files=collect)


def _row(session, row_id):
    session.expire_all()
    return session.get(file_exchange.FileExchange, row_id)


def test_a_file_goes_up_with_its_marks_and_is_acknowledged(ftp):
    session, engine, peer = ftp
    row = file_exchange.send_file(session, "QF_202611.txt", "malicious_arrears", "13800000001|12345\n", T0)
    session.commit()
    _tick(session, engine, T0)  # the upload job runs
    _tick(session, engine, T0)  # … and the exchange moves to "sent"
    assert {"QF_202611.txt", "QF_202611.txt.sent"} <= set(peer.files())
    assert not [f for f in peer.files() if f.endswith(".part")]
    assert _row(session, row.id).status == "sent"
    _tick(session, engine, T0 + timedelta(minutes=1))
    assert _row(session, row.id).status == "sent"  # no success mark yet
    peer.ack("QF_202611.txt")
    for minutes in (2, 3, 4):  # the poll is spaced by the operation's delay
        _tick(session, engine, T0 + timedelta(minutes=minutes))
    row = _row(session, row.id)
    assert row.status == "acknowledged" and row.uploads == 1
    # The same file again is the same exchange, not a second upload.
    assert file_exchange.send_file(session, "QF_202611.txt", "malicious_arrears", "13800000001|12345\n", T0).id == row.id


def test_no_success_mark_sends_again_under_the_same_name_then_an_incident(ftp):
    session, engine, peer = ftp
    row = file_exchange.send_file(session, "QF_202612.txt", "malicious_arrears", "x\n", T0)
    session.commit()
    _tick(session, engine, T0)
    _tick(session, engine, T0)
    later = T0 + LIMIT + timedelta(minutes=1)
    _tick(session, engine, later)   # past the limit: upload again
    _tick(session, engine, later)
    _tick(session, engine, later)
    row = _row(session, row.id)
    assert row.uploads == 2 and row.status == "sent"
    assert [f for f in peer.files() if f.startswith("QF_202612.txt")] == ["QF_202612.txt", "QF_202612.txt.sent"]
    last = later + LIMIT + timedelta(minutes=1)
    _tick(session, engine, last)
    row = _row(session, row.id)
    assert row.status == "failed"
    (incident,) = outbox.open_incidents(session)
    assert "QF_202612.txt.ok" in incident.message
    # The centre confirms late; the administrator retries the incident: acknowledged, not re-sent.
    peer.ack("QF_202612.txt")
    outbox.retry_incident(session, incident.id, actor="admin", now=last)
    session.commit()
    _tick(session, engine, last)
    _tick(session, engine, last)
    row = _row(session, row.id)
    assert row.status == "acknowledged" and row.uploads == 2


def test_a_server_that_is_down_delays_the_upload_and_loses_nothing(ftp):
    session, engine, peer = ftp
    peer.stop()
    row = file_exchange.send_file(session, "QF_DOWN.txt", "malicious_arrears", "y\n", T0)
    session.commit()
    _tick(session, engine, T0)
    assert _row(session, row.id).status == "sending"
    peer.start()
    now = T0
    for _ in range(6):  # backoff: 10 s, 20 s, …
        now += timedelta(minutes=2)
        _tick(session, engine, now)
    assert _row(session, row.id).status == "sent"
    assert "QF_DOWN.txt" in peer.files()


def test_offered_files_are_collected_recorded_once_and_confirmed(ftp):
    session, engine, peer = ftp
    peer.offer("SPEC_2027.txt", "规范 v2\n".encode())
    now = T0
    for _ in range(3):
        _tick(session, engine, now, collect=True)
        now += timedelta(seconds=30)
    rows = [r for r in file_exchange.exchanges(session) if r.direction == "down"]
    assert [(r.name, r.kind, r.status) for r in rows] == [("SPEC_2027.txt", "specification", "acknowledged")]
    assert "inbox/SPEC_2027.txt.ok" in peer.files()
    # Collected again later: nothing new is offered, nothing recorded twice.
    for _ in range(2):
        now += file_exchange.COLLECT_EVERY + timedelta(seconds=1)
        _tick(session, engine, now, collect=True)
    assert len([r for r in file_exchange.exchanges(session) if r.direction == "down"]) == 1


def test_the_api_lists_exchanges_for_managers_only(ftp, client, token):
    session, _engine, _peer = ftp
    file_exchange.send_file(session, "QF_API.txt", "malicious_arrears", "z\n", T0)
    session.commit()
    answer = client.get("/api/v1/exchanges", headers=token("manager1"))
    assert answer.status_code == 200
    (item,) = answer.get_json()["items"]
    assert item["name"] == "QF_API.txt" and item["direction"] == "up" and item["status"] == "sending"
    assert len(item["sha256"]) == 64 and item["size"] == 2
    refused = client.get("/api/v1/exchanges", headers=token("agent1"))
    assert refused.status_code == 403


def test_the_national_centre_gets_daily_and_monthly_statistics_files_once(ftp):
    from engine.people import user_by_name
    from tests.conftest import INTAKE

    session, engine, peer = ftp
    engine.start(session, "complaint", INTAKE, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    day_after = T0 + timedelta(days=1)  # 2026-11-24, Beijing
    for _ in range(3):
        _tick(session, engine, day_after, collect=True)
    names = sorted(r.name for r in file_exchange.exchanges(session) if r.kind == "statistics")
    assert names == ["TS_D_20261123.csv"]  # filed once, however often the tick runs
    (row,) = [r for r in file_exchange.exchanges(session) if r.name == "TS_D_20261123.csv"]
    text = session.get(file_exchange.FileExchange, row.id).content.decode()
    assert "network,1," in text and text.splitlines()[-1].startswith("total,1,")
    assert {"TS_D_20261123.csv", "TS_D_20261123.csv.sent"} <= set(peer.files())  # the file, then its sent mark
    first_of_month = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    _tick(session, engine, first_of_month, collect=True)
    names = sorted(r.name for r in file_exchange.exchanges(session) if r.kind == "statistics")
    assert "TS_M_202611.csv" in names and "TS_D_20261130.csv" in names
