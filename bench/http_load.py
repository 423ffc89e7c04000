"""Agents working complaints through HTTP against the production server (gunicorn, several processes).

The script starts the production server itself (``gunicorn -c gunicorn.conf.py wsgi:app`` on a free
loopback port, ``--workers`` processes), on a fresh SQLite database in a temporary directory or on
the PostgreSQL database of ``--database-url`` (a throw-away one: the schema is created or upgraded
and load-test users and complaints are added to it). No peer is configured (no SMSC, PBX, FTP):
the complaints' texts wait in the outbox, as the output says; no scheduler or connector worker runs.

Set-up: users ``load001``… (role agent, group 受理组 ``intake``) get a bearer token each (``POST
/api/v1/auth/token``). Complaints are started through ``POST /api/v1/processes/complaint/instances``
(8 at a time) by ``loadfeed``, an intake agent who then gives each 首次答复 (triage) task back to
the group (``POST /api/v1/tasks/<id>/unclaim``), so that they wait unassigned in the intake queue as
complaints from the online channel or from another centre do. Before each level enough are
started that the level never runs dry.

One agent's cycle, all through the REST API with its token, on one keep-alive connection:
  1. inbox: ``GET /api/v1/tasks?scope=group`` (the group's open tasks, up to 200, most urgent first);
  2. claim: ``POST /api/v1/tasks/next`` {"name": "triage"} (取下一单: the next free triage task of
     the group, claimed at once; concurrent agents get different tasks). With ``--pick random`` the
     agent instead claims a random unclaimed triage task of the page (``POST /api/v1/tasks/<id>/claim``;
     a 409 — another agent was quicker — counts as a conflict, not an error; the agent lists again);
  3. complete: ``POST /api/v1/tasks/<id>/complete`` with the triage form (dispatch to the network
     department), which runs the step and persists it; the next task lands in the network group.

Two agent models, printed as separate rows (the ``think`` column says which):
  * closed loop, think 0: every agent starts its next cycle as soon as the last answer arrives.
    This measures CAPACITY: completions/s must grow up to about the core count and not fall beyond;
    latency then grows with the queue (Little's law), so p95 at many agents is queueing, not service.
  * think time T > 0: an agent waits T·U(0.5, 1.5) seconds before each request, like a person
    reading and typing (compressed: real agents think for minutes). This is the LATENCY a user feels
    at that load; its completions/s is set by the think time, not by the server.

Each row: agents, think (s), task completions/s, requests/s, p50/p95 of inbox, claim and completion
(ms, wall time seen by the client), conflicts, errors (5xx, 4xx other than a claim's 409, transport
failures, wrong answers), and the CPU seconds the server processes (gunicorn master + workers) and
this client used per second of the run — on a 2-core machine the client's share is taken from the
server, so read the two together — the server's and the local PostgreSQL backends' CPU ms per
completion (what a completion costs: it must not grow with the agents), and the rest of the
machine's busy CPU (other programs: when it is high, the rates say little).

``--concurrency 0,2`` starts one server per admission limit (``KEFU_API_CONCURRENCY``: ordinary
requests at once per process; 0 = none), all on the same database, and runs every level on each
in turn, the order alternating, so that the load of a shared machine hits the variants alike.

Usage: ``.venv/bin/python bench/http_load.py [--quick] [--database-url URL] [--agents 1,8,32,200]
[--think-agents 200 --think 2] [--duration S] [--workers N] [--threads N] [--concurrency K[,K…]]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "load-test-pw-1"
INTAKE = {"customer_phone": "13800000001", "complainant_name": "张三", "contact_phone": "13800000001",
          "channel": "phone", "category": "network", "description": "家中室内信号差，经常掉话。",
          "request": "尽快改善信号"}


def triage_form() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"resolution": "dispatch", "first_reply": "已派网络部处理，24小时内回复。", "department": "network",
            "first_reply_due": (now + timedelta(hours=4)).isoformat(),
            "final_reply_due": (now + timedelta(hours=24)).isoformat()}


# ---------------------------------------------------------------- a minimal keep-alive HTTP client


class HttpError(Exception):
    pass


class Failed(Exception):
    """The set-up could not be done (the message says why)."""


class Connection:
    """One keep-alive HTTP/1.1 connection on loopback (asyncio streams: 200 agents cost the client
    little CPU, so that the figures are the server's)."""

    IDLE_SECONDS = 4.0  # below the server's keep-alive (5 s): reconnect rather than race its close

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def request(self, method: str, path: str, body: Any = None,
                      token: str | None = None) -> tuple[int, Any]:
        if self.writer is not None and time.monotonic() - self.used > self.IDLE_SECONDS:
            await self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(payload)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        if token:
            head.append(f"Authorization: Bearer {token}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        assert self.reader is not None
        try:
            status_line = await self.reader.readline()
            if not status_line:
                raise HttpError("connection closed by the server")
            status = int(status_line.split()[1])
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            raw = await self.reader.readexactly(length) if length else b""
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise HttpError(str(exc) or type(exc).__name__) from exc
        self.used = time.monotonic()
        if close:
            await self.close()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw[:200]


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data_dir: Path, database_url: str | None, port: int, workers: int, threads: int,
               concurrency: int | None = None) -> dict[str, str]:
    env = {**os.environ, "KEFU_DATA_DIR": str(data_dir), "KEFU_PORT": str(port),
           "KEFU_WORKERS": str(workers), "KEFU_THREADS": str(threads),
           "KEFU_BILLING_URL": f"sqlite:///{data_dir / 'billing.db'}",
           "KEFU_SMPP_URL": "", "KEFU_AMI_URL": "", "KEFU_FTP_URL": ""}
    env["KEFU_DATABASE_URL"] = database_url or f"sqlite:///{data_dir / 'kefu.db'}"
    env.pop("KEFU_ACCESS_LOG", None)
    if concurrency is not None:
        env["KEFU_API_CONCURRENCY"] = str(concurrency)
    return env


def prepare_database(env: dict[str, str], agents: int) -> None:
    """Schema + bundled diagrams (``kefu init``'s work) and the load-test agents, in a child process
    so that this client process stays small and holds no connection."""
    code = f"""
import os
from web import create_app
from web.cli import initialize
from web.extensions import db
from engine.people import Group, User
app = create_app()
with app.app_context():
    initialize()
    intake = db.session.query(Group).filter_by(code="intake").one()
    existing = {{u.username for u in db.session.query(User).filter(User.username.like("load%"))}}
    sample = User(username="x", display_name="x", roles="agent")
    sample.set_password({PASSWORD!r})  # one scrypt hash, shared: hashing 200 times would be the set-up
    for i in range(0, {agents} + 1):
        name = f"load{{i:03d}}" if i else "loadfeed"
        if name not in existing:
            user = User(username=name, display_name=f"压测坐席{{i}}", roles="agent",
                        password_hash=sample.password_hash)
            user.groups.append(intake)
            db.session.add(user)
    db.session.commit()
"""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


class Server:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                         cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed(f"gunicorn exited: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise Failed("gunicorn did not listen within 60 s")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text("utf-8", errors="replace")[-chars:]

    def pids(self) -> list[int]:
        """The master and its workers (children read from /proc)."""
        found = [self.proc.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    found.append(int(entry.name))
        return found

    def cpu_seconds(self) -> float:
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ---------------------------------------------------------------- the agents


@dataclass
class Stats:
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    completions: int = 0
    requests: int = 0
    conflicts: int = 0
    empty: int = 0
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def timed(stats: Stats, kind: str, conn: Connection, method: str, path: str, body: Any = None,
                token: str | None = None) -> tuple[int, Any] | None:
    started = time.perf_counter()
    try:
        status, answer = await conn.request(method, path, body, token)
    except HttpError as exc:
        stats.errors[f"{kind}: {exc}"] += 1
        return None
    stats.latency[kind].append((time.perf_counter() - started) * 1000)
    stats.requests += 1
    return status, answer


async def agent(port: int, token: str, stats: Stats, stop_at: float, think: float, rng: random.Random,
                pick: str = "next") -> None:
    conn = Connection(port)

    async def pause() -> None:
        if think:
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))

    try:
        while time.monotonic() < stop_at:
            await pause()
            got = await timed(stats, "inbox", conn, "GET", "/api/v1/tasks?scope=group", token=token)
            if got is None or got[0] != 200:
                if got is not None:
                    stats.errors[f"inbox: HTTP {got[0]}"] += 1
                await asyncio.sleep(0.05)
                continue
            free = [t["id"] for t in got[1]["items"] if t["name"] == "triage" and t["assignee"] is None]
            if not free:
                stats.empty += 1
                await asyncio.sleep(0.2)
                continue
            await pause()
            if pick == "random":
                task_id = rng.choice(free)
                got = await timed(stats, "claim", conn, "POST", f"/api/v1/tasks/{task_id}/claim", token=token)
            else:
                got = await timed(stats, "claim", conn, "POST", "/api/v1/tasks/next", {"name": "triage"}, token=token)
                if got is not None and got[0] == 404:  # taken by others since the listing: list again
                    stats.empty += 1
                    continue
                if got is not None and got[0] == 200:
                    task_id = got[1]["id"]
            if got is None:
                continue
            if got[0] == 409:
                stats.conflicts += 1
                continue
            if got[0] != 200:
                stats.errors[f"claim: HTTP {got[0]} {str(got[1])[:80]}"] += 1
                continue
            await pause()
            got = await timed(stats, "complete", conn, "POST", f"/api/v1/tasks/{task_id}/complete",
                              {"data": triage_form()}, token=token)
            if got is None:
                continue
            if got[0] == 200 and got[1].get("status") == "completed":
                stats.completions += 1
            else:
                stats.errors[f"complete: HTTP {got[0]} {str(got[1])[:80]}"] += 1
    finally:
        await conn.close()


async def tokens_for(port: int, count: int) -> list[str]:
    """Tokens of ``loadfeed`` (index 0) and of ``load001``… ``load<count>``."""
    conn = Connection(port)
    tokens = []
    for i in range(count + 1):
        name = f"load{i:03d}" if i else "loadfeed"
        status, answer = await conn.request("POST", "/api/v1/auth/token", {"username": name, "password": PASSWORD})
        if status != 200:
            raise Failed(f"no token for {name}: HTTP {status} {answer}")
        tokens.append(answer["token"])
    await conn.close()
    return tokens


async def open_triage(port: int, token: str) -> int:
    conn = Connection(port)
    _status, answer = await conn.request("GET", "/api/v1/tasks?scope=group", token=token)
    await conn.close()
    return sum(1 for t in answer["items"] if t["name"] == "triage" and t["assignee"] is None)


async def populate(port: int, token: str, count: int) -> tuple[int, float]:
    """Start ``count`` complaints through the API, 8 at a time, and put their triage tasks back in
the group's queue; returns (started, seconds)."""
    queue = iter(range(count))
    started = 0
    began = time.perf_counter()

    async def starter(token: str) -> None:
        nonlocal started
        conn = Connection(port)
        for _ in queue:
            status, answer = await conn.request("POST", "/api/v1/processes/complaint/instances",
                                                {"data": INTAKE}, token=token)
            if status != 201:
                raise Failed(f"starting a complaint failed: HTTP {status} {answer}")
            started += 1
        await conn.close()

    async def releaser(ids: list[int]) -> None:
        conn = Connection(port)
        for task_id in ids:
            status, answer = await conn.request("POST", f"/api/v1/tasks/{task_id}/unclaim", token=token)
            if status != 200:
                raise Failed(f"giving a task back failed: HTTP {status} {answer}")
        await conn.close()

    await asyncio.gather(*(starter(token) for _ in range(8)))
    conn = Connection(port)
    while True:  # the feeding agent holds the new triage tasks: back to the group with them
        _status, answer = await conn.request("GET", "/api/v1/tasks?scope=mine", token=token)
        held = [t["id"] for t in answer["items"]]
        if not held:
            break
        await asyncio.gather(*(releaser(held[i::8]) for i in range(8)))
    await conn.close()
    return started, time.perf_counter() - began


def database_cpu_seconds(database_url: str | None) -> float:
    """CPU seconds of this machine's PostgreSQL backends serving that database (their process title
    names it); 0 for SQLite (it runs inside the server processes) or a database on another host."""
    if not database_url or not database_url.startswith("postgresql"):
        return 0.0
    name = f" {database_url.rsplit('/', 1)[-1].split('?')[0]} "
    tick, total, postmasters = os.sysconf("SC_CLK_TCK"), 0.0, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            if title.startswith("postgres:") and name in title:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
                postmasters.add(int(fields[1]))
        except OSError:
            continue
    for pid in postmasters:  # backends that ended (a pool's overflow connections) count in their parent
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[13]) + int(fields[14])) / tick  # cutime + cstime
        except OSError:
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat): the machine's load, ours and others'."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def run_level(server: Server, tokens: list[str], agents: int, think: float, duration: float,
                    seed: int, pick: str = "next", database_url: str | None = None) -> dict[str, Any]:
    stats = Stats()
    rng = random.Random(seed)
    cpu_server, cpu_client, busy = server.cpu_seconds(), time.process_time(), machine_busy_seconds()
    cpu_database = database_cpu_seconds(database_url)
    began = time.monotonic()
    stop_at = began + duration
    await asyncio.gather(*(agent(server.port, tokens[i], stats, stop_at, think, random.Random(rng.random()), pick)
                           for i in range(agents)))
    wall = time.monotonic() - began
    server_cpu, client_cpu = server.cpu_seconds() - cpu_server, time.process_time() - cpu_client
    database_cpu = database_cpu_seconds(database_url) - cpu_database
    return {"agents": agents, "think": think, "wall": wall, "completions/s": stats.completions / wall,
            "requests/s": stats.requests / wall, "completions": stats.completions,
            "lat": {k: (pct(v, 0.5), pct(v, 0.95)) for k, v in stats.latency.items()},
            "conflicts": stats.conflicts, "empty": stats.empty, "errors": dict(stats.errors),
            "server cpu/s": server_cpu / wall, "client cpu/s": client_cpu / wall,
            "server cpu ms/completion": 1000 * server_cpu / stats.completions if stats.completions else float("nan"),
            "database cpu ms/completion": (1000 * database_cpu / stats.completions if stats.completions
                                           else float("nan")),
            "rest cpu/s": (machine_busy_seconds() - busy - server_cpu - client_cpu - database_cpu) / wall}


