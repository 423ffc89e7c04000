"""Long-running instances: the cost of one pass of a user-task loop as the case grows (issue 18,
item 2). Each pass completes the loop's user task from the stored state (the workflow cache is
cleared before every step, as after a restart), on SQLite, through Kefu's real engine.

    .venv/bin/python bench/long_loop.py [--passes 1000] [--no-prune] [--quick]

Prints, at chosen passes, the milliseconds per pass (mean of the last 10) and the stored state's
size. ``--no-prune`` shows SpiffWorkflow's own behaviour: cost and state grow with every pass and
the case fails at some 330 passes (the iterator depth), where Kefu stops it rather than record a
false completion.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.orm import Session

from bench._common import NOW, create_people, temp_database
from engine import task_tree, unit_of_work
from engine.errors import InstanceFailed
from engine.models import ProcessInstance, open_tasks_of_instance
from engine.people import user_by_name
from engine.runtime import Engine
from tests.engine.test_tree_check import USER_LOOP


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=1000)
    parser.add_argument("--no-prune", action="store_true", help="SpiffWorkflow's tree, never pruned")
    parser.add_argument("--quick", action="store_true", help="100 passes (CI smoke run)")
    args = parser.parse_args()
    passes = 100 if args.quick else args.passes
    if args.no_prune:
        task_tree.PRUNE_DEPTH = 10**9
    unit_of_work.install()
    marks = {p for p in (10, 100, 300, 600, 1000) if p <= passes}
    with temp_database() as (db, _path), Session(db) as session:
        create_people(session)
        engine = Engine()
        engine.deploy(session, USER_LOOP.replace(b"n &gt;= 1000", f"n &gt;= {passes}".encode()),
                      {"note.schema.json": {"type": "object", "properties": {}}}, now=NOW)
        agent = user_by_name(session, "agent1")
        instance = engine.start(session, "user_loop", {}, actor=agent, now=NOW)
        session.commit()
        print(f"user-task loop, {passes} passes, reload every step, pruning "
              f"{'off' if args.no_prune else 'on'} (SQLite)")
        print(f"{'pass':>6} {'ms/pass':>9} {'state KB':>9}")
        recent: list[float] = []
        for done in range(1, passes + 1):
            engine.workflows.clear()
            session.expire_all()
            (task,) = open_tasks_of_instance(session, instance.id)
            started = time.perf_counter()
            try:
                engine.complete_task(session, task.id, {}, actor=agent, now=NOW)
                session.commit()
            except InstanceFailed as exc:
                session.rollback()
                print(f"{done:>6} the step failed: {str(exc)[:90]}…")
                return
            recent = [*recent[-9:], (time.perf_counter() - started) * 1000]
            if done in marks:
                size = len(session.get(ProcessInstance, instance.id).state) / 1024
                print(f"{done:>6} {sum(recent) / len(recent):>9.1f} {size:>9.1f}")
        status = session.get(ProcessInstance, instance.id).status
        print(f"case {status} after {passes} passes")


if __name__ == "__main__":
    main()
