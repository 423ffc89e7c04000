"""Complaint lifecycles per second, in one process, measured three ways.

Every lifecycle walks the same path through ``bpmn/complaint.bpmn``: start (intake form) →
首次答复 triage, dispatched to the network department with a final-reply deadline → 部门处理
handle → 质检 quality check, accepted → no refund → 回复客户 reply, customer satisfied → end.
That is five verbs: the start and four user tasks.

a. bare SpiffWorkflow in memory: the diagram is parsed once; per lifecycle a ``BpmnWorkflow`` is
   built and its user tasks are completed (``task.data`` + ``task.run()`` + ``do_engine_steps``).
   No database, no forms, no inbox: the ceiling of what Spiff itself can do.
b. as (a), plus a JSON round trip after every verb with Spiff's STOCK serializer
   (``serialize_json`` → ``deserialize_json``, the spec included), which any durable design built
   on the stock serializer pays. Still no database: the "round-trip floor" of a persisted engine.
c. Kefu's ``Engine`` (SLA listener and property checks on) persisting to SQLite in WAL mode (or to
   the database of ``--database-url``, e.g. PostgreSQL), with the groups and users of
   ``web/demo.py``. Each verb runs like one web request: a new ``Session(expire_on_commit=False)``,
   the acting user loaded by id with their groups (``engine.people.load_user``, as the web's user
   loader does), the open task of the case looked up (the inbox click), the engine verb,
   ``commit``, close.
   Run twice: with the workflow cache (default size) and with ``cache_size=0``, where every step
   rebuilds the workflow from ``process_instances.state``.

The variants run interleaved: after a warm-up of each, the lifecycles are measured in rounds, and
every round runs a slice of each variant in turn, so that a load that comes and goes on the machine
hits them alike; each rate is the variant's lifecycles over its own summed time. Read the ratios.

How to read the output: lifecycles/s of each variant after a warm-up (higher is better); c/a and
c/b show what persistence, forms, the inbox and SLA clocks cost over bare Spiff (the targets: c/b ≥ 0.5
on SQLite and ≥ 0.4 on PostgreSQL, against the round-trip floor; and c ≥ 50/s). SQL statements per
step are counted by kind (what the driver is sent; on PostgreSQL a step's new rows and clock stops
are one ``WITH …`` statement). The per-step latency of c is one verb's wall time (what a user waits for, minus HTTP and template rendering). The cache hit rate
should be 100 % with the cache (each completion finds the workflow its previous step committed)
and 0 % without. The state sizes compare what Kefu stores per case (state without the spec) with
the stock serialization of the same finished workflow.

Usage: ``.venv/bin/python bench/lifecycle.py [--quick] [-n N] [--rounds R] [--database-url URL]
[--statements]`` (``--statements`` prints the SQL of one measured lifecycle, step by step).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _common import BPMN_DIR, NOW, create_people, percentiles, product_operations, temp_database
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.orm import Session

from engine import unit_of_work
from engine.database import configure, engine_options
from engine.db import Base
from engine.models import ProcessInstance, open_tasks_of_instance
from engine.people import load_user
from engine.runtime import Engine
from slas.clocks import SlaListener
from slas.policies import check_properties

INTAKE = {"customer_phone": "13800000001", "complainant_name": "张三", "contact_phone": "13800000001",
          "channel": "phone", "category": "network", "description": "家中室内信号差，经常掉话。",
          "request": "尽快改善信号"}
# (expected task, acting user, form data) — the same path in every variant.
STEPS = [
    ("triage", "agent1", {"resolution": "dispatch", "first_reply": "已派网络部处理，24小时内回复。",
                          "department": "network",
                          "final_reply_due": (NOW + timedelta(hours=24)).isoformat()}),
    ("handle", "net1", {"handling_result": "已调整基站参数，信号恢复。", "cause": "network_fault",
                        "refund_due": False}),
    ("quality_check", "leader1", {"qc_result": "accept"}),
    ("reply", "agent1", {"final_reply": "已修复，客户确认信号正常。", "reply_method": "phone",
                         "satisfaction": "satisfied"}),
]
STOCK = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))


class NoOpServices(PythonScriptEngine):
    """The floors' service tasks (the complaint's texts) answer at once with an empty result: a
    no-op transport, declared in the output. Kefu's variant queues real outbox jobs instead."""

    def call_service(self, task, **kwargs):
        return "{}"


