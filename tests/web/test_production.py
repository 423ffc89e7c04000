"""The production set-up: gunicorn's configuration, what a forked worker drops, the scheduler as
its own process, and a real gunicorn with two worker processes that serves and never ticks."""

from __future__ import annotations

import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select, text

ROOT = Path(__file__).resolve().parents[2]


def load_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict:
    for name in ("KEFU_WORKERS", "KEFU_THREADS", "KEFU_BIND", "KEFU_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_config_processes_threads_and_fork_hook(monkeypatch):
    conf = load_config(monkeypatch)
    # gthread (threads hold the screen-pop streams), sharing connections out among the processes
    assert conf["worker_class"] == "web.gunicorn_worker.BalancedThreadWorker"
    assert callable(conf["pre_fork"]) and callable(conf["child_exit"])
    assert conf["preload_app"] is True
    assert conf["workers"] == 2 * os.cpu_count()
    assert conf["bind"] == "127.0.0.1:5000"
    assert callable(conf["post_fork"])
    conf = load_config(monkeypatch, KEFU_WORKERS="3", KEFU_THREADS="8", KEFU_PORT="8080")
    assert (conf["workers"], conf["threads"], conf["bind"]) == (3, 8, "127.0.0.1:8080")
    assert load_config(monkeypatch, KEFU_BIND="0.0.0.0:80")["bind"] == "0.0.0.0:80"


def test_after_fork_drops_the_inherited_pools_without_closing_them(app):
    from web.extensions import db
    from web.production import after_fork

    with app.app_context():
        engine = db.engine
        db.session.execute(text("SELECT 1"))
        inherited = db.session.connection().connection.dbapi_connection
        db.session.remove()
        pool_before = engine.pool
        assert pool_before.checkedin() >= 1

        assert after_fork(app) == 2  # Kefu's database and billing's
        assert engine.pool is not pool_before and engine.pool.checkedin() == 0
        # The parent's connection is left open (closing it would break the parent's socket) ...
        assert inherited.execute("SELECT 1").fetchone() == (1,)
        # ... and the worker opens its own.
        db.session.execute(text("SELECT 1"))
        assert db.session.connection().connection.dbapi_connection is not inherited
        db.session.remove()
        inherited.close()


def test_the_pool_size_setting(monkeypatch):
    from web.config import from_environment

    monkeypatch.setenv("KEFU_DATABASE_URL", "postgresql+psycopg://kefu@db/kefu")
    monkeypatch.setenv("KEFU_DB_POOL", "3")
    options = from_environment()["SQLALCHEMY_ENGINE_OPTIONS"]
    assert (options["pool_size"], options["max_overflow"]) == (3, 0)
    monkeypatch.setenv("KEFU_DATABASE_URL", "sqlite:///x.db")
    assert "pool_size" not in from_environment()["SQLALCHEMY_ENGINE_OPTIONS"]


def test_scheduler_once_ticks_under_the_lease(app):
    from datetime import timedelta

    from engine import lease
    from engine.clock import utcnow
    from web.extensions import db

    runner = app.test_cli_runner()
    result = runner.invoke(args=["kefu", "scheduler", "--once"])
    assert result.exit_code == 0, result.output
    assert "timer(s) fired" in result.output
    with app.app_context():
        row = db.session.get(lease.SchedulerLease, "tick")
        assert row.last_tick_at is not None
        assert row.expires_at < utcnow() - timedelta(days=365)  # released: another takes over at once
        # While another scheduler holds the lease, a second one does nothing.
        assert lease.acquire(db.session, "tick", "other-host:1", utcnow(), ttl_seconds=60)
        db.session.remove()
    result = runner.invoke(args=["kefu", "scheduler", "--once"])
    assert result.exit_code == 0 and "another scheduler holds the lease" in result.output
    with app.app_context():
        row = db.session.get(lease.SchedulerLease, "tick")
        assert row.holder == "other-host:1" and row.expires_at > utcnow() + timedelta(seconds=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_gunicorn_serves_with_two_processes_and_never_ticks(tmp_path):
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'kefu.db'}"
    port = _free_port()
    env = {**os.environ, "KEFU_DATA_DIR": str(data), "KEFU_DATABASE_URL": url, "KEFU_PORT": str(port),
           "KEFU_WORKERS": "2", "KEFU_THREADS": "4", "KEFU_TICK_SECONDS": "0.2", "KEFU_API_CONCURRENCY": "1",
           "KEFU_BILLING_URL": f"sqlite:///{tmp_path / 'billing.db'}", "KEFU_SMPP_URL": "",
           "KEFU_AMI_URL": "", "KEFU_FTP_URL": ""}
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "kefu", "init"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/login", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, \
                (tmp_path / "gunicorn.log").read_text()[-2000:]
            time.sleep(0.2)
        # The arbiter forks its workers one after another: the first may answer before the second exists.
        while len(workers := _children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2
        # Agents who connect at the same moment are shared out evenly, not left to the accept race.
        pids = [int(w.name) for w in workers]
        for _ in range(3):
            sockets = _connect_simultaneously(port, 4)
            try:
                assert sorted(len(held) for held in _holders(port, sockets, pids).values()) == [2, 2]
            finally:
                for sock in sockets:
                    sock.close()
            time.sleep(0.3)  # the workers see the closes before the next round
        # Counts that drift apart are evened out: one process's agents leave (2 + 2 -> 0 + 2), the
        # other answers one request of its two with "Connection: close", and that agent's new
        # connection goes to the emptied process.
        sockets = _connect_simultaneously(port, 4)
        first, second = _holders(port, sockets, pids).values()
        for sock in first:
            sock.close()
        time.sleep(0.3)
        answers = [_get_login(sock) for sock in second]
        assert sorted("connection: close" in a.lower() for a in answers) == [False, True], answers
        second[[("connection: close" in a.lower()) for a in answers].index(True)].close()
        time.sleep(0.3)
        again = _connect_simultaneously(port, 1)
        kept = [sock for sock, a in zip(second, answers, strict=True) if "connection: close" not in a.lower()]
        assert sorted(len(held) for held in _holders(port, kept + again, pids).values()) == [1, 1]
        for sock in kept + again:
            sock.close()
        # Each worker has its own connections: concurrent requests through both are all answered.
        with requests.Session() as one, requests.Session() as two:
            answers = [s.post(f"http://127.0.0.1:{port}/api/v1/auth/token",
                              json={"username": "nobody", "password": "wrong-password"}, timeout=10)
                       for _ in range(10) for s in (one, two)]
        assert {a.status_code for a in answers} <= {401, 429}
        # Admission control (1 request at a time per process): a burst beyond it waits, none fails.
        from concurrent.futures import ThreadPoolExecutor

        def sign_in(_: int) -> int:
            return requests.post(f"http://127.0.0.1:{port}/api/v1/auth/token",
                                 json={"username": "nobody", "password": "wrong-password"}, timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(sign_in, range(16))) <= {401, 429}
        time.sleep(1.0)  # five scheduler periods: a worker that ticked would have taken the lease
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(select(text("count(*)")).select_from(text("scheduler_leases"))).scalar() == 0
        engine.dispose()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    assert b"Traceback" not in (tmp_path / "gunicorn.log").read_bytes()


def _get_login(sock: socket.socket) -> str:
    """One keep-alive request on an open connection; returns the answer's head."""
    port = sock.getpeername()[1]
    sock.sendall(f"GET /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the answer"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")
    return head.decode("latin-1")


def _connect_simultaneously(port: int, count: int) -> list[socket.socket]:
    """``count`` keep-alive connections opened at one instant, one request answered on each."""
    import threading

    barrier, sockets = threading.Barrier(count), []

    def connect() -> None:
        barrier.wait()
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        _get_login(sock)
        sockets.append(sock)

    threads = [threading.Thread(target=connect) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sockets) == count
    return sockets


def _holders(port: int, sockets: list[socket.socket], pids: list[int]) -> dict[int, list[socket.socket]]:
    """Which worker process holds the server end of each connection (read from /proc)."""
    by_client = {f"0100007F:{s.getsockname()[1]:04X}": s for s in sockets}
    by_inode = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[2] in by_client:
            by_inode[f"socket:[{fields[9]}]"] = by_client[fields[2]]
    held: dict[int, list[socket.socket]] = {pid: [] for pid in pids}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target in by_inode:
                held[pid].append(by_inode[target])
    assert sum(len(h) for h in held.values()) == len(sockets), held
    return held


def _children(pid: int) -> list[Path]:
    return [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == pid]


def _parent(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def test_the_inbox_list_reads_columns_but_answers_the_task_shape(client, token):
    """The list is built from plain columns (the agent's most frequent request): each item must
    be exactly what the task itself answers (``shapes.task_summary``)."""
    intake = {"customer_phone": "13800000001", "complainant_name": "张三", "contact_phone": "13800000001",
              "channel": "phone", "category": "network", "description": "信号差", "request": "改善"}
    for _ in range(3):
        assert client.post("/api/v1/processes/complaint/instances", json={"data": intake},
                           headers=token("agent1")).status_code == 201
    items = client.get("/api/v1/tasks?scope=group", headers=token("agent2")).get_json()["items"]
    assert len(items) == 3 and {i["assignee"] for i in items} == {"agent1"}
    for item in items:
        detail = client.get(f"/api/v1/tasks/{item['id']}", headers=token("agent1")).get_json()
        assert item == {key: detail[key] for key in item}
        assert set(item) == {"id", "name", "title", "instance_id", "process_key", "reference", "group",
                             "assignee", "status", "created_at", "due_at", "sla_state"}


INTAKE = {"customer_phone": "13800000001", "complainant_name": "张三", "contact_phone": "13800000001",
          "channel": "phone", "category": "network", "description": "信号差", "request": "改善"}


def _sqlite_only(app) -> None:
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite's write lock")


def test_the_inbox_list_waits_for_no_write_lock(app, client, token):
    """With several server processes on SQLite, a step holds the write lock; the agents' inbox
    reads must not queue behind it (they would wait up to the 30 s busy timeout)."""
    import sqlite3

    _sqlite_only(app)
    header = token("agent2")
    client.post("/api/v1/processes/complaint/instances", json={"data": INTAKE}, headers=token("agent1"))
    writer = sqlite3.connect(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"),
                             isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a step
    try:
        started = time.monotonic()
        answer = client.get("/api/v1/tasks?scope=group", headers=header)
        assert answer.status_code == 200 and len(answer.get_json()["items"]) == 1
        assert time.monotonic() - started < 5
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_claim_and_complete_answer_from_the_steps_transaction(app, client, token):
    """The answer is read before the commit: one transaction (one write lock on SQLite) each."""
    from sqlalchemy import event

    from web.extensions import db

    _sqlite_only(app)
    header = token("agent1")
    client.post("/api/v1/processes/complaint/instances", json={"data": INTAKE}, headers=header)
    task = client.get("/api/v1/tasks", headers=header).get_json()["items"][0]
    client.post(f"/api/v1/tasks/{task['id']}/unclaim", headers=header)
    with app.app_context():
        engine = db.engine
    begins: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.startswith("BEGIN"):
            begins.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        claimed = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=header)
        assert claimed.status_code == 200 and claimed.get_json()["assignee"] == "agent1"
        assert begins == ["BEGIN IMMEDIATE"]
        begins.clear()
        form = {"resolution": "answer_now", "first_reply": "已为您处理。"}
        done = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": form}, headers=header)
        assert done.status_code == 200, done.get_json()
        assert done.get_json()["status"] == "completed"
        assert begins == ["BEGIN IMMEDIATE"]
    finally:
        event.remove(engine, "before_cursor_execute", count)
