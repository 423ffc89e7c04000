"""Payment reminders (缴费提醒): once a Beijing day the tick reads billing's subscriptions a page at
a time and queues one ``sms.send`` per threshold crossing — postpaid against the credit limit
(arrears + bills not yet due + unbilled usage, less the deposit), prepaid below the floor — never a
daily repeat; falling back (a payment, a top-up) re-arms the next crossing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from connectors.billing.schema import balances, bills, call_details, customers, subscriptions
from engine.outbox import ConnectorJob
from processes import sms_templates
from processes.outbound_calls import CallingHours
from processes.payment_reminders import (
    PaymentReminder,
    PaymentReminders,
    ReminderMark,
    ReminderRun,
    ReminderSettings,
)
from processes.tick import tick

DAY1 = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Beijing
DAYS = [DAY1 + timedelta(days=n) for n in range(8)]
IN_DECEMBER = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
POSTPAID, PREPAID, CLOSED = "13999000001", "13999000002", "13999000003"
LIMIT = 10_000  # ¥100.00


class Billing:
    """Writes billing's side for a few subscribers of the test's own (ids far above the demo's)."""

    def __init__(self, gateway) -> None:
        self.gateway = gateway
        self.ids: dict[str, int] = {}

    def _next(self, conn, table) -> int:
        return max(900_000, conn.scalar(select(func.max(table.c.id))) or 0) + 1

    def subscriber(self, phone: str, *, prepaid: bool = False, credit: int = LIMIT, balance: int = 0,
                   arrears: int = 0, status: str = "active") -> int:
        at = datetime(2025, 1, 1, tzinfo=UTC)
        with self.gateway.connect(write=True) as conn:
            cid, sid = self._next(conn, customers), self._next(conn, subscriptions)
            conn.execute(insert(customers).values(id=cid, name="测试客户", customer_type="person", id_type="id_card",
                                                  id_number=f"1101{sid:014d}", created_at=at, updated_at=at))
            conn.execute(insert(subscriptions).values(
                id=sid, customer_id=cid, phone=phone, service_type="gsm", status=status, prepaid=prepaid,
                credit_limit_fen=0 if prepaid else credit, service_password_hash="x", opened_at=at, updated_at=at))
            conn.execute(insert(balances).values(subscription_id=sid, balance_fen=balance, arrears_fen=arrears,
                                                 updated_at=at))
            # November is billed and paid: December's calls are the unbilled usage.
            conn.execute(insert(bills).values(id=self._next(conn, bills), subscription_id=sid, bill_month="2026-11",
                                              total_fen=0, paid_fen=0, status="paid", due_date=date(2026, 12, 20),
                                              issued_at=datetime(2026, 12, 2, tzinfo=UTC)))
        self.ids[phone] = sid
        return sid

    def usage(self, phone: str, fen: int, at: datetime = IN_DECEMBER) -> None:
        with self.gateway.connect(write=True) as conn:
            conn.execute(insert(call_details).values(id=self._next(conn, call_details),
                                                     subscription_id=self.ids[phone], started_at=at,
                                                     record_type="voice_out", other_party="13800000001",
                                                     duration_s=60, fee_fen=fen))

    def balance(self, phone: str, **values: int) -> None:
        with self.gateway.connect(write=True) as conn:
            conn.execute(update(balances).where(balances.c.subscription_id == self.ids[phone]).values(**values))

    def bill(self, phone: str, month: str, total: int, due: date) -> None:
        with self.gateway.connect(write=True) as conn:
            conn.execute(insert(bills).values(id=self._next(conn, bills), subscription_id=self.ids[phone],
                                              bill_month=month, total_fen=total, paid_fen=0, status="unpaid",
                                              due_date=due, issued_at=datetime(2026, 12, 2, tzinfo=UTC)))


@pytest.fixture
def setup(app, ctx, billing):
    session, engine = ctx
    return session, engine, app.extensions["kefu_reminders"], Billing(billing)


def _texts(session, phone: str) -> list[dict]:
    """The context of each reminder queued for ``phone``, oldest first."""
    session.expire_all()
    jobs = session.scalars(select(ConnectorJob).where(ConnectorJob.operation == "sms.send")
                           .order_by(ConnectorJob.id)).all()
    return [j.params for j in jobs if j.params.get("to") == phone]


def _tick(session, engine, service, now):
    report = tick(session, engine, now, reminders=service)
    session.expire_all()
    return report


def test_crossing_80_texts_once_staying_above_does_not_100_texts_again_paying_rearms(setup):
    session, engine, service, billing = setup
    billing.subscriber(POSTPAID)
    billing.usage(POSTPAID, 7_000)
    _tick(session, engine, service, DAYS[0])
    assert _texts(session, POSTPAID) == []                      # 70 %: nothing yet

    billing.usage(POSTPAID, 1_500)
    report = _tick(session, engine, service, DAYS[1])           # 85 %: crosses 80 %
    (first,) = _texts(session, POSTPAID)
    assert first["template"] == "payment_reminder" and first["context"]["percent"] == 80
    assert first["context"]["used"] == "85.00" and first["context"]["credit_limit"] == "100.00"
    assert report.reminders >= 1
    text = sms_templates.render(session, first["template"], first["context"])
    assert "信用额度¥100.00的80%" in text and "请及时缴费" in text and POSTPAID in text

    _tick(session, engine, service, DAYS[1] + timedelta(hours=3))  # the same day again: nothing
    billing.usage(POSTPAID, 500)
    _tick(session, engine, service, DAYS[2])                    # 90 %, still above 80 %: no repeat
    _tick(session, engine, service, DAYS[3])
    assert len(_texts(session, POSTPAID)) == 1

    billing.usage(POSTPAID, 1_200)
    _tick(session, engine, service, DAYS[4])                    # 102 %: crosses 100 %
    texts = _texts(session, POSTPAID)
    assert [t["context"]["percent"] for t in texts] == [80, 100]
    _tick(session, engine, service, DAYS[5])
    assert len(_texts(session, POSTPAID)) == 2

    billing.balance(POSTPAID, balance_fen=5_000)                # pays ¥50 in advance: 52 %
    _tick(session, engine, service, DAYS[6])
    assert len(_texts(session, POSTPAID)) == 2
    assert session.get(ReminderMark, billing.ids[POSTPAID]) is None  # re-armed
    billing.usage(POSTPAID, 3_000)                              # 82 % again: a new crossing
    _tick(session, engine, service, DAYS[7])
    texts = _texts(session, POSTPAID)
    assert [t["context"]["percent"] for t in texts] == [80, 100, 80]
    logged = session.scalars(select(PaymentReminder).where(PaymentReminder.phone == POSTPAID)
                             .order_by(PaymentReminder.id)).all()
    assert [(r.kind, r.level, r.amount_fen, r.limit_fen) for r in logged] == [
        ("credit", 80, 8_500, LIMIT), ("credit", 100, 10_200, LIMIT), ("credit", 80, 8_200, LIMIT)]


def test_jumping_past_both_thresholds_texts_once_with_the_highest(setup):
    session, engine, service, billing = setup
    billing.subscriber(POSTPAID, arrears=6_000)
    billing.usage(POSTPAID, 5_000)
    _tick(session, engine, service, DAYS[0])
    assert [t["context"]["percent"] for t in _texts(session, POSTPAID)] == [100]


def test_a_new_billing_cycle_texts_again_while_still_above(setup):
    session, engine, service, billing = setup
    billing.subscriber(POSTPAID, arrears=8_500)
    _tick(session, engine, service, DAYS[0])
    _tick(session, engine, service, DAYS[1])
    assert len(_texts(session, POSTPAID)) == 1
    january = datetime(2027, 1, 4, 2, 0, tzinfo=UTC)
    billing.bill(POSTPAID, "2026-12", 0, date(2027, 1, 20))   # December billed: nothing unbilled
    _tick(session, engine, service, january)
    assert [t["context"]["percent"] for t in _texts(session, POSTPAID)] == [80, 80]


def test_prepaid_below_the_floor_texts_once_per_crossing(setup):
    session, engine, service, billing = setup
    billing.subscriber(PREPAID, prepaid=True, balance=5_000)
    _tick(session, engine, service, DAYS[0])
    assert _texts(session, PREPAID) == []
    billing.balance(PREPAID, balance_fen=850)
    _tick(session, engine, service, DAYS[1])
    (first,) = _texts(session, PREPAID)
    assert first["template"] == "low_balance"
    assert first["context"]["balance"] == "8.50" and first["context"]["floor"] == "10.00"
    assert "余额¥8.50，已低于¥10.00" in sms_templates.render(session, first["template"], first["context"])
    billing.balance(PREPAID, balance_fen=300)
    _tick(session, engine, service, DAYS[2])                    # still below: no repeat
    assert len(_texts(session, PREPAID)) == 1
    billing.balance(PREPAID, balance_fen=3_000)                 # topped up
    _tick(session, engine, service, DAYS[3])
    billing.balance(PREPAID, balance_fen=900)                   # below again
    _tick(session, engine, service, DAYS[4])
    assert [t["template"] for t in _texts(session, PREPAID)] == ["low_balance", "low_balance"]


def test_nothing_is_texted_to_a_closed_subscription(setup):
    session, engine, service, billing = setup
    billing.subscriber(CLOSED, arrears=20_000, status="closed")
    billing.subscriber("13999000004", prepaid=True, balance=0, status="closed")
    _tick(session, engine, service, DAYS[0])
    assert _texts(session, CLOSED) == [] and _texts(session, "13999000004") == []


def test_the_pass_runs_once_a_day_within_the_hours_spread_over_ticks(setup):
    session, engine, service, billing = setup
    for n in range(5):
        billing.subscriber(f"1399900010{n}", arrears=9_000)
    paged = PaymentReminders(service.gateway, ReminderSettings(hours=CallingHours.parse("09:00-20:00"),
                                                               page=20, pages_per_tick=1))
    night = DAY1 - timedelta(hours=3)  # 07:00 in Beijing
    _tick(session, engine, paged, night)
    assert session.scalar(select(func.count()).select_from(ReminderRun)) == 0
    ticks = 0
    while True:
        ticks += 1
        _tick(session, engine, paged, DAY1 + timedelta(minutes=ticks))
        run = session.scalars(select(ReminderRun)).one()
        if run.finished_at is not None:
            break
        assert ticks < 20
    assert ticks >= 3  # the demo's active GSM subscriptions and ours, 20 a page, one page a tick
    mine = [p for p in (f"1399900010{n}" for n in range(5)) if _texts(session, p)]
    with service.gateway.connect() as conn:
        eligible = conn.scalar(select(func.count()).select_from(subscriptions).where(
            subscriptions.c.status == "active", subscriptions.c.service_type == "gsm"))
    assert len(mine) == 5 and run.texted >= 5 and run.checked == eligible
    _tick(session, engine, paged, DAY1 + timedelta(hours=2))  # the day's pass is done
    assert session.scalars(select(ReminderRun)).one().checked == run.checked


def test_credit_page_reads_arrears_bills_not_yet_due_and_unbilled_usage(setup):
    _session, _engine, service, billing = setup
    sid = billing.subscriber(POSTPAID, arrears=3_000, balance=500)
    billing.bill(POSTPAID, "2026-10", 4_000, date(2026, 11, 20))  # overdue: in arrears already
    billing.usage(POSTPAID, 1_000)                                # December: unbilled
    billing.usage(POSTPAID, 700, datetime(2026, 11, 10, tzinfo=UTC))  # November: billed (bill exists)
    (row,) = [r for r in service.gateway.credit_page(sid - 1, 1, date(2026, 12, 8))]
    assert row == (sid, POSTPAID, False, LIMIT, 500, 3_000 + 1_000)
    other = billing.subscriber("13999000005")
    billing.usage("13999000005", 700, datetime(2026, 11, 10, tzinfo=UTC))
    with service.gateway.connect(write=True) as conn:  # November not billed yet: its calls count
        conn.execute(bills.delete().where(bills.c.subscription_id == other))
        conn.execute(insert(bills).values(id=999_999, subscription_id=other, bill_month="2026-10", total_fen=2_500,
                                          paid_fen=500, status="partly_paid", due_date=date(2026, 12, 20),
                                          issued_at=datetime(2026, 11, 2, tzinfo=UTC)))
    (row,) = service.gateway.credit_page(other - 1, 1, date(2026, 12, 8))
    assert row[5] == 700 + 2_000  # November's unbilled calls + October's bill, due on 12-20


def test_two_schedulers_never_text_the_same_page_twice(setup):
    session, _engine, service, billing = setup
    billing.subscriber(POSTPAID, arrears=9_000)
    run = service._todays_run(session, DAY1)
    day, run_id = run.day, run.id
    queued, finished = service.run_page(session, run, DAY1)  # one page holds every subscription
    assert finished and queued >= 1 and len(_texts(session, POSTPAID)) == 1
    # A second scheduler that read the run before the first moved its cursor: its page is refused.
    stale = ReminderRun(id=run_id, day=day, cursor=0)
    assert service.run_page(session, stale, DAY1) == (0, True)
    assert len(_texts(session, POSTPAID)) == 1
    assert session.scalar(select(func.count()).select_from(PaymentReminder)
                          .where(PaymentReminder.phone == POSTPAID)) == 1


def test_thresholds_are_read_from_the_setting():
    assert ReminderSettings.parse_thresholds("100, 80") == (80, 100)
    assert ReminderSettings.parse_thresholds("90") == (90,)
    for bad in ("", "eighty", "0,80", "80,100,120,150,200"):
        with pytest.raises(ValueError):
            ReminderSettings.parse_thresholds(bad)