BARE_ENGINE = NoOpServices()
DIALECT = "SQLite"
OPERATIONS: dict = {}  # the product's connector operations (``_common.product_operations``)


def parse_spec():
    parser = SpiffBpmnParser()
    parser.add_bpmn_file(str(BPMN_DIR / "complaint.bpmn"))
    return parser.get_spec("complaint"), parser.get_subprocess_specs("complaint")


# -- a / b: bare SpiffWorkflow ------------------------------------------------------------------
def bare_lifecycle(spec, subs, round_trip: bool) -> BpmnWorkflow:
    workflow = BpmnWorkflow(spec, subs, script_engine=BARE_ENGINE)
    for task in workflow.get_tasks(state=TaskState.READY):
        task.data.update(INTAKE, reference="TS20261123000001")  # Kefu numbers a case at its start
    workflow.do_engine_steps()
    if round_trip:
        workflow = STOCK.deserialize_json(STOCK.serialize_json(workflow))
        workflow.script_engine = BARE_ENGINE
    for expected, _user, data in STEPS:
        task = workflow.get_tasks(state=TaskState.READY, manual=True)[0]
        if task.task_spec.bpmn_id != expected:
            raise RuntimeError(f"expected {expected}, at {task.task_spec.bpmn_id}")
        task.data.update(data)
        task.run()
        workflow.do_engine_steps()
        if round_trip:
            workflow = STOCK.deserialize_json(STOCK.serialize_json(workflow))
            workflow.script_engine = BARE_ENGINE
    if not workflow.is_completed():
        raise RuntimeError("the workflow did not complete")
    return workflow


class BareRun:
    """Variant a or b, measured in slices (see the module docstring: the variants interleave)."""

    def __init__(self, spec, subs, round_trip: bool) -> None:
        self.spec, self.subs, self.round_trip = spec, subs, round_trip
        self.done, self.elapsed = 0, 0.0

    def warm(self, n: int) -> None:
        for _ in range(n):
            bare_lifecycle(self.spec, self.subs, self.round_trip)

    def measure(self, n: int) -> None:
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            bare_lifecycle(self.spec, self.subs, self.round_trip)
        self.elapsed += time.perf_counter() - t0
        self.done += n

    @property
    def rate(self) -> float:
        return self.done / self.elapsed


# -- c: Kefu on a database -----------------------------------------------------------------------
@contextlib.contextmanager
def database(url: str | None) -> Iterator[tuple[SAEngine, Path | None]]:
    """The temporary SQLite file of ``_common``, or the database at ``url`` emptied of Kefu's tables
    (created afresh, dropped afterwards)."""
    if url is None:
        with temp_database("lifecycle") as (db, path):
            yield db, path
        return
    db = create_engine(url, **engine_options(url))
    configure(db)
    Base.metadata.drop_all(db)
    Base.metadata.create_all(db)
    try:
        yield db, None
    finally:
        Base.metadata.drop_all(db)
        db.dispose()


def statement_kind(statement: str) -> str:
    return statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"