HEADER = (f"{'limit':>7} {'agents':>6} {'think':>5} {'compl/s':>8} {'req/s':>7} {'inbox p50/p95 ms':>17} "
          f"{'claim p50/p95 ms':>17} {'complete p50/p95':>17} {'confl':>6} {'err':>4} {'srv cpu':>7} "
          f"{'ms/cmp':>6} {'db ms':>5} {'cli cpu':>7} {'rest':>5}")


def row(r: dict[str, Any]) -> str:
    def lat(kind: str) -> str:
        p50, p95 = r["lat"].get(kind, (float("nan"), float("nan")))
        return f"{p50:7.1f} /{p95:7.1f}"

    return (f"{r.get('limit', ''):>7} {r['agents']:>6} {r['think']:>5g} {r['completions/s']:>8.1f} {r['requests/s']:>7.1f} "
            f"{lat('inbox'):>17} {lat('claim'):>17} {lat('complete'):>17} {r['conflicts']:>6} "
            f"{sum(r['errors'].values()):>4} {r['server cpu/s']:>7.2f} {r['server cpu ms/completion']:>6.1f} "
            f"{r['database cpu ms/completion']:>5.1f} "
            f"{r['client cpu/s']:>7.2f} {r['rest cpu/s']:>5.2f}")


def limits_of(option: str | None) -> list[int | None]:
    """``--concurrency 0,2`` -> [0, 2]; unset -> [None] (the product's default)."""
    return [int(x) for x in option.split(",") if x.strip()] if option else [None]


