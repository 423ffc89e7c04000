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
c. Kefu's ``Engine`` (SLA listener and property checks on) persisting to SQLite in WAL mode, with
   the groups and users of ``web/demo.py``. Each verb runs like one web request: a new
   ``Session(expire_on_commit=False)``, the acting user loaded by id (as Flask-Login does), the
   open task of the case looked up (the inbox click), the engine verb, ``commit``, close.
   Run twice: with the workflow cache (default size) and with ``cache_size=0``, where every step
   rebuilds the workflow from ``process_instances.state``.

How to read the output: lifecycles/s of each variant after a warm-up (higher is better); c/a and
c/b show what persistence, forms, the inbox and SLA clocks cost over bare Spiff (c/b ≥ 0.5 is the
target: at least half the round-trip floor; and c ≥ 50/s). The per-step latency of c is one
verb's wall time (what a user waits for, minus HTTP and template rendering). The cache hit rate
should be 100 % with the cache (each completion finds the workflow its previous step committed)
and 0 % without. The state sizes compare what Kefu stores per case (state without the spec) with
the stock serialization of the same finished workflow.

Usage: ``.venv/bin/python bench/lifecycle.py [--quick] [-n N]``
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections import defaultdict
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
from sqlalchemy import event
from sqlalchemy.orm import Session

from engine import unit_of_work
from engine.models import ProcessInstance, open_tasks_of_instance
from engine.people import User
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


def run_bare(spec, subs, n: int, warm: int, round_trip: bool) -> float:
    for _ in range(warm):
        bare_lifecycle(spec, subs, round_trip)
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n):
        bare_lifecycle(spec, subs, round_trip)
    return n / (time.perf_counter() - t0)


