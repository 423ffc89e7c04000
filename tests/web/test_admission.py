"""Admission control (web/admission.py): K ordinary requests at once per process, streams apart."""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from web.admission import AdmissionLimit, concurrency_from, limit_admission

ROOT = Path(__file__).resolve().parents[2]


class Blocking:
    """A WSGI app whose requests wait for ``gate``; counts how many run at once."""

    def __init__(self, content_type: str = "application/json") -> None:
        self.gate = threading.Event()
        self.content_type = content_type
        self.lock = threading.Lock()
        self.now = self.most = self.calls = 0

    def __call__(self, environ, start_response):
        with self.lock:
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
        try:
            if environ.get("PATH_INFO") != "/fast":
                assert self.gate.wait(10), "never released"
        finally:
            with self.lock:
                self.now -= 1
        start_response("200 OK", [("Content-Type", self.content_type)])
        return [b"ok"]


def call(app, path: str = "/", accept: str = "*/*", environ: dict | None = None) -> tuple[str, bytes]:
    seen: list[str] = []
    body = app({"PATH_INFO": path, "HTTP_ACCEPT": accept, **(environ or {})},
               lambda status, headers, exc_info=None: seen.append(status))
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return seen[0], data


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def in_threads(n: int, target) -> tuple[list[threading.Thread], list]:
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(target())) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, answers


def test_requests_beyond_the_limit_wait_and_all_are_answered():
    inner = Blocking()
    app = AdmissionLimit(inner, 2)
    threads, answers = in_threads(6, lambda: call(app))
    wait_until(lambda: app.running == 2 and app.waiting == 4)
    time.sleep(0.05)
    assert inner.now == 2 and inner.calls == 2  # the other four wait before the app, none failed
    inner.gate.set()
    for t in threads:
        t.join(10)
    assert answers == [("200 OK", b"ok")] * 6
    assert inner.most == 2 and (app.running, app.waiting) == (0, 0)


def test_waiting_requests_are_served_first_come_first_served():
    order: list[str] = []
    gate = threading.Event()

    def app_(environ, start_response):
        order.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/first":
            assert gate.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    app = AdmissionLimit(app_, 1)
    threads = [threading.Thread(target=call, args=(app, "/first"))]
    threads[0].start()
    wait_until(lambda: app.running == 1)
    for n, path in enumerate(("/a", "/b", "/c", "/d"), start=1):
        threads.append(threading.Thread(target=call, args=(app, path)))
        threads[-1].start()
        wait_until(lambda n=n: app.waiting == n)  # queued in this order
    gate.set()
    for t in threads:
        t.join(10)
    assert order == ["/first", "/a", "/b", "/c", "/d"]


def test_a_stream_request_bypasses_a_full_limit():
    inner = Blocking()
    app = AdmissionLimit(inner, 1)
    threads, _ = in_threads(2, lambda: call(app))
    wait_until(lambda: app.running == 1 and app.waiting == 1)
    # EventSource asks for text/event-stream: it gets through while every slot is taken.
    assert call(app, "/fast", accept="text/event-stream") == ("200 OK", b"ok")
    assert (app.running, app.waiting) == (1, 1)
    inner.gate.set()
    for t in threads:
        t.join(10)


