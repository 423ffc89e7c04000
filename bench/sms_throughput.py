"""Sustained submit_sm throughput through the connector outbox and the SMPP client, 10,000 queued texts.

Setup (not timed): the loopback SMSC (``peers/smsc.js``, node-smpp, delivery receipts off)
accepting kefu / secret; one ``connectors.sms.client.SmppClient`` bound to it as transceiver, with
``window`` (default 50) submit_sm awaiting their response and no messages-per-second pace
(``mps=0``; the product's default is 20/s, which would be the whole figure); Kefu's ``Engine``
with only the ``sms.send`` operation of ``connectors/sms/operations.py`` and ``job_threads``
worker threads; a throw-away SQLite database (``bench/_common.py``: WAL, Kefu's pragmas).
10,000 ``sms.send`` jobs (``{"to", "text"}``, Chinese text, so UCS2: 90 % fit one part, every
tenth needs two) are written with ``engine.outbox.enqueue`` in ONE transaction, so that all of
them are created at the same instant, the commit: a backlog of 10,000 queued messages. Every
text carries its job's number, so the SMSC's record shows missing or repeated messages.

Measured: ``engine.run_jobs(session, now, batch=...)`` called in a loop, on one ``Session`` as the
ticker does, until a call finds nothing to do; the outbox claims ``batch`` jobs, calls them
concurrently on its thread pool, records the outcomes in one transaction, and claims the next
batch. Wall-clock instants (``time.perf_counter``; the engine's injected ``now`` plays no part)
are taken by thin wrappers in this script: the operation's ``run`` (when ``client.submit``
returned, i.e. after the last part's submit_sm_resp), and the worker's ``claim``, ``execute`` and
``record`` (their time per batch, and when each job was claimed and its outcome committed).

How to read it: messages/s is 10,000 ÷ (drain start → last outcome committed); target ≥ 200/s.
The end-to-end latency (job creation → submit_sm_resp) of a backlog is mostly queueing: the
job's place in the queue ÷ the throughput, so its p95 is ~95 % of the drain time and falls only
as throughput rises; the latencies in the worker (claimed → submit_sm_resp, and the ``submit``
call itself) show the cost of one message once it is taken. "Where the drain time goes" splits
the wall time between the worker's phases: claiming (SQL), the calls (while nothing else runs
— the pool is drained before outcomes are recorded), and recording the outcomes (SQL, one job_done
audit event and one connector_refs row per part). The SMSC must report exactly 10,000 whole
messages, each job's number once, and as many submit_sm as parts; the outbox must hold 10,000
``done`` jobs. A mismatch makes the script exit with status 1.

``--profile`` runs cProfile on the main thread for the drain (claim and record run there; the
calls run on the pool's threads, so the main thread shows them as waiting in ``execute``) and
prints the top functions — use it with a smaller ``--messages`` to see where the outbox spends.

Usage: ``.venv/bin/python bench/sms_throughput.py [--quick] [--messages N] [--threads N]
[--batch N] [--window N] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _common import percentiles, temp_database
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.base import Call, Operation
from connectors.sms.client import SmppClient
from connectors.sms.config import parse_smpp_url
from connectors.sms.operations import operations
from engine.outbox import DONE, ConnectorJob, Incident, enqueue
from engine.peer_events import PeerReference
from engine.runtime import Engine
from peers.smsc import PeerUnavailable, SmscPeer

SHORT = "【客服中心】尊敬的客户，您的投诉（编号TS{n}）已受理，我们将在24小时内回复您，请保持电话畅通。"
LONG = SHORT + "如对处理结果不满意，可直接回复本短信或拨打客服热线转人工服务，我们将安排专人为您进一步核实处理。感谢您的耐心！"
NUMBER = re.compile(r"编号TS(\d+)）")
LONG_EVERY = 10  # every tenth text needs two parts


def text_of(i: int) -> str:
    return (LONG if i % LONG_EVERY == 0 else SHORT).format(n=f"{i:07d}")


def fail_render(code: str, _context: dict[str, Any]) -> str:
    raise ValueError(f"the bench sends plain text, not template {code}")


class Timeline:
    """Wall-clock instants per job key, and time per worker phase, taken by wrapping the pieces."""

    def __init__(self, engine: Engine) -> None:
        self.created: dict[str, float] = {}
        self.claimed: dict[str, float] = {}
        self.call_start: dict[str, float] = {}
        self.answered: dict[str, float] = {}   # client.submit returned: last part's submit_sm_resp
        self.committed: dict[str, float] = {}  # the outcome's transaction committed
        self.phases: Counter[str] = Counter()
        self.batches = 0
        worker = engine.worker
        claim, execute, record = worker.claim, worker.execute, worker.record

        def timed_claim(session, now, limit):
            t0 = time.perf_counter()
            jobs = claim(session, now, limit)
            t1 = time.perf_counter()
            self.phases["claim"] += t1 - t0
            for job in jobs:
                self.claimed[job.key] = t1
            return jobs

        def timed_execute(jobs, now, **options):
            t0 = time.perf_counter()
            outcomes = execute(jobs, now, **options)
            self.phases["calls"] += time.perf_counter() - t0
            self.batches += 1
            return outcomes

        def timed_record(session, outcomes, now, report):
            outcomes = list(outcomes)
            t0 = time.perf_counter()
            record(session, outcomes, now, report)
            t1 = time.perf_counter()
            self.phases["record"] += t1 - t0
            for outcome in outcomes:
                if outcome.error is None:
                    self.committed[outcome.job.key] = t1

        worker.claim, worker.execute, worker.record = timed_claim, timed_execute, timed_record

    def wrap(self, operation: Operation) -> Operation:
        run = operation.run

        def timed_run(params: dict[str, Any], call: Call) -> dict[str, Any]:
            self.call_start[call.key] = time.perf_counter()
            result = run(params, call)
            self.answered[call.key] = time.perf_counter()
            return result

        return dataclasses.replace(operation, run=timed_run)

    def latencies_ms(self, start: dict[str, float], end: dict[str, float]) -> list[float]:
        return [(end[key] - start[key]) * 1000 for key in end if key in start]


def drain(engine: Engine, db, batch: int) -> Counter[str]:
    """``run_jobs`` until a call finds nothing to do; returns the reports' totals."""
    totals: Counter[str] = Counter()
    with Session(db) as session:
        while True:
            report = engine.run_jobs(session, datetime.now(UTC), batch=batch)
            for name in ("done", "retried", "waiting", "incidents"):
                totals[name] += getattr(report, name)
            if report.total == 0:
                break
    return totals


