"""The accept rule of the production server's worker (web/gunicorn_worker.py): a process takes new
connections only while it holds no more than the process holding fewest; slots of the shared
table follow the workers the master forks and reaps."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from web import gunicorn_worker
from web.gunicorn_worker import FREE, child_exit, may_accept, pre_fork


def test_a_process_ahead_of_the_least_loaded_waits():
    table = [2, 1, FREE, FREE]
    assert not may_accept(table, 0)
    assert may_accept(table, 1)
    assert may_accept([1, 1], 0) and may_accept([1, 1], 1)  # equal: both may take the next one
    assert may_accept(table, 0, slack=1)


def test_free_slots_do_not_count_as_idle_processes():
    # A reaped worker's slot must not pose as a process with no connections, or nobody would accept.
    assert may_accept([5, FREE, FREE], 0)


@pytest.fixture
def fresh_table(monkeypatch):
    monkeypatch.setattr(gunicorn_worker, "_table", None)
    return gunicorn_worker


def test_the_master_gives_each_forked_worker_a_free_slot_and_takes_it_back(fresh_table):
    server = SimpleNamespace(WORKERS={})
    first, second = SimpleNamespace(), SimpleNamespace()
    pre_fork(server, first)
    server.WORKERS[101] = first
    pre_fork(server, second)
    server.WORKERS[102] = second
    assert (first.slot, second.slot) == (0, 1)
    table = fresh_table._table
    assert list(table[:3]) == [0, 0, FREE]
    table[0] = 7
    child_exit(server, first)  # reaped: its count no longer holds the others back
    del server.WORKERS[101]
    assert table[0] == FREE
    replacement = SimpleNamespace()
    pre_fork(server, replacement)
    assert replacement.slot == 0 and table[0] == 0


def test_beyond_the_table_a_worker_accepts_as_plain_gthread(fresh_table, monkeypatch):
    monkeypatch.setattr(gunicorn_worker, "SLOTS", 1)
    server = SimpleNamespace(WORKERS={})
    first, second = SimpleNamespace(), SimpleNamespace()
    pre_fork(server, first)
    server.WORKERS[101] = first
    pre_fork(server, second)  # no slot left: the master still forks it
    assert first.slot == 0 and second.slot is None
    child_exit(server, second)  # and reaps it without touching the table
    assert fresh_table._table[0] == 0
