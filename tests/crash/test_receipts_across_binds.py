"""Delivery receipts across several bound processes and an SMSC restart (issue 17 item 2): two
worker processes, each with its own bind; the SMSC hands every receipt to the bind that did NOT
submit the text, and after it restarts it numbers its messages from 1 again. Every receipt must
land on its own text's case, once."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from engine import peer_events
from engine.models import AuditEvent
from tests.crash.conftest import jobs_by_status, start_complaints, wait_until
from web.extensions import db

TEXTS = 12  # per numbering epoch of the SMSC


def _receipts(app) -> tuple[int, Counter[int]]:
    """(receipts settled, smpp_delivered events per case)."""
    with app.app_context():
        events = peer_events.recent_inbound(db.session, "smpp_receipt", limit=1000)
        settled = sum(1 for e in events if e.processed_at is not None)
        delivered = Counter(db.session.scalars(select(AuditEvent.instance_id).where(
            AuditEvent.kind == "smpp_delivered")))
        db.session.rollback()
    return settled, delivered


def _cases_by_number(app) -> dict[str, int]:
    from engine import outbox

    with app.app_context():
        jobs = db.session.scalars(select(outbox.ConnectorJob).where(outbox.ConnectorJob.operation == "sms.send"))
        numbers = {str(j.params.get("to")): j.instance_id for j in jobs}
        db.session.rollback()
    return numbers


def test_every_receipt_lands_on_its_own_case_whichever_process_gets_it_across_an_smsc_restart(
        app, billing, smsc, smsc_factory, kefu):
    smsc.configure(receipt_route="other")
    for _ in range(2):  # two processes, two binds; small claims so that both send
        kefu.start("work", CRASH_CLAIM="2", CRASH_LEASE="300")
    smsc.wait_for(lambda p: p.stats()["bound"] == 2, timeout=30)
    start_complaints(app, TEXTS)
    wait_until(lambda: jobs_by_status(app, ("sms.send",)) == {"done": TEXTS}, what="the first texts")
    wait_until(lambda: _receipts(app)[0] == TEXTS, what="the first receipts")

    port = smsc.smpp_port
    smsc.stop()
    restarted = smsc_factory(port=port, receipt_delay_ms=20, receipt_route="other")
    restarted.wait_for(lambda p: p.stats()["bound"] == 2, timeout=30)
    start_complaints(app, TEXTS, first=TEXTS)
    wait_until(lambda: jobs_by_status(app, ("sms.send",)) == {"done": 2 * TEXTS}, what="the texts after the restart")
    wait_until(lambda: _receipts(app)[0] == 2 * TEXTS, timeout=90, what="the receipts after the restart")

    parts = restarted.parts()
    assert len(parts) == TEXTS and {p["message_id"] for p in parts} == {f"{i:010d}" for i in range(1, TEXTS + 1)}
    assert restarted.stats()["receipts_sent"] == TEXTS
    cases = _cases_by_number(app)
    _settled, delivered = _receipts(app)
    wrong = {cases[number]: delivered[case] for number, case in cases.items() if delivered[case] != 1}
    with app.app_context():  # what happened to them, should the test fail
        inbound = [(e.id, e.ref, e.instance_id, e.outcome, e.payload.get("detail", {}).get("source"))
                   for e in peer_events.recent_inbound(db.session, "smpp_receipt", limit=1000)
                   if e.instance_id in wrong or e.instance_id is None]
        db.session.rollback()
    assert wrong == {}, f"receipts did not land once on their own case: {wrong} {inbound}"
    assert len(delivered) == 2 * TEXTS