class KefuRun:
    def __init__(self, db, cache_size: int | None, users: dict[str, int] | None = None) -> None:
        self.db = db
        kwargs = {} if cache_size is None else {"cache_size": cache_size}
        unit_of_work.install()  # the workflow cache is filled after each step's commit
        self.engine = Engine(listeners=[SlaListener()], checks=[check_properties],
                             operations=OPERATIONS, **kwargs)
        with Session(db, expire_on_commit=False) as session:
            self.users = users if users is not None else create_people(session)
            self.engine.deploy_directory(session, BPMN_DIR, now=NOW)
            session.commit()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.last_instance_id: int | None = None
        self.statements: dict[str, int] = defaultdict(int)
        self.counting = False
        self.done, self.elapsed = 0, 0.0
        self.trace: list[str] | None = None

    def _count(self, _conn, _cursor, statement, _params, _context, executemany) -> None:
        if self.counting:
            self.statements[statement_kind(statement)] += 1
            if self.trace is not None:
                self.trace.append(("executemany " if executemany else "") + " ".join(statement.split()))

    def _request(self, name: str, fn):
        t0 = time.perf_counter()
        with Session(self.db, expire_on_commit=False) as session:
            result = fn(session)
            session.commit()
        self.latencies[name].append(time.perf_counter() - t0)
        return result

    def lifecycle(self) -> None:
        def start(session):
            actor = load_user(session, self.users["agent1"])
            return self.engine.start(session, "complaint", INTAKE, actor=actor, now=NOW).id

        if self.trace is not None:
            self.trace.append("-- start")
        instance_id = self._request("start", start)
        for expected, username, data in STEPS:
            def complete(session, expected=expected, username=username, data=data):
                actor = load_user(session, self.users[username])
                task = open_tasks_of_instance(session, instance_id)[0]
                if task.name != expected:
                    raise RuntimeError(f"expected {expected}, at {task.name}")
                self.engine.complete_task(session, task.id, data, actor=actor, now=NOW)

            if self.trace is not None:
                self.trace.append(f"-- {expected}")
            self._request(expected, complete)
        self.last_instance_id = instance_id

    def warm(self, n: int) -> None:
        for _ in range(n):
            self.lifecycle()

    def measure(self, n: int) -> None:
        event.listen(self.db, "before_cursor_execute", self._count)
        self.counting = True
        try:
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(n):
                self.lifecycle()
            self.elapsed += time.perf_counter() - t0
            self.done += n
        finally:
            self.counting = False
            event.remove(self.db, "before_cursor_execute", self._count)

    def check_last(self) -> None:
        with Session(self.db) as session:
            status = session.get(ProcessInstance, self.last_instance_id).status
        if status != "completed":
            raise RuntimeError(f"the last case is {status}, not completed")

    @property
    def rate(self) -> float:
        return self.done / self.elapsed

    def report(self, label: str) -> None:
        cache = self.engine.workflows
        all_steps = [x for values in self.latencies.values() for x in values]
        total = cache.hits + cache.misses
        steps = len(all_steps)
        kinds = ", ".join(f"{k} {v / steps:.1f}" for k, v in sorted(self.statements.items()))
        print(f"  c. Kefu on {DIALECT}, {label:<24} {self.rate:8.1f} lifecycles/s")
        print(f"       per step: mean {statistics.fmean(all_steps) * 1000:6.2f} ms over "
              f"{steps} steps; workflow cache {cache.hits} hits / {cache.misses} misses "
              f"({(cache.hits / total * 100) if total else 0:.0f} % hits)")
        print(f"       {sum(self.statements.values()) / steps:.1f} SQL statements per step ({kinds})")
        for name, values in self.latencies.items():
            print(f"       {name:<14} {percentiles([v * 1000 for v in values])}")