# -- c: Kefu on SQLite ---------------------------------------------------------------------------
class KefuRun:
    def __init__(self, db, cache_size: int | None) -> None:
        self.db = db
        kwargs = {} if cache_size is None else {"cache_size": cache_size}
        unit_of_work.install()  # the workflow cache is filled after each step's commit
        self.engine = Engine(listeners=[SlaListener()], checks=[check_properties],
                             operations=product_operations(), **kwargs)
        with Session(db, expire_on_commit=False) as session:
            self.users = create_people(session)
            self.engine.deploy_directory(session, BPMN_DIR, now=NOW)
            session.commit()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.last_instance_id: int | None = None
        self.statements = 0
        event.listen(db, "before_cursor_execute", self._count)

    def _count(self, *_args) -> None:
        self.statements += 1

    def _request(self, name: str, fn):
        t0 = time.perf_counter()
        with Session(self.db, expire_on_commit=False) as session:
            result = fn(session)
            session.commit()
        self.latencies[name].append(time.perf_counter() - t0)
        return result

    def lifecycle(self) -> None:
        def start(session):
            actor = session.get(User, self.users["agent1"])
            return self.engine.start(session, "complaint", INTAKE, actor=actor, now=NOW).id

        instance_id = self._request("start", start)
        for expected, username, data in STEPS:
            def complete(session, expected=expected, username=username, data=data):
                actor = session.get(User, self.users[username])
                task = open_tasks_of_instance(session, instance_id)[0]
                if task.name != expected:
                    raise RuntimeError(f"expected {expected}, at {task.name}")
                self.engine.complete_task(session, task.id, data, actor=actor, now=NOW)

            self._request(expected, complete)
        self.last_instance_id = instance_id

    def run(self, n: int, warm: int) -> float:
        for _ in range(warm):
            self.lifecycle()
        self.latencies.clear()
        self.statements = 0
        cache = self.engine.workflows
        cache.hits = cache.misses = 0
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            self.lifecycle()
        rate = n / (time.perf_counter() - t0)
        with Session(self.db) as session:
            status = session.get(ProcessInstance, self.last_instance_id).status
        if status != "completed":
            raise RuntimeError(f"the last case is {status}, not completed")
        return rate

    def report(self, label: str, rate: float) -> None:
        cache = self.engine.workflows
        all_steps = [x for values in self.latencies.values() for x in values]
        total = cache.hits + cache.misses
        print(f"  c. Kefu on SQLite, {label:<24} {rate:8.1f} lifecycles/s")
        print(f"       per step: mean {statistics.fmean(all_steps) * 1000:6.2f} ms over "
              f"{len(all_steps)} steps; workflow cache {cache.hits} hits / {cache.misses} misses "
              f"({(cache.hits / total * 100) if total else 0:.0f} % hits); "
              f"{self.statements / len(all_steps):.1f} SQL statements per step")
        for name, values in self.latencies.items():
            print(f"       {name:<14} {percentiles([v * 1000 for v in values])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 lifecycles instead of 300")
    parser.add_argument("-n", type=int, default=None, help="lifecycles per variant")
    args = parser.parse_args()
    n = args.n or (30 if args.quick else 300)
    warm = 3 if args.quick else 10
    print(f"complaint lifecycles (start + 4 user tasks), {n} per variant after {warm} warm-up")

    spec, subs = parse_spec()
    rate_a = run_bare(spec, subs, n, warm, round_trip=False)
    print(f"  a. bare SpiffWorkflow, in memory          {rate_a:8.1f} lifecycles/s")
    rate_b = run_bare(spec, subs, n, warm, round_trip=True)
    print(f"  b. bare Spiff + stock JSON round trips    {rate_b:8.1f} lifecycles/s")

    with temp_database("lifecycle") as (db, path):
        run = KefuRun(db, cache_size=None)
        rate_c = run.run(n, warm)
        run.report(f"cache {run.engine.workflows.capacity}", rate_c)
        raw = db.raw_connection()  # fold the WAL back so that the file size means something
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            raw.close()
        db_bytes = os.path.getsize(path)
        with Session(db) as session:
            instance = session.get(ProcessInstance, run.last_instance_id)
            kefu_state = instance.state
        # The same finished case on the stock parser and serializer (Kefu's own task specs, e.g.
        # its connector service task, are not known to the stock serializer).
        stock_state = STOCK.serialize_json(bare_lifecycle(spec, subs, round_trip=False))
        lifecycles_stored = n + warm
    with temp_database("lifecycle-nocache") as (db, _path):
        run0 = KefuRun(db, cache_size=0)
        rate_c0 = run0.run(n, warm)
        run0.report("no cache (cache_size=0)", rate_c0)

    print("\nratios")
    print(f"  c/a = {rate_c / rate_a:.3f}   (bare Spiff is {rate_a / rate_c:.1f}× faster)")
    print(f"  c/b = {rate_c / rate_b:.3f}   (target ≥ 0.5: at least half the round-trip floor)")
    print(f"  cache effect: {rate_c / rate_c0:.2f}× (cached {rate_c:.1f}/s vs uncached {rate_c0:.1f}/s)")
    print(f"  target ≥ 50 lifecycles/s persisted: {'met' if rate_c >= 50 else 'NOT met'} ({rate_c:.1f}/s); "
          f"≥ half of b: {'met' if rate_c >= rate_b / 2 else 'NOT met'} ({rate_b / 2:.1f}/s)")
    print("\nserialized state of a finished case")
    print(f"  Kefu instance.state (no spec):           {len(kefu_state.encode()):8,d} bytes")
    print(f"  stock serialize_json of the same workflow: {len(stock_state.encode()):6,d} bytes "
          f"(Kefu stores {len(kefu_state.encode()) / len(stock_state.encode()) * 100:.0f} %)")
    print(f"  SQLite file after {lifecycles_stored} finished cases: {db_bytes:10,d} bytes "
          f"(~{db_bytes / lifecycles_stored / 1024:.1f} KiB per case, all tables)")


if __name__ == "__main__":
    main()