def check_smsc(peer: SmscPeer, n: int, parts: int) -> tuple[list[str], dict[str, int]]:
    """Problems with what the SMSC received (empty if exactly one of each message), and its stats."""
    problems = []
    messages = peer.messages()
    stats = peer.stats()
    numbers = Counter()
    for message in messages:
        match = NUMBER.search(message["text"])
        numbers[int(match.group(1)) if match else -1] += 1
        if match and message["text"] != text_of(int(match.group(1))):
            problems.append(f"message {match.group(1)} arrived altered: {message['text']!r}")
    duplicates = {k: v for k, v in numbers.items() if v > 1}
    missing = set(range(n)) - set(numbers)
    if len(messages) != n:
        problems.append(f"{len(messages):,d} messages received, expected {n:,d}")
    if duplicates:
        problems.append(f"{len(duplicates):,d} message(s) received more than once, e.g. "
                        f"{sorted(duplicates)[:5]}")
    if missing:
        problems.append(f"{len(missing):,d} message(s) never received, e.g. {sorted(missing)[:5]}")
    if -1 in numbers:
        problems.append(f"{numbers[-1]:,d} message(s) without a job number")
    if stats["accepted"] != parts:
        problems.append(f"{stats['accepted']:,d} submit_sm accepted, expected {parts:,d} parts")
    if stats["pending_concatenations"]:
        problems.append(f"{stats['pending_concatenations']} long message(s) left incomplete")
    return problems, {**stats, "messages": len(messages)}


def check_outbox(db, n: int, parts: int) -> tuple[list[str], dict[str, int]]:
    with Session(db) as session:
        statuses = dict(session.execute(select(ConnectorJob.status, func.count())
                                        .group_by(ConnectorJob.status)).all())
        refs = session.scalar(select(func.count()).select_from(PeerReference))
        incidents = session.scalar(select(func.count()).select_from(Incident))
    problems = []
    if statuses.get(DONE, 0) != n:
        problems.append(f"jobs by status {statuses}, expected {n:,d} done")
    if refs != parts:
        problems.append(f"{refs:,d} connector_refs rows, expected {parts:,d} (one per part)")
    return problems, {"refs": refs, "incidents": incidents, **statuses}


