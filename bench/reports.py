"""The monthly complaint report (issue 14) over 1,000,000 closed cases on SQLite.

Setup (not timed): the app (``web.create_app``, no peers) on a throw-away SQLite file with Kefu's
settings, the demo groups and users (``bench/_common.py``), the bundled diagrams deployed, then
1,000,000 finished complaint cases received in November 2026 (Beijing days, evenly over the 30
days) and their ``complaint_facts`` rows — both written set-based, one ``INSERT … SELECT`` each
from a recursive counter (no Python loop over cases). The facts are spread over 6 categories, 7
channels, 3 departments plus "not dispatched", 16 cities plus "unknown"; about 96 % first replies
in time, 93 % handled in time, 85 % satisfied or basically satisfied, 8 % unsatisfied.

Measured, for ``by`` = category, channel, department, city and day, over the whole month:
(a) the report's statement alone, ``processes.complaint_facts.report`` on a fresh ``Session``
(one per run, like one request); (b) the whole API request, ``GET /api/v1/reports/complaints``
with a manager's bearer token through the Flask test client (token check, labels from the
deployed forms, JSON). Then the same for one day. p50/p95/max in milliseconds after a warm-up,
and the EXPLAIN QUERY PLAN of the report's statement by category and by day: each should be one
``SEARCH … USING COVERING INDEX ix_complaint_facts_<dim> (received_day>? AND received_day<?)``
with no "USE TEMP B-TREE" for the inner GROUP BY (the outer one groups a few hundred rows).
The database is not ANALYZEd (Kefu never runs ANALYZE).

Target: **p95 ≤ 500 ms** for the API over the month.

Usage: ``.venv/bin/python bench/reports.py [--quick] [--cases N] [--runs N]``
(``--quick``: 20,000 cases, 5 runs).

``--roaming N`` measures the roaming complaint transfer statistics instead
(``processes/transfer_report.py``, ``GET /api/v1/reports/roaming``): N transfers recorded over
November 2026 (both directions, five partners with the national centre, 80 % answered, 10 % of
those late, 2 % failed), by partner, direction and day over the month; the statement should read
``USING COVERING INDEX ix_roaming_transfers_report``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _common import BPMN_DIR, NOW, create_people, explain, percentiles, temp_database
from sqlalchemy import text
from sqlalchemy.orm import Session

from processes import complaint_facts

MONTH = (date(2026, 11, 1), date(2026, 11, 30))
ONE_DAY = (date(2026, 11, 23), date(2026, 11, 23))
MONTH_START_UTC = "2026-10-31 16:00:00"   # 1 November 00:00 in Beijing
MONTH_SECONDS = 30 * 86400

# ``h`` is a cheap deterministic hash of the counter, so that runs are repeatable.
_COUNTER = "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :n) "
_RECEIVED = f"datetime('{MONTH_START_UTC}', '+' || ((i - 1) * {MONTH_SECONDS} / :n) || ' seconds')"
INSTANCES = text(
    "INSERT INTO process_instances (id, definition_id, process_key, reference, title, customer_phone, status, "
    "state, lock_version, started_by, created_at, updated_at, completed_at) "
    + _COUNTER +
    f"SELECT i, :definition, 'complaint', 'TS' || printf('%09d', i), '投诉闭环', printf('138%08d', i), "
    f"'completed', '{{}}', 9, :agent, {_RECEIVED}, datetime({_RECEIVED}, '+1 day'), datetime({_RECEIVED}, '+1 day') "
    "FROM seq")
FACTS = text(
    "INSERT INTO complaint_facts (instance_id, received_at, received_day, category, channel, department, city, "
    "first_reply_at, first_reply_in_time, final_reply_at, replied, handled_in_time, closed_at, overdue, "
    "escalations, satisfaction, outcome) "
    "SELECT *, first_reply_in_time + 2 * handled_in_time + 4 * replied + 8 * overdue + 16 * (closed_at IS NOT NULL) "
    "  + 32 * (satisfaction IN ('satisfied', 'basic')) + 64 * (satisfaction = 'unsatisfied') FROM ("
    "SELECT id, created_at, date(created_at, '+8 hours'), "
    "json_extract('[\"billing\",\"network\",\"service\",\"sales\",\"suggestion\",\"other\"]', '$[' || (h % 6) || ']'), "
    "json_extract('[\"phone\",\"phone\",\"phone\",\"www\",\"email\",\"fax\",\"letter\",\"visit\",\"roaming\"]', "
    "  '$[' || (h / 7 % 9) || ']'), "
    "json_extract('[null,\"network\",\"billing\",\"sales\"]', '$[' || (h / 11 % 4) || ']'), "
    "json_extract('[null,\"昆明\",\"曲靖\",\"玉溪\",\"保山\",\"昭通\",\"丽江\",\"普洱\",\"临沧\",\"楚雄\",\"红河\","
    "  \"文山\",\"西双版纳\",\"大理\",\"德宏\",\"怒江\",\"迪庆\"]', '$[' || (h / 13 % 17) || ']'), "
    "datetime(created_at, '+30 minutes'), (h / 17 % 100) < 96 AS first_reply_in_time, completed_at, 1 AS replied, "
    "(h / 19 % 100) < 93 AS handled_in_time, completed_at AS closed_at, "
    "(h / 17 % 100) >= 96 OR (h / 19 % 100) >= 93 AS overdue, "
    "CASE WHEN (h / 19 % 100) >= 93 THEN 1 + h % 2 ELSE 0 END, "
    "CASE WHEN (h / 23 % 100) < 70 THEN 'satisfied' WHEN (h / 23 % 100) < 85 THEN 'basic' "
    "     WHEN (h / 23 % 100) < 93 THEN 'unsatisfied' ELSE 'no_reply' END AS satisfaction "
    "FROM (SELECT id, created_at, completed_at, (id * 2654435761) % 4294967296 AS h FROM process_instances "
    "      WHERE process_key = 'complaint'))")


def timed(runs: int, call) -> list[float]:
    for _ in range(3):
        call()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 cases and 5 runs")
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--roaming", type=int, default=0, metavar="N",
                        help="measure the roaming transfer statistics over N transfers instead")
    args = parser.parse_args()
    n = args.cases or (20_000 if args.quick else 1_000_000)
    runs = args.runs or (5 if args.quick else 20)

    scratch = tempfile.mkdtemp(prefix="kefu-bench-reports-")
    os.environ.setdefault("KEFU_DATA_DIR", scratch)
    from web import create_app
    from web.auth import issue_token
    from web.extensions import db as flask_db

    with temp_database("reports") as (db, path):
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
                          "KEFU_BILLING_URL": f"sqlite:///{scratch}/billing.db", "KEFU_SMPP_URL": "",
                          "KEFU_AMI_URL": "", "KEFU_FTP_URL": ""})
        with app.app_context():
            users = create_people(flask_db.session)
            engine = app.extensions["kefu_engine"]
            definition_id = next(d for d in engine.deploy_directory(flask_db.session, BPMN_DIR, now=NOW)
                                 if d.key == "complaint").id
            flask_db.session.commit()
            from engine.people import User

            bearer = {"Authorization": f"Bearer {issue_token(flask_db.session.get(User, users['manager1']))}"}
            flask_db.session.remove()  # every SQLite transaction takes the write lock (BEGIN IMMEDIATE)
            if args.roaming:
                roaming(app, db, bearer, args.roaming, runs)
                return
            t0 = time.perf_counter()
            with flask_db.engine.begin() as conn:
                conn.execute(INSTANCES, {"n": n, "definition": definition_id, "agent": users["agent1"]})
            t1 = time.perf_counter()
            with flask_db.engine.begin() as conn:
                conn.execute(FACTS)
            t2 = time.perf_counter()
            print(f"reports: {n:,d} closed complaint cases inserted in {t1 - t0:.1f} s, their facts in "
                  f"{t2 - t1:.1f} s ({path.stat().st_size / 2**20:.0f} MiB file); {runs} runs each")
        # Requests outside the set-up's app context: each one opens and removes its own session.
        client = app.test_client()
        for title, (start, end) in (("the month", MONTH), ("one day", ONE_DAY)):
            print(f"\n  {title}: {start} – {end}")
            for by in complaint_facts.DIMENSIONS:
                period = complaint_facts.Period(start, end, by)

                def statement(period=period) -> None:
                    with Session(db) as session:
                        complaint_facts.report(session, period)

                def request(start=start, end=end, by=by) -> None:
                    response = client.get(f"/api/v1/reports/complaints?from={start}&to={end}&by={by}",
                                          headers=bearer)
                    assert response.status_code == 200, response.data[:300]

                sql_ms, api_ms = timed(runs, statement), timed(runs, request)
                body = client.get(f"/api/v1/reports/complaints?from={start}&to={end}&by={by}",
                                  headers=bearer).get_json()
                p95 = sorted(api_ms)[min(len(api_ms) - 1, max(0, round(0.95 * len(api_ms)) - 1))]
                verdict = f"   (target p95 ≤ 500 ms: {'met' if p95 <= 500 else 'NOT met'})" if title == "the month" else ""
                print(f"    by={by:<10} {len(body['items']):3d} rows, {body['totals']['received']:,d} received")
                print(f"      statement   {percentiles(sql_ms)}")
                print(f"      API request {percentiles(api_ms)}{verdict}")
        for by in ("category", "day"):
            period = complaint_facts.Period(*MONTH, by)
            explain(db, lambda s, period=period: complaint_facts.report(s, period), f"the month by {by}")


def roaming(app: Any, db: Any, bearer: dict[str, str], n: int, runs: int) -> None:
    """The roaming transfer statistics over ``n`` transfers recorded in the month."""
    import random
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from processes import transfer_report
    from processes.roaming import RoamingTransfer

    rng, first = random.Random(3), datetime(2026, 10, 31, 16, tzinfo=UTC)  # 1 November, Beijing
    t0 = time.perf_counter()
    with db.begin() as conn:
        for chunk in range(0, n, 5_000):
            rows = []
            for i in range(chunk + 1, min(n, chunk + 5_000) + 1):
                created = first + timedelta(seconds=(i - 1) * MONTH_SECONDS // n)
                answered = rng.random() < 0.8
                rows.append({"id": i, "direction": rng.choice(("out", "in")), "company_code": "YN",
                             "serial_no": f"S{i:09d}", "partner": rng.choice(("GD", "BJ", "SH", "SC", "QG")),
                             "to_company": "GD", "customer_phone": f"130{i:08d}",
                             "status": "failed" if rng.random() < 0.02 else "closed" if answered else "acknowledged",
                             "first_reply_due": created + timedelta(hours=2), "final_reply_due": created + timedelta(days=3),
                             "dispatch": {"problem": "漫游期间无法上网" * 10}, "late": answered and rng.random() < 0.1,
                             "created_at": created, "acknowledged_at": created,
                             "answered_at": created + timedelta(days=1) if answered else None})
            conn.execute(insert(RoamingTransfer), rows)
    print(f"reports: {n:,d} roaming transfers inserted in {time.perf_counter() - t0:.1f} s; {runs} runs each\n")
    client, now = app.test_client(), datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    for by in transfer_report.DIMENSIONS:
        period = transfer_report.Period(*MONTH, by)

        def statement(period=period) -> None:
            with Session(db) as session:
                transfer_report.report(session, period, now, "QG")

        def request(by=by) -> None:
            response = client.get(f"/api/v1/reports/roaming?from={MONTH[0]}&to={MONTH[1]}&by={by}", headers=bearer)
            assert response.status_code == 200, response.data[:300]

        sql_ms, api_ms = timed(runs, statement), timed(runs, request)
        print(f"    by={by:<10} statement   {percentiles(sql_ms)}")
        print(f"    {'':<13} API request {percentiles(api_ms)}")
    explain(db, lambda s: transfer_report.report(s, transfer_report.Period(*MONTH, "partner"), now, "QG"),
            "the month by partner")


if __name__ == "__main__":
    main()