def limit_label(limit: int | None) -> str:
    return "default" if limit is None else str(limit) if limit else "none"


async def main_async(args: argparse.Namespace) -> int:
    levels = [int(x) for x in args.agents.split(",") if x]
    think_levels = [int(x) for x in args.think_agents.split(",") if x] if args.think else []
    most = max(levels + think_levels)
    limits = limits_of(args.concurrency)
    data_dir = Path(tempfile.mkdtemp(prefix="kefu-http-load-"))
    ports = [free_port() for _ in limits]
    envs = [server_env(data_dir, args.database_url, port, args.workers, args.threads, limit)
            for port, limit in zip(ports, limits, strict=True)]
    database = "PostgreSQL" if (args.database_url or "").startswith("postgresql") else "SQLite (WAL)"
    print(f"http_load: {database}; gunicorn {args.workers} worker process(es) x {args.threads} threads "
          f"(gthread) on 127.0.0.1:{','.join(map(str, ports))}; admission limit (ordinary requests at once per "
          f"process): {', '.join(map(limit_label, limits))}; {os.cpu_count()} cores; load average at start "
          f"{os.getloadavg()[0]:.2f}")
    if len(limits) > 1:
        print("one server per limit, all on the same database; each level runs on each server in turn "
              "(the order alternating), so that the machine's load hits them alike")
    print("no peers configured: the complaints' texts wait in the outbox (no SMSC); no scheduler runs")
    servers: list[Server] = []
    main_task = asyncio.current_task()
    assert main_task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop the server on the way out, whatever stops us
        asyncio.get_running_loop().add_signal_handler(signum, main_task.cancel)
    try:
        began = time.perf_counter()
        prepare_database(envs[0], most)
        for i, (env, port) in enumerate(zip(envs, ports, strict=True)):
            servers.append(Server(env, port, data_dir / f"server-{i}.log"))
        print(f"set-up: schema, diagrams, {most} agents and server start {time.perf_counter() - began:.1f} s")
        feed, *tokens = await tokens_for(ports[0], most)  # tokens live in the database: good on every server
        rows = []
        plan = [(n, 0.0) for n in levels] + [(n, args.think) for n in think_levels]
        best = 0.0  # the best closed-loop rate so far: what the next levels may reach
        for i, (agents, think) in enumerate(plan):
            order = list(range(len(servers)))
            for j in order if i % 2 == 0 else order[::-1]:
                server, limit = servers[j], limits[j]
                # Enough open triage tasks that the level does not run dry (a cycle is 3 requests, each
                # after a think pause), without starting far more than it can use: starting is slow.
                rate = 1.5 * best if best else 60.0
                if think:
                    rate = min(rate, agents / (3 * think))
                need = int(rate * args.duration * 1.2) + 2 * agents + 20
                waiting = await open_triage(server.port, tokens[0])
                if waiting < need:
                    started, seconds = await populate(server.port, feed, need - waiting)
                    print(f"  (started {started} complaints and gave their triage back to the group through "
                          f"the API in {seconds:.1f} s, 8 clients)")
                result = await run_level(server, tokens, agents, think, args.duration, seed=i, pick=args.pick,
                                         database_url=args.database_url)
                result["limit"] = limit_label(limit)
                if not think:
                    best = max(best, result["completions/s"])
                if not rows:
                    print(HEADER)
                rows.append(result)
                print(row(result), flush=True)
                if result["empty"]:
                    print(f"    ({result['empty']} inbox reads found no free triage task: the level ran dry, "
                          "its rate understates the server)")
        errors: dict[str, int] = defaultdict(int)
        for r in rows:
            for key, n in r["errors"].items():
                errors[key] += n
        for key, n in sorted(errors.items()):
            print(f"  error x{n}: {key}")
        print("limit = ordinary requests running at once per server process (KEFU_API_CONCURRENCY; streams "
              "bypass it). think 0 = closed loop (capacity: completions/s); think > 0 = each request after "
              "think·U(0.5,1.5) s (latency under that load). srv/cli cpu = CPU seconds per second used "
              "by gunicorn (all processes) and by this client; ms/cmp = gunicorn's CPU ms per completion; db ms = "
              "the local PostgreSQL backends' CPU ms per completion; rest = the machine's other busy CPU/s "
              "(other programs). Agents take tasks by "
              + ("取下一单 (POST /api/v1/tasks/next)." if args.pick == "next" else "a random pick of the page."))
        total = sum(errors.values())
        for server in servers:
            if total and "Traceback" in server.log_tail(100_000):
                print(f"server log (end):\n{server.log_tail()}")
        return 1 if total and args.fail_on_error else 0
    except Failed as exc:
        print(f"FAILED: {exc}")
        for server in servers:
            print(f"server log (end):\n{server.log_tail()}")
        return 1
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds on SQLite: is it still working?")
    parser.add_argument("--database-url", help="a throw-away PostgreSQL database (default: SQLite in a temp dir)")
    parser.add_argument("--agents", default="1,8,32,200", help="closed-loop levels, comma-separated")
    parser.add_argument("--think-agents", default="32,200", help="levels run with think time")
    parser.add_argument("--think", type=float, default=2.0, help="mean think time in seconds (0: none)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per level")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1), help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=16, help="threads per gunicorn process")
    parser.add_argument("--concurrency", default=None,
                        help="KEFU_API_CONCURRENCY for the server: ordinary requests at once per process "
                             "(0: no limit; default: the product's); several, comma-separated (e.g. 0,2): "
                             "one server each, every level run on each in turn")
    parser.add_argument("--fail-on-error", action="store_true", help="exit 1 if any error was counted")
    parser.add_argument("--pick", choices=("next", "random"), default="next",
                        help="how an agent takes a task: 取下一单 (POST /tasks/next) or a random one of the page")
    args = parser.parse_args()
    if args.quick:
        args.agents, args.think_agents, args.think, args.duration = "1,4", "8", 0.2, 2.0
        args.workers, args.fail_on_error = 2, True
    try:
        sys.exit(asyncio.run(main_async(args)))
    except asyncio.CancelledError:
        sys.exit("interrupted")


if __name__ == "__main__":
    main()