def run(args: argparse.Namespace, peer: SmscPeer) -> int:
    n = args.messages
    url = f"{peer.url}&window={args.window}&mps=0"
    client = SmppClient(parse_smpp_url(url))
    client.connect()
    engine: Engine | None = None
    try:
        with temp_database("sms") as (db, _path):
            engine = Engine(job_threads=args.threads)
            timeline = Timeline(engine)
            (send,) = operations(client, fail_render)
            engine.operations[send.name] = timeline.wrap(send)

            texts = [text_of(i) for i in range(n)]
            parts = sum(1 if i % LONG_EVERY else 2 for i in range(n))
            t0 = time.perf_counter()
            with Session(db) as session:
                now = datetime.now(UTC)
                for i, text in enumerate(texts):
                    enqueue(session, send.name, {"to": f"138{i:08d}", "text": text},
                            key=f"bench-sms-{i:07d}", now=now)
                session.commit()
            created = time.perf_counter()
            timeline.created = {f"bench-sms-{i:07d}": created for i in range(n)}
            enqueue_s = created - t0

            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            totals = drain(engine, db, args.batch)
            if profiler:
                profiler.disable()
            # The drain ends when the last outcome is committed (the final empty run_jobs excluded).
            last = max(timeline.committed.values(), default=created)
            busy = max(last - created, 1e-9)
            rate = len(timeline.committed) / busy

            smsc_problems, stats = check_smsc(peer, n, parts)
            outbox_problems, outbox = check_outbox(db, n, parts)
    finally:
        if engine is not None:
            engine.worker.close()
        client.close()

    single = sum(1 for i in range(n) if i % LONG_EVERY)
    print(f"sms throughput: {n:,d} sms.send jobs queued ({single:,d} one-part, {n - single:,d} two-part "
          f"UCS2: {parts:,d} submit_sm), SQLite, loopback SMSC (node-smpp, no receipts)")
    print(f"  worker: batch {args.batch}, {args.threads} threads; client: window {args.window}, "
          f"mps unlimited, one transceiver bind")
    print(f"  enqueue (one transaction)  {enqueue_s:6.2f} s  ({n / enqueue_s:,.0f} jobs/s)")
    print(f"  drain                      {busy:6.2f} s  → {rate:7.1f} messages/s  "
          f"({parts / busy:.1f} submit_sm/s) over {timeline.batches} batches   "
          f"target ≥ 200 messages/s: {'met' if rate >= 200 else 'NOT met'}")
    print("\n  latency")
    rows: list[tuple[str, dict[str, float], dict[str, float]]] = [
        ("job created → submit_sm_resp", timeline.created, timeline.answered),
        ("job created → outcome committed", timeline.created, timeline.committed),
        ("claimed → submit_sm_resp", timeline.claimed, timeline.answered),
        ("submit() call (all parts)", timeline.call_start, timeline.answered),
    ]
    for label, start, end in rows:
        samples = timeline.latencies_ms(start, end)
        print(f"    {label:<34} {percentiles(samples) if samples else 'no samples'}")

    print("\n  where the drain time goes (main thread)")
    other = busy - sum(timeline.phases.values())
    for label, value in [("claim (select ids, update, select claimed)", timeline.phases["claim"]),
                         ("calls (pool busy, nothing recorded meanwhile)", timeline.phases["calls"]),
                         ("record outcomes + deliver_pending", timeline.phases["record"]),
                         ("other (recover_stale, loop)", other)]:
        print(f"    {label:<48} {value:6.2f} s  {value / busy * 100:5.1f} %  "
              f"{value / max(timeline.batches, 1) * 1000:8.1f} ms/batch")

    print("\n  SMSC")
    print(f"    {stats['messages']:,d} whole messages received (expected exactly {n:,d}); "
          f"{stats['submits']:,d} submit_sm, {stats['accepted']:,d} accepted, "
          f"{stats['throttled']} throttled, {stats['rejected']} rejected; "
          f"at most {stats['max_outstanding']} submit_sm_resp unsent at once; {stats['binds']} bind(s)")
    print(f"    outbox: {outbox.get(DONE, 0):,d} done, {totals['retried']} retried, "
          f"{outbox['incidents']} incident(s); {outbox['refs']:,d} connector_refs rows")
    problems = smsc_problems + outbox_problems
    print("    check: " + ("exactly one of each message, no duplicates, none missing" if not problems
                           else "FAILED"))
    for problem in problems:
        print(f"      - {problem}")

    if profiler:
        print("\n  cProfile of the drain, main thread (top 25 by internal time)")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
        print("  … by cumulative time")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(30)
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages instead of 10,000")
    parser.add_argument("--messages", type=int, default=None, help="jobs queued (default 10,000)")
    parser.add_argument("--threads", type=int, default=16, help="the engine's job_threads (default 16)")
    parser.add_argument("--batch", type=int, default=200, help="run_jobs batch size (default 200)")
    parser.add_argument("--window", type=int, default=50, help="SMPP window (default 50)")
    parser.add_argument("--profile", action="store_true", help="cProfile the drain (main thread)")
    args = parser.parse_args()
    args.messages = args.messages or (1_000 if args.quick else 10_000)
    peer = SmscPeer()
    try:
        peer.start("kefu", "secret", receipts=False)
    except PeerUnavailable as exc:
        print(f"sms throughput: skipped, {exc}")
        return
    try:
        status = run(args, peer)
    finally:
        peer.stop()
    sys.exit(status)


if __name__ == "__main__":
    main()
