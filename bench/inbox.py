"""Inbox query latency with 100,000 open human tasks on SQLite.

Setup (not timed; ``bench/_common.py`` ``populate``): the groups and users of ``web/demo.py``, the
complaint diagram deployed, then 100,000 ``process_instances`` rows (one per task, state ``{}``)
and 100,000 open ``human_tasks`` rows bulk-inserted with SQLAlchemy Core (executemany in chunks).
The tasks are spread over the groups — 40 % in 投诉受理组 (intake, agent1's only group), the rest
over network, billing, sales, quality and dept — with 5 % of intake's (2 % of all) assigned to
agent1, 25 % of intake's to agent2, some of network's to net1, the rest to nobody; 1 % overdue,
3 % without a due date.

Every case has its desk index row (``case_index``), 2 % of them VIP (``--vip-share``), and its
step carries the flag as a step opened for a VIP case does (``human_tasks.vip``).

Measured: the two statements the web inbox (``web/inbox.py`` ``tasks()``) runs for agent1 in its
default order (VIP first, then due time: ``web/desk_filters.filter_tasks``) — the page of rows,
``.limit(50)`` (the ORM adds the eager joins of ``HumanTask.instance`` and
``ProcessInstance.definition``), and the total, ``count(*)`` over the same query without ORDER
BY — for ``scope=mine`` and ``scope=group``.
Each run is one fresh ``Session`` (like one request). 200 runs per scope after a warm-up. For
comparison the group inbox of leader1 (two groups: intake and quality) is timed the same way.

How to read it: p50/p95/max in milliseconds for the page query, the count query and both together
(what a page load pays in the database layer, before rendering). The target is p95 ≤ 50 ms for
both together. The EXPLAIN QUERY PLAN lines show whether SQLite walks the
``ix_human_tasks_group_queue`` / ``ix_human_tasks_assignee_queue`` indexes ("SEARCH … USING INDEX")
and whether it must sort the matching rows ("USE TEMP B-TREE FOR ORDER BY"). The database has not
been ANALYZEd (Kefu never runs ANALYZE), so the plans are the ones a production file gets.

Usage: ``.venv/bin/python bench/inbox.py [--quick] [--tasks N] [--runs N] [--vip-share F]``
(``--tasks 50000``: 20,000 open steps in agent1's group).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _common import NOW, explain, percentiles, populate, temp_database
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.models import inbox_query
from engine.people import User
from web.desk_filters import DeskFilters, filter_tasks

PAGE_SIZE = 50  # web/inbox.py


def page_and_count(session: Session, user: User, groups: set[int], scope: str) -> tuple[float, float, int, int]:
    """The inbox view's two statements; returns (page ms, count ms, rows, total)."""
    # The web inbox's default: VIP cases first, then by due time (web/desk_filters.py).
    query = filter_tasks(inbox_query(user.id, groups, scope), DeskFilters(), NOW)
    t0 = time.perf_counter()
    rows = list(session.scalars(query.limit(PAGE_SIZE).offset(0)))
    t1 = time.perf_counter()
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, len(rows), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 tasks and 50 runs")
    parser.add_argument("--tasks", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--vip-share", type=float, default=0.02, help="share of VIP cases (default 0.02)")
    args = parser.parse_args()
    n = args.tasks or (10_000 if args.quick else 100_000)
    runs = args.runs or (50 if args.quick else 200)

    with temp_database("inbox") as (db, path):
        t0 = time.perf_counter()
        users = populate(db, n, overdue=range(1, n + 1, 100), no_due_share=0.03,
                         vip_share=args.vip_share)
        print(f"inbox: {n:,d} open tasks inserted in {time.perf_counter() - t0:.1f} s "
              f"({path.stat().st_size / 2**20:.0f} MiB file); {runs} runs per scope, agent1")
        with Session(db, expire_on_commit=False) as session:
            agent1 = session.get(User, users["agent1"])
            leader1 = session.get(User, users["leader1"])
        for user, scope in ((agent1, "mine"), (agent1, "group"), (leader1, "group")):
            groups = user.group_ids
            for _ in range(5):  # warm-up
                with Session(db) as session:
                    page_and_count(session, user, groups, scope)
            pages, counts, both = [], [], []
            for _ in range(runs):
                with Session(db) as session:
                    page_ms, count_ms, rows, total = page_and_count(session, user, groups, scope)
                pages.append(page_ms)
                counts.append(count_ms)
                both.append(page_ms + count_ms)
            print(f"\n  {user.username} scope={scope} ({len(groups)} group(s)): {rows} rows shown of {total:,d}")
            print(f"    page  (limit {PAGE_SIZE})   {percentiles(pages)}")
            print(f"    count            {percentiles(counts)}")
            print(f"    page + count     {percentiles(both)}   (target p95 ≤ 50 ms: "
                  f"{'met' if sorted(both)[round(0.95 * len(both)) - 1] <= 50 else 'NOT met'})")

        for scope in ("group", "mine"):
            explain(db, lambda s, scope=scope: page_and_count(s, agent1, agent1.group_ids, scope),
                    f"agent1 scope={scope}")


if __name__ == "__main__":
    main()
