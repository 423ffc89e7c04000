"""SLA escalation scan time with 100,000 open tasks, 1,000 of them overdue, on SQLite.

Setup (not timed; ``bench/_common.py`` ``populate``): the groups and users of ``web/demo.py``
(every group with a leader where the demo has one), the complaint diagram deployed, 100,000
running instances with one open human task each, and 100,000 running ``sla_clocks`` rows
(24x7 calendar, warn at 80 %, escalate at 100 % → leader and 150 % → manager), bulk-inserted with
Core executemany. 99,000 clocks started 0-75 % of their limit ago, so their ``next_check_at`` (the
warning threshold) is in the future; 1,000 started 105-145 % of their limit ago and were never
scanned, so ``next_check_at`` is in the past and each is due for exactly one escalation (level 1,
to the group leader; the warning is folded into it).

Measured: ``slas.scanner.scan(session, now)`` on a fresh ``Session`` (defaults, like the
scheduler's Flask-SQLAlchemy session). It reads due clock ids in batches of 500 through the
``ix_sla_clocks_next_check`` index, raises escalations with a compare-and-set UPDATE each, writes
audit events and commits per batch. Then a second scan at the same ``now``, which must find
nothing (every clock's ``next_check_at`` moved to its 150 % threshold, in the future).

How to read it: escalations raised (expect 1,000 then 0) and wall seconds per scan; the target is
≤ 1 s for the first scan. The EXPLAIN QUERY PLAN of the due-clock query
(``slas.models.due_clock_ids``) should read "SEARCH sla_clocks USING … INDEX
ix_sla_clocks_next_check (next_check_at<?)" with no temp B-tree: the cost is then proportional to
the clocks that are due, not to the 100,000 that are running.

Usage: ``.venv/bin/python bench/sla_scan.py [--quick] [--clocks N] [--overdue N]``
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _common import NOW, explain, populate, temp_database
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slas.models import Escalation, SlaClock, due_clock_ids
from slas.scanner import scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 clocks, 100 overdue")
    parser.add_argument("--clocks", type=int, default=None)
    parser.add_argument("--overdue", type=int, default=None)
    args = parser.parse_args()
    n = args.clocks or (10_000 if args.quick else 100_000)
    n_overdue = args.overdue if args.overdue is not None else (100 if args.quick else 1_000)
    overdue = set(random.Random(11).sample(range(1, n + 1), n_overdue))

    with temp_database("sla") as (db, path):
        t0 = time.perf_counter()
        populate(db, n, overdue=overdue, clocks=True)
        with Session(db) as session:
            running = session.scalar(select(func.count()).select_from(SlaClock)
                                     .where(SlaClock.state == "running"))
            due = len(due_clock_ids(session, NOW, n))
        print(f"sla scan: {running:,d} running clocks, {due:,d} due at now "
              f"(inserted in {time.perf_counter() - t0:.1f} s, {path.stat().st_size / 2**20:.0f} MiB file)")

        for label in ("first scan", "second scan"):
            with Session(db) as session:
                t0 = time.perf_counter()
                result = scan(session, NOW)
                elapsed = time.perf_counter() - t0
            target = f"   (target ≤ 1 s: {'met' if elapsed <= 1 else 'NOT met'})" if label == "first scan" else ""
            print(f"  {label:<12} {len(result.escalations):5,d} escalation(s), {result.warnings} warning(s) "
                  f"in {elapsed:6.3f} s{target}")

        with Session(db) as session:
            stored = session.scalar(select(func.count()).select_from(Escalation))
            levels = dict(session.execute(select(SlaClock.level, func.count()).group_by(SlaClock.level)).all())
        print(f"  escalations stored: {stored:,d}; clocks by level: {levels}")

        explain(db, lambda s: due_clock_ids(s, NOW, 500), "due_clock_ids (scan's batch query)")


if __name__ == "__main__":
    main()
