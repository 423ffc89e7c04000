"""Helpers shared by the bench scripts: a throw-away SQLite database, the demo people, timing.

Not a benchmark itself. The scripts put the repository root on ``sys.path`` before importing this.
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, insert
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.orm import Session

from engine.database import configure, engine_options
from engine.db import Base
from engine.models import HumanTask, ProcessInstance
from engine.people import Group, User
from engine.runtime import Engine
from processes.desk_search import CaseIndex
from slas.clocks import SlaListener
from slas.models import SlaClock
from slas.policies import check_properties
from web.demo import USERS, ensure_groups

ROOT = Path(__file__).resolve().parent.parent
BPMN_DIR = ROOT / "bpmn"
# A fixed "now" (a Monday, 10:00 Beijing time) so that runs are repeatable.
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def product_operations() -> dict[str, Any]:
    """The connector operations the product installs, as deployment needs them (the bundled
    diagrams name them). No peer is configured: a job queued for one would wait and retry, and the
    benchmarks that use this never run those jobs."""
    import os

    from web import create_app

    scratch = tempfile.mkdtemp(prefix="kefu-bench-ops-")
    os.environ.setdefault("KEFU_DATA_DIR", scratch)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{scratch}/ops.db",
                      "KEFU_BILLING_URL": f"sqlite:///{scratch}/billing.db", "KEFU_SMPP_URL": "",
                      "KEFU_AMI_URL": "", "KEFU_FTP_URL": ""})
    return dict(app.extensions["kefu_connectors"].operations)


@contextlib.contextmanager
def temp_database(name: str = "bench") -> Iterator[tuple[SAEngine, Path]]:
    """A fresh SQLite file (WAL, Kefu's pragmas) with every table; deleted afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    path = directory / f"{name}.db"
    url = f"sqlite:///{path}"
    db = create_engine(url, **engine_options(url))
    configure(db)
    try:
        Base.metadata.create_all(db)
        yield db, path
    finally:
        db.dispose()
        shutil.rmtree(directory, ignore_errors=True)


def create_people(session: Session) -> dict[str, int]:
    """The groups and accounts of ``web.demo`` (no password hashing: a placeholder hash is stored).

    Returns username → user id; commits.
    """
    groups = ensure_groups(session)
    ids: dict[str, int] = {}
    for username, name, roles, member_of, leads, phone, extension in USERS:
        user = User(username=username, display_name=name, roles=roles, phone=phone,
                    extension=extension, created_at=NOW, active=True, password_hash="bench")
        user.groups = [groups[c] for c in member_of]
        session.add(user)
        session.flush()
        ids[username] = user.id
        for code in leads:
            groups[code].leader_id = user.id
    session.commit()
    return ids


def group_ids(session: Session) -> dict[str, int]:
    return {g.code: g.id for g in session.query(Group)}


# -- bulk population (inbox and SLA scan) ----------------------------------------------------------
CHUNK = 5_000
# The user tasks of bpmn/complaint.bpmn: (bpmn id, title, form, SLA limit in hours).
TASKS = {
    "triage": ("首次答复", "complaint_triage.schema.json", 2),
    "reply": ("回复客户", "complaint_reply.schema.json", 4),
    "handle": ("部门处理", "complaint_handle.schema.json", 24),
    "quality_check": ("质检", "complaint_quality.schema.json", 4),
    "refund": ("退费", "complaint_refund.schema.json", 24),
}
# group code → (share of all open tasks, the tasks that land there)
SPREAD = {
    "intake": (0.40, ["triage", "reply"]),
    "network": (0.15, ["handle"]),
    "billing": (0.15, ["handle", "handle", "refund"]),
    "sales": (0.10, ["handle"]),
    "quality": (0.10, ["quality_check"]),
    "dept": (0.10, ["handle"]),
}
ESCALATIONS = [[1.0, "leader"], [1.5, "manager"]]
WARN = 0.8


def populate(db: SAEngine, n: int, *, overdue: Collection[int] = (), no_due_share: float = 0.0,
             clocks: bool = False, vip_share: float | None = None, seed: int = 7) -> dict[str, int]:
    """The demo people, the complaint definition, ``n`` running instances (state ``{}``) with one
    open human task each (ids 1..n for both), bulk-inserted with Core executemany in chunks.

    Task ``i`` started a fraction of its SLA limit ago: 0-75 % (its warning threshold, 80 %, is
    still ahead), or 105-145 % when ``i`` is in ``overdue`` (past due, not yet warned or escalated:
    the scanner has not seen it). With ``clocks`` every task with a due date gets its running
    ``sla_clocks`` row (24x7 calendar, warn 0.8, escalate 1.0 → leader, 1.5 → manager), whose
    ``next_check_at`` is its warning threshold. With ``vip_share`` every case gets its desk index
    row (``case_index``), that share of them VIP, and its step carries the flag (as a step that
    opened for a VIP case does). Returns username → user id.
    """
    rng = random.Random(seed)
    overdue = set(overdue)
    with Session(db, expire_on_commit=False) as session:
        users = create_people(session)
        engine = Engine(listeners=[SlaListener()], checks=[check_properties], operations=product_operations())
        definition = next(d for d in engine.deploy_directory(session, BPMN_DIR, now=NOW) if d.key == "complaint")
        session.commit()
        groups = group_ids(session)
    codes = list(SPREAD)
    weights = [SPREAD[c][0] for c in codes]
    with db.begin() as conn:
        for first in range(1, n + 1, CHUNK):
            instances, tasks, clock_rows, index_rows = [], [], [], []
            for i in range(first, min(n, first + CHUNK - 1) + 1):
                code = rng.choices(codes, weights)[0]
                name = rng.choice(SPREAD[code][1])
                title, form, hours = TASKS[name]
                limit = timedelta(hours=hours)
                started = NOW - limit * (rng.uniform(1.05, 1.45) if i in overdue else rng.uniform(0, 0.75))
                created = started - timedelta(minutes=rng.randint(0, 3 * 24 * 60))
                has_due = i in overdue or rng.random() >= no_due_share
                if code == "intake":
                    roll = rng.random()
                    assignee = (users["agent1"] if roll < 0.05 else users["agent2"] if roll < 0.30
                                else None)
                else:
                    assignee = users["net1"] if code == "network" and rng.random() < 0.2 else None
                instances.append({
                    "id": i, "definition_id": definition.id, "process_key": "complaint",
                    "reference": f"TS{created:%Y%m%d}{i:07d}", "title": definition.name,
                    "customer_phone": f"138{i:08d}", "status": "running", "state": "{}",
                    "lock_version": 3, "started_by": users["agent1" if i % 2 else "agent2"],
                    "created_at": created, "updated_at": started})
                tasks.append({
                    "id": i, "instance_id": i, "task_guid": str(uuid.UUID(int=rng.getrandbits(128))),
                    "name": name, "title": title, "form_name": form, "group_id": groups[code],
                    "assignee_id": assignee, "status": "open", "created_at": started,
                    "due_at": started + limit if has_due else None,
                    "warn_at": started + limit * WARN if has_due else None})
                if vip_share is not None:
                    vip = rng.random() < vip_share
                    tasks[-1]["vip"] = vip
                    index_rows.append({"instance_id": i, "name": f"客户{i}", "contact_phone": None,
                                       "text": "", "priority": 5 if vip else 0, "vip": vip})
                if clocks and has_due:
                    clock_rows.append({
                        "id": i, "instance_id": i, "task_id": i, "title": title,
                        "group_id": groups[code], "calendar": "24x7", "started_at": started,
                        "duration_seconds": limit.total_seconds(), "paused_seconds": 0.0,
                        "warn_fraction": WARN, "escalations": ESCALATIONS,
                        "due_at": started + limit, "warn_at": started + limit * WARN,
                        "warned_at": None, "level": 0, "next_check_at": started + limit * WARN,
                        "state": "running"})
            conn.execute(insert(ProcessInstance), instances)
            conn.execute(insert(HumanTask), tasks)
            if clock_rows:
                conn.execute(insert(SlaClock), clock_rows)
            if index_rows:
                conn.execute(insert(CaseIndex), index_rows)
    return users


def percentiles(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return f"p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   max {ordered[-1]:7.2f} ms"


@contextlib.contextmanager
def captured_sql(db: SAEngine) -> Iterator[list[tuple[str, Any]]]:
    """Collect (statement, parameters) of what SQLAlchemy actually sends (eager joins included)."""
    seen: list[tuple[str, Any]] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(db, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(db, "before_cursor_execute", listener)


def _short(sql: str) -> str:
    """The statement with long select lists elided (``SELECT … FROM``)."""
    return re.sub(r"SELECT ([^()]{80,}?) FROM", "SELECT … FROM", sql)


def explain(db: SAEngine, run: Callable[[Session], Any], title: str) -> None:
    """Print SQLite's EXPLAIN QUERY PLAN of every statement ``run`` sends."""
    with captured_sql(db) as seen, Session(db) as session:
        run(session)
        session.rollback()
    with db.connect() as conn:
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            print(f"\n  EXPLAIN QUERY PLAN — {title}")
            print("    " + _short(" ".join(statement.split())))
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            depth = {0: 0}
            for node, parent, _unused, detail in rows:
                depth[node] = depth.get(parent, 0) + 1
                print("    " + "  " * depth[node] + detail)
        conn.rollback()