def test_a_response_that_is_a_stream_gives_its_slot_back_before_its_body():
    def streaming(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream; charset=utf-8")])

        def events():
            yield b"retry: 1000\n\n"
            yield b"data: x\n\n"
        return events()

    app = AdmissionLimit(streaming, 1)
    body = app({"PATH_INFO": "/calls/stream", "HTTP_ACCEPT": "*/*"}, lambda *a: None)
    assert app.running == 0  # the long body runs without a slot
    assert call(app, "/other")[0] == "200 OK"  # the one slot is free for others
    assert b"".join(body) == b"retry: 1000\n\ndata: x\n\n"


def test_an_ordinary_body_holds_the_slot_until_closed_once():
    closed = []

    class Body(list):
        def close(self):
            closed.append(True)

    def app_(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/csv")])
        return Body([b"a,b\n"])

    app = AdmissionLimit(app_, 1)
    body = app({"PATH_INFO": "/export"}, lambda *a: None)
    assert app.running == 1
    assert b"".join(body) == b"a,b\n"
    body.close()
    body.close()
    assert closed == [True, True] and app.running == 0  # the slot was released once


def test_an_error_in_the_app_releases_the_slot():
    def broken(environ, start_response):
        raise RuntimeError("boom")

    app = AdmissionLimit(broken, 1)
    for _ in range(3):  # would block forever on the second call if the slot leaked
        with pytest.raises(RuntimeError):
            call(app)
    assert app.running == 0


def test_the_limit_is_per_process():
    """Each forked worker installs its own semaphore (gunicorn's post_fork): a child is not
    blocked by the slots its parent holds."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    inner = Blocking()
    parent = AdmissionLimit(inner, 1)
    threads, _ = in_threads(1, lambda: call(parent))
    wait_until(lambda: parent.running == 1)
    pid = os.fork()
    if pid == 0:  # the child: what post_fork does, then a request
        code = 1
        try:
            mine = AdmissionLimit(Blocking(), 1)
            code = 0 if call(mine, "/fast") == ("200 OK", b"ok") else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0
    assert parent.running == 1  # the parent's slot is still held, by the parent
    inner.gate.set()
    for t in threads:
        t.join(10)


def test_the_setting_is_parsed_strictly():
    assert concurrency_from(None) == concurrency_from("") == concurrency_from("  ") == 2  # the default
    assert concurrency_from("3") == 3 and concurrency_from(" 0 ") == 0
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(ValueError, match="KEFU_API_CONCURRENCY"):
            concurrency_from(bad)
    with pytest.raises(ValueError):
        AdmissionLimit(Blocking(), 0)


def test_gunicorn_installs_the_limit_in_each_worker(monkeypatch, app):
    """gunicorn.conf.py reads KEFU_API_CONCURRENCY (a bad value stops the master) and its
    post_fork hook wraps the forked app; 0 installs nothing."""
    from web.admission import AdmissionLimit as Limit

    monkeypatch.setenv("KEFU_API_CONCURRENCY", "3")
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["api_concurrency"] == 3
    monkeypatch.setitem(sys.modules, "wsgi", types.SimpleNamespace(app=app))
    plain = app.wsgi_app
    try:
        conf["post_fork"](None, None)
        assert isinstance(app.wsgi_app, Limit) and app.wsgi_app.limit == 3 and app.wsgi_app.app == plain
    finally:
        app.wsgi_app = plain
    assert limit_admission(app, 0) == 0 and app.wsgi_app == plain
    monkeypatch.setenv("KEFU_API_CONCURRENCY", "many")
    with pytest.raises(ValueError, match="KEFU_API_CONCURRENCY"):
        runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_the_pop_stream_passes_a_full_limit_in_the_app(app):
    """Through the real Flask app: with the only slot taken, the screen-pop stream still opens
    (the browser's EventSource asks for text/event-stream)."""
    app.config["KEFU_POP_STREAM_SECONDS"] = 0.2
    plain = app.wsgi_app
    app.wsgi_app = limit = AdmissionLimit(plain, 1)
    try:
        browser = app.test_client()
        with browser.post("/login", data={"username": "agent1", "password": "kefu-demo"}) as signed_in:
            assert signed_in.status_code == 302  # closing the answer gives its slot back (PEP 3333)
        assert limit.running == 0
        limit._slots.acquire()  # another request is running
        try:
            answer = browser.get("/calls/stream", headers={"Accept": "text/event-stream"}, buffered=False)
            assert answer.status_code == 200 and answer.mimetype == "text/event-stream"
            assert b"".join(answer.response).startswith(b"retry: 1000")  # ends after 0.2 s
            answer.close()
        finally:
            limit._slots.release()
        assert limit.running == 0
    finally:
        app.wsgi_app = plain


class WaitsOnPeer(Blocking):
    """``/peer`` waits for ``gate`` inside ``peer_wait`` (as a billing lookup does); others answer at once."""

    def __call__(self, environ, start_response):
        from connectors.base import peer_wait

        if environ.get("PATH_INFO") == "/peer":
            with peer_wait():
                assert self.gate.wait(10), "never released"
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"ok"]


@pytest.fixture
def wait_hook():
    from connectors.base import set_wait_hook
    from web.admission import slot_given_back

    set_wait_hook(slot_given_back)
    yield
    set_wait_hook(None)


def test_a_request_waiting_on_a_peer_gives_its_slot_to_another(wait_hook):
    inner = WaitsOnPeer()
    limit = AdmissionLimit(inner, 1)
    threads, answers = in_threads(1, lambda: call(limit, "/peer"))
    wait_until(lambda: limit.running == 0 and threads[0].is_alive())  # waiting on the peer, slot free
    assert call(limit, "/fast") == ("200 OK", b"ok")  # the only slot serves another agent meanwhile
    inner.gate.set()
    threads[0].join(10)
    assert answers == [("200 OK", b"ok")] and limit.running == 0 and limit.waiting == 0


def test_after_the_peer_answers_the_request_queues_for_a_slot_again(wait_hook):
    inner = WaitsOnPeer()
    limit = AdmissionLimit(inner, 1)
    threads, answers = in_threads(1, lambda: call(limit, "/peer"))
    wait_until(lambda: limit.running == 0 and threads[0].is_alive())
    limit._enter()  # another request took the slot while the peer answered
    inner.gate.set()
    wait_until(lambda: limit.waiting == 1)  # the first one waits for it, never runs beside it
    assert threads[0].is_alive()
    limit._leave()
    threads[0].join(10)
    assert answers == [("200 OK", b"ok")] and limit.running == 0


def test_billing_lookups_announce_their_wait(tmp_path):
    from contextlib import contextmanager

    from connectors.base import set_wait_hook
    from connectors.billing.gateway import BillingGateway

    entered: list[int] = []

    @contextmanager
    def counting():
        entered.append(1)
        yield

    gateway = BillingGateway(f"sqlite:///{tmp_path / 'billing.db'}")
    gateway.create_schema()
    set_wait_hook(counting)
    try:
        before = len(entered)
        gateway.home_city("13800000001")
        assert len(entered) == before + 1
    finally:
        set_wait_hook(None)
        gateway.close()
