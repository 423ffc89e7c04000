"""Dunning (欠费催缴) and payment reminders (缴费提醒) at scale, on SQLite, through Kefu's real engine
and the real ``BillingGateway`` (issue 12).

    .venv/bin/python bench/dunning_round.py [--quick] [--subscribers 100000] [--rounds 24]
                                            [--reminder-subscriptions 1000000]

Three phases, each in a child process of its own (so that its peak RSS, ``getrusage`` max RSS, is
its own; "before" is the RSS once the databases are seeded and the diagrams deployed):

1. **Opening a round of 100,000 subscribers.** The billing interim database gets 100,000
   subscriptions with an unpaid bill of last month (set-based ``INSERT … SELECT`` over a recursive
   CTE). *Request*: ``Dunning.open_round`` as ``POST /api/v1/dunning/rounds`` runs it (the
   aggregate figures from billing, the round row, the first 100 cases). *Ticks*: ``Dunning.tick``
   (the dunning part of each scheduler tick, 500 cases a tick) until every subscriber has its case.
   Each case runs its first steps (stage, dunning-hours check) and queues its IVR call
   (``pbx.announce``), which the job worker runs at the PBX's pace: not part of opening.
2. **One subscriber over 24 monthly rounds.** 24 successive months, each a round of its own and a
   small case: open the round (the case starts and queues the call), a tick runs the call (a stub
   PBX answers at once) and the case waits for payment, the subscriber pays, the next tick reads
   the payment and delivers it through the correlation index, and the case completes. Milliseconds
   per case and per engine step (3 steps a case) and the stored state must stay flat over rounds.
3. **The daily payment-reminder pass over 1,000,000 subscriptions** (70 % postpaid with a credit
   limit, a Nov bill not yet due and two December calls each; 30 % prepaid; ~3 % cross a threshold
   or the prepaid floor). Day 1 queues the reminders; day 2 (same figures) must queue none.
   ``BillingGateway.credit_page``: one statement per page of 5,000 subscriptions.

``--quick``: 5,000 subscribers, 24 rounds, 100,000 subscriptions for the reminder pass.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from bench._common import BPMN_DIR, create_people, product_operations, temp_database
from connectors.base import OUTBOX, Operation
from connectors.billing.gateway import BillingGateway
from connectors.billing.schema import customers, payments
from engine import unit_of_work
from engine.models import ProcessInstance
from engine.outbox import ConnectorJob
from engine.people import user_by_name
from engine.runtime import Engine
from processes.dunning import OPEN, Dunning, DunningEntry, DunningRound, DunningSettings
from processes.outbound_calls import CallingHours
from processes.payment_reminders import PaymentReminders, ReminderSettings
from processes.tick import tick
from slas.clocks import SlaListener
from slas.policies import check_properties

HOURS = CallingHours.parse("09:00-20:00")
ROUND_AT = datetime(2026, 11, 5, 2, 0, tzinfo=UTC)     # Thursday 10:00 Beijing: the round of 2026-10
REMIND_AT = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)    # Tuesday 10:00 Beijing


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# -- billing data, set-based -------------------------------------------------------------------------
SEQ = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
T = "'2026-01-01 00:00:00.000000'"


def seed_subscriptions(gateway: BillingGateway, count: int, first_id: int = 1, prefix: str = "139") -> None:
    """``count`` active GSM subscriptions (ids from ``first_id``) of one customer, 30 % prepaid
    (every tenth id ending 0-2), postpaid with a credit limit of ¥100, and their balances."""
    with gateway.connect(write=True) as conn:
        if not conn.scalar(select(func.count()).select_from(customers)):
            conn.exec_driver_sql(
                "INSERT INTO kf_customers (id, name, customer_type, level, id_type, id_number, preferred_language,"
                f" created_at, updated_at) VALUES (1, '基准客户', 'person', 'standard', 'id_card', 'X', 'zh', {T}, {T})")
        offset = first_id - 1
        conn.exec_driver_sql(
            "INSERT INTO kf_subscriptions (id, customer_id, phone, service_type, status, prepaid, credit_limit_fen,"
            " features, family_numbers, service_password_hash, opened_at, updated_at) "
            + SEQ.format(count=count)
            + f"SELECT i + {offset}, 1, printf('{prefix}%08d', i + {offset}), 'gsm', 'active', (i % 10) < 3,"
              f" CASE WHEN (i % 10) < 3 THEN 0 ELSE 10000 END, '', '', 'x', {T}, {T} FROM n")
        # Prepaid balances spread over ¥0-300 (~3 % below ¥10); postpaid: ¥50 or ¥90 arrears for 2 %.
        conn.exec_driver_sql(
            "INSERT INTO kf_balances (subscription_id, balance_fen, arrears_fen, updated_at) "
            + SEQ.format(count=count)
            + f"SELECT i + {offset}, CASE WHEN (i % 10) < 3 THEN (i * 37) % 30000 ELSE 0 END,"
              " CASE WHEN (i % 10) >= 3 AND i % 50 = 5 THEN 5000 WHEN (i % 10) >= 3 AND i % 50 = 25 THEN 9000"
              f" ELSE 0 END, {T} FROM n")


def seed_unpaid_bills(gateway: BillingGateway, count: int, month: str, due: str, first_bill: int = 1) -> None:
    """An unpaid bill of ``month`` for each of the first ``count`` subscriptions."""
    with gateway.connect(write=True) as conn:
        conn.exec_driver_sql(
            "INSERT INTO kf_bills (id, subscription_id, bill_month, total_fen, paid_fen, status, due_date, issued_at) "
            + SEQ.format(count=count)
            + f"SELECT i + {first_bill - 1}, i, '{month}', 5000 + (i % 100) * 100, 0, 'unpaid', '{due}', {T} FROM n")


def seed_usage(gateway: BillingGateway, count: int) -> None:
    """Postpaid: a November bill not yet due (¥10-19) and two December calls (¥0-12 each)."""
    with gateway.connect(write=True) as conn:
        conn.exec_driver_sql(
            "INSERT INTO kf_bills (id, subscription_id, bill_month, total_fen, paid_fen, status, due_date, issued_at) "
            + SEQ.format(count=count)
            + f"SELECT i, i, '2026-11', 1000 + (i % 10) * 100, 0, 'unpaid', '2026-12-20', {T} FROM n "
              "WHERE (i % 10) >= 3")
        for call in (0, 1):
            conn.exec_driver_sql(
                "INSERT INTO kf_call_details (id, subscription_id, started_at, record_type, other_party, duration_s,"
                " volume_kb, roaming, long_distance, fee_fen) "
                + SEQ.format(count=count)
                + f"SELECT i * 2 + {call}, i, '2026-12-0{3 + call} 04:00:00.000000', 'voice_out', '13800000001',"
                  " 60, 0, 'none', 'none', (i % 13) * 100 FROM n WHERE (i % 10) >= 3")


# -- the engine ------------------------------------------------------------------------------------------
def answered(params: dict[str, Any], call: Any) -> dict[str, Any]:
    return {"outcome": "answered", "reason": "", "uniqueid": f"b{call.job_id}", "channel": "",
            "attempt_at": call.now.isoformat()}


def make_engine(session: Session) -> Engine:
    operations = product_operations()
    operations["pbx.announce"] = Operation("pbx.announce", "语音通知", answered, required=("phone", "announcement"),
                                           optional=("context", "caller_id", "variables"), mode=OUTBOX)
    engine = Engine(listeners=[SlaListener()], checks=[check_properties], operations=operations)
    create_people(session)
    engine.deploy_directory(session, BPMN_DIR, now=ROUND_AT - timedelta(days=400))
    session.commit()
    return engine


# -- phases ---------------------------------------------------------------------------------------------
def phase_round(subscribers: int) -> dict[str, Any]:
    with temp_database() as (db, path), Session(db) as session:
        gateway = BillingGateway(f"sqlite:///{path.parent / 'billing.db'}")
        gateway.create_schema()
        started = time.perf_counter()
        seed_subscriptions(gateway, subscribers)
        seed_unpaid_bills(gateway, subscribers, "2026-10", "2026-10-31")
        seeded = time.perf_counter() - started
        engine = make_engine(session)
        service = Dunning(gateway, DunningSettings(hours=HOURS))
        manager = user_by_name(session, "manager1")
        before = rss_mb()
        started = time.perf_counter()
        row, _ = service.open_round(session, engine, "2026-10", ROUND_AT, opened_by=manager.username)
        request_s = time.perf_counter() - started
        request_rss = rss_mb()
        ticks, now, each = 0, ROUND_AT, []
        started = time.perf_counter()
        while True:
            ticks += 1
            now += timedelta(seconds=5)
            t0 = time.perf_counter()
            service.tick(session, engine, now)
            each.append(time.perf_counter() - t0)
            session.expire_all()
            if session.get(DunningRound, row.id).status == OPEN:
                break
        ticks_s = time.perf_counter() - started
        cases = session.scalar(select(func.count()).select_from(DunningEntry).where(DunningEntry.instance_id.is_not(None)))
        calls = session.scalar(select(func.count()).select_from(ConnectorJob).where(
            ConnectorJob.operation == "pbx.announce"))
        gateway.close()
        return {"subscribers": subscribers, "seed_s": seeded, "request_s": request_s, "ticks": ticks,
                "ticks_s": ticks_s, "first_ticks_ms": sum(each[:10]) / len(each[:10]) * 1000,
                "last_ticks_ms": sum(each[-11:-1] or each) / len(each[-11:-1] or each) * 1000, "cases": cases, "calls_queued": calls, "rss_before": before,
                "rss_request": request_rss, "rss_peak": rss_mb()}


def phase_rounds(rounds: int) -> dict[str, Any]:
    with temp_database() as (db, path), Session(db) as session:
        gateway = BillingGateway(f"sqlite:///{path.parent / 'billing.db'}")
        gateway.create_schema()
        seed_subscriptions(gateway, 1, prefix="137")
        months = [f"{2025 + k // 12:04d}-{k % 12 + 1:02d}" for k in range(rounds)]
        with gateway.connect(write=True) as conn:
            for k, month in enumerate(months):
                due = f"{month}-28"
                conn.exec_driver_sql(
                    "INSERT INTO kf_bills (id, subscription_id, bill_month, total_fen, paid_fen, status, due_date,"
                    f" issued_at) VALUES ({k + 1}, 1, '{month}', 8800, 0, 'unpaid', '{due}', {T})")
        engine = make_engine(session)
        service = Dunning(gateway, DunningSettings(hours=HOURS))
        before = rss_mb()
        rows = []
        for k, month in enumerate(months):
            year, number = int(month[:4]), int(month[5:])
            opened = datetime(year + number // 12, number % 12 + 1, 5, 2, 0, tzinfo=UTC)  # 10:00 Beijing
            engine.workflows.clear()  # every step from the stored state, as after a restart
            t0 = time.perf_counter()
            row, _ = service.open_round(session, engine, month, opened)
            t1 = time.perf_counter()
            tick(session, engine, opened + timedelta(minutes=1), dunning=service)  # the call, answered
            t2 = time.perf_counter()
            with gateway.connect(write=True) as conn:
                conn.execute(insert(payments).values(id=k + 1, subscription_id=1, paid_at=opened + timedelta(hours=1),
                                                     amount_fen=8800, channel="bank", reference=f"B{k}"))
            engine.workflows.clear()
            t3 = time.perf_counter()
            tick(session, engine, opened + timedelta(hours=2), dunning=service)  # the payment delivered
            t4 = time.perf_counter()
            session.expire_all()
            entry = session.scalars(select(DunningEntry).where(DunningEntry.round_id == row.id)).one()
            instance = session.get(ProcessInstance, entry.instance_id)
            rows.append({"round": k + 1, "month": month, "start_ms": (t1 - t0) * 1000, "call_ms": (t2 - t1) * 1000,
                         "paid_ms": (t4 - t3) * 1000, "case_ms": (t1 - t0 + t2 - t1 + t4 - t3) * 1000,
                         "state_kb": len(instance.state) / 1024, "status": instance.status, "stage": entry.stage})
        gateway.close()
        return {"rounds": rows, "rss_before": before, "rss_peak": rss_mb()}


def phase_reminders(count: int) -> dict[str, Any]:
    with temp_database() as (db, path), Session(db) as session:
        gateway = BillingGateway(f"sqlite:///{path.parent / 'billing.db'}")
        gateway.create_schema()
        started = time.perf_counter()
        seed_subscriptions(gateway, count)
        seed_usage(gateway, count)
        seeded = time.perf_counter() - started
        create_people(session)
        service = PaymentReminders(gateway, ReminderSettings(hours=HOURS))
        before = rss_mb()
        days = []
        for day in (0, 1):
            t0 = time.perf_counter()
            run = service.run_day(session, REMIND_AT + timedelta(days=day))
            assert run is not None
            days.append({"day": day + 1, "seconds": time.perf_counter() - t0, "checked": run.checked,
                         "texted": run.texted, "pages": -(-run.checked // service.settings.page)})
        gateway.close()
        return {"subscriptions": count, "seed_s": seeded, "days": days, "rss_before": before, "rss_peak": rss_mb()}


# -- report -----------------------------------------------------------------------------------------------
def report_round(r: dict[str, Any]) -> None:
    n = r["subscribers"]
    print(f"1. opening a round of {n:,} subscribers (billing seeded set-based in {r['seed_s']:.1f} s)")
    print(f"   request (POST /api/v1/dunning/rounds: figures + round + first 100 cases): {r['request_s'] * 1000:.0f} ms")
    print(f"   ticks to start every case: {r['ticks']} ticks, {r['ticks_s']:.1f} s "
          f"({r['ticks_s'] / max(1, r['cases'] - 100) * 1000:.2f} ms a case, {r['ticks_s'] / r['ticks'] * 1000:.0f} ms a tick)")
    print(f"   a full tick (500 cases): first 10 ticks {r['first_ticks_ms']:.0f} ms each, "
          f"last 10 full ticks {r['last_ticks_ms']:.0f} ms each")
    print(f"   cases {r['cases']:,}, IVR calls queued {r['calls_queued']:,}")
    print(f"   RSS before {r['rss_before']:.0f} MB, after the request {r['rss_request']:.0f} MB, "
          f"peak {r['rss_peak']:.0f} MB")


def report_rounds(r: dict[str, Any]) -> None:
    rows = r["rounds"]
    print(f"2. one subscriber over {len(rows)} monthly rounds (a case each; reloaded from the stored state)")
    print(f"   {'round':>5} {'month':>8} {'start':>8} {'call':>8} {'paid':>8} {'case ms':>8} {'ms/step':>8} {'state KB':>8}")
    for row in rows:
        if row["round"] in (1, 2, 3, 6, 12, 18, 24) or row["round"] == len(rows):
            print(f"   {row['round']:>5} {row['month']:>8} {row['start_ms']:>8.1f} {row['call_ms']:>8.1f} "
                  f"{row['paid_ms']:>8.1f} {row['case_ms']:>8.1f} {row['case_ms'] / 3:>8.1f} {row['state_kb']:>8.1f}")
    first, last = rows[: len(rows) // 2], rows[len(rows) // 2:]
    mean = lambda part: sum(x["case_ms"] for x in part) / len(part)
    print(f"   mean per case: first half {mean(first):.1f} ms, second half {mean(last):.1f} ms; "
          f"all {sum(1 for x in rows if x['status'] == 'completed')}/{len(rows)} completed, stage "
          f"{sorted({x['stage'] for x in rows})}")
    print(f"   RSS before {r['rss_before']:.0f} MB, peak {r['rss_peak']:.0f} MB")


def report_reminders(r: dict[str, Any]) -> None:
    print(f"3. payment-reminder pass over {r['subscriptions']:,} subscriptions "
          f"(billing seeded set-based in {r['seed_s']:.1f} s)")
    for d in r["days"]:
        print(f"   day {d['day']}: {d['seconds']:.1f} s, {d['checked']:,} subscriptions read in {d['pages']} pages "
              f"({d['seconds'] / max(1, d['pages']) * 1000:.0f} ms a page, "
              f"{d['checked'] / d['seconds']:,.0f} subscriptions/s), {d['texted']:,} reminders queued")
    print(f"   RSS before {r['rss_before']:.0f} MB, peak {r['rss_peak']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 / 24 / 100,000")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--reminder-subscriptions", type=int, default=1_000_000)
    parser.add_argument("--phase", choices=("round", "rounds", "reminders"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.reminder_subscriptions = 5_000, 100_000
    if args.phase:
        unit_of_work.install()
        result = {"round": lambda: phase_round(args.subscribers), "rounds": lambda: phase_rounds(args.rounds),
                  "reminders": lambda: phase_reminders(args.reminder_subscriptions)}[args.phase]()
        print(json.dumps(result))
        return
    print("dunning and payment reminders at scale (SQLite; each phase in its own process)")
    failed = False
    for phase, show in (("round", report_round), ("rounds", report_rounds), ("reminders", report_reminders)):
        done = subprocess.run([sys.executable, __file__, "--phase", phase, "--subscribers", str(args.subscribers),
                               "--rounds", str(args.rounds), "--reminder-subscriptions",
                               str(args.reminder_subscriptions)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"phase {phase} failed:\n{done.stderr[-3000:]}")
            failed = True
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        show(result)
        if phase == "round" and result["cases"] != args.subscribers:
            failed = True
        if phase == "rounds" and any(x["status"] != "completed" for x in result["rounds"]):
            failed = True
        if phase == "reminders" and (result["days"][1]["texted"] != 0 or result["days"][0]["texted"] == 0):
            print("   the second day must queue no reminder, the first some")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