def main() -> None:
    global DIALECT, OPERATIONS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 lifecycles instead of 300")
    parser.add_argument("-n", type=int, default=None, help="lifecycles per variant")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 10; --quick 3)")
    parser.add_argument("--database-url", default=None,
                        help="Kefu's database for variant c (default: a temporary SQLite file); its "
                             "Kefu tables are dropped and created afresh")
    parser.add_argument("--statements", action="store_true", help="print the SQL of one lifecycle")
    args = parser.parse_args()
    n = args.n or (30 if args.quick else 300)
    warm = 3 if args.quick else 10
    rounds = max(1, min(n, args.rounds or (3 if args.quick else 10)))
    OPERATIONS = product_operations()
    spec, subs = parse_spec()
    with database(args.database_url) as (db, path):
        DIALECT = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(db.dialect.name, db.dialect.name)
        print(f"complaint lifecycles (start + 4 user tasks), {n} per variant after {warm} warm-up, "
              f"in {rounds} interleaved rounds; Kefu on {DIALECT}")
        bare_a = BareRun(spec, subs, round_trip=False)
        bare_b = BareRun(spec, subs, round_trip=True)
        run = KefuRun(db, cache_size=None)
        # The uncached variant shares the database (and its people): both tables grow alike.
        run0 = KefuRun(db, cache_size=0, users=run.users)
        variants = [bare_a, bare_b, run, run0]
        for variant in variants:
            variant.warm(warm)
        for variant in (run, run0):
            variant.latencies.clear()
            variant.engine.workflows.hits = variant.engine.workflows.misses = 0
        for r in range(rounds):
            share = n // rounds + (1 if r < n % rounds else 0)
            for variant in variants if r % 2 == 0 else variants[::-1]:
                variant.measure(share)
        run.check_last()
        run0.check_last()
        if args.statements:
            run.trace = []
            run.measure(1)
        print(f"  a. bare SpiffWorkflow, in memory          {bare_a.rate:8.1f} lifecycles/s")
        print(f"  b. bare Spiff + stock JSON round trips    {bare_b.rate:8.1f} lifecycles/s")
        print("     (a and b answer the complaint's service tasks with a no-op transport)")
        run.report(f"cache {run.engine.workflows.capacity}")
        run0.report("no cache (cache_size=0)")
        if run.trace is not None:
            print("\nthe SQL of one lifecycle (cached variant)")
            for line in run.trace:
                print("  " + (line if len(line) <= 160 else line[:157] + "…"))
        lifecycles_stored = 2 * (n + warm) + (1 if args.statements else 0)
        db_bytes = None
        if path is not None:
            raw = db.raw_connection()  # fold the WAL back so that the file size means something
            try:
                raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                raw.close()
            db_bytes = os.path.getsize(path)
        with Session(db) as session:
            kefu_state = session.get(ProcessInstance, run.last_instance_id).state
        # The same finished case on the stock parser and serializer (Kefu's own task specs, e.g.
        # its connector service task, are not known to the stock serializer).
        stock_state = STOCK.serialize_json(bare_lifecycle(spec, subs, round_trip=False))

    rate_a, rate_b, rate_c, rate_c0 = bare_a.rate, bare_b.rate, run.rate, run0.rate
    print("\nratios")
    print(f"  c/a = {rate_c / rate_a:.3f}   (bare Spiff is {rate_a / rate_c:.1f}× faster)")
    print(f"  c/b = {rate_c / rate_b:.3f}   (target ≥ 0.5 on SQLite, ≥ 0.4 on PostgreSQL: the round-trip floor)")
    print(f"  cache effect: {rate_c / rate_c0:.2f}× (cached {rate_c:.1f}/s vs uncached {rate_c0:.1f}/s)")
    print(f"  target ≥ 50 lifecycles/s persisted: {'met' if rate_c >= 50 else 'NOT met'} ({rate_c:.1f}/s); "
          f"≥ half of b: {'met' if rate_c >= rate_b / 2 else 'NOT met'} ({rate_b / 2:.1f}/s)")
    print("\nserialized state of a finished case")
    print(f"  Kefu instance.state (no spec):           {len(kefu_state.encode()):8,d} bytes")
    print(f"  stock serialize_json of the same workflow: {len(stock_state.encode()):6,d} bytes "
          f"(Kefu stores {len(kefu_state.encode()) / len(stock_state.encode()) * 100:.0f} %)")
    if db_bytes is not None:
        print(f"  SQLite file after {lifecycles_stored} finished cases: {db_bytes:10,d} bytes "
              f"(~{db_bytes / lifecycles_stored / 1024:.1f} KiB per case, all tables)")


if __name__ == "__main__":
    main()
