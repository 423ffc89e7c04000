"""SIGKILL a real worker process at chosen points of a connector call, restart it, and count:
every complaint's text reaches the loopback SMSC exactly once and every business order is written
to billing exactly once. Only jobs already handed to a peer can become 'outcome unknown'; the
administrator's query to the SMSC (query_sm) tells which were sent."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from engine import outbox
from tests.crash.conftest import (
    billing_orders,
    jobs_by_status,
    place_calls,
    resolve_incidents,
    settled,
    start_complaints,
    take_orders,
    wait_until,
)

pytestmark = pytest.mark.slow

TEXTS, ORDERS, CLAIM = 10, 3, 4


@pytest.mark.parametrize("point", ["claimed", "submitted", "called"])
def test_a_worker_killed_mid_job_loses_and_doubles_nothing(app, billing, smsc, kefu, point):
    numbers = start_complaints(app, TEXTS)  # first: the first claim is mostly texts
    take_orders(app, ORDERS)
    worker = kefu.start("work", KEFU_CRASH_AT=point, CRASH_CLAIM=str(CLAIM))
    kefu.wait_killed(worker)  # at its first claim of CLAIM jobs
    stranded = jobs_by_status(app)
    # claimed: none handed over yet; submitted: the first group of marks committed, no call made
    # (each job is marked just before its call); called: every call of the claim made, none recorded.
    if point == "claimed":
        assert stranded.get("running") == CLAIM and "submitting" not in stranded, stranded
    elif point == "submitted":
        assert stranded.get("submitting", 0) >= 1 and stranded.get("running", 0) + stranded["submitting"] == CLAIM
    else:
        assert stranded.get("submitting") == CLAIM, stranded
    sent_before = len(smsc.messages())
    unsure = jobs_by_status(app, ("sms.send",)).get("submitting", 0)  # texts handed to the SMSC

    kefu.start("work", CRASH_CLAIM=str(CLAIM))  # restarted: waits out the 1 s lease of the dead one
    wait_until(lambda: settled(app), what="all jobs settled")
    answers = resolve_incidents(app)
    wait_until(lambda: jobs_by_status(app) == {"done": TEXTS + ORDERS}, what="all jobs done")

    texts = Counter(m["destination"] for m in smsc.messages())
    assert texts == Counter(numbers), "a text was lost or sent twice"
    keys = billing_orders(billing)
    assert len(keys) == ORDERS == len(set(keys)), "an order was lost or written twice"
    # Claimed but never handed over: simply run again. Handed over: idempotent orders run again,
    # texts are 'outcome unknown' and the SMSC says whether it has them.
    if point == "claimed":
        assert answers == [] and sent_before == 0
    elif point == "submitted":
        assert sent_before == 0 and len(answers) == unsure >= 1
        assert all(has is None for _op, has in answers)  # no id from the SMSC: never accepted
    else:
        assert sent_before == unsure == len(answers) > 0
        assert all(has is True for _op, has in answers)  # the SMSC has them: confirmed, not re-sent


CALLS = 6


@pytest.mark.parametrize("point", ["claimed", "called"])
def test_a_worker_killed_mid_call_dials_no_customer_twice(app, ami_peer, kefu, point):
    """Callbacks: an Originate cannot be taken back, and the PBX keeps no record Kefu could ask
    for afterwards. Calls claimed but not placed are placed once after the restart; calls placed
    but not recorded become 'outcome unknown' and are not dialled again until an administrator,
    told in words what happened, chooses to retry."""
    from web.extensions import db

    numbers = place_calls(app, CALLS)
    calls = ("pbx.originate",)
    worker = kefu.start("work", KEFU_CRASH_AT=point, CRASH_CLAIM=str(CLAIM), CRASH_AMI=ami_peer.url)
    kefu.wait_killed(worker)
    placed = [a["exten"] for a in ami_peer.actions("Originate")]
    assert len(placed) == (0 if point == "claimed" else CLAIM), placed

    kefu.start("work", CRASH_CLAIM=str(CLAIM), CRASH_AMI=ami_peer.url)
    wait_until(lambda: set(jobs_by_status(app, calls)) <= {"done", "failed"}, what="all calls settled")
    dialled = Counter(a["exten"] for a in ami_peer.actions("Originate"))
    assert dialled == Counter(numbers), "a customer was not called, or called twice"
    with app.app_context():
        unknown = outbox.open_incidents(db.session)
        phones = [db.session.get(outbox.ConnectorJob, i.job_id).params["phone"] for i in unknown]
        assert sorted(phones) == sorted(placed)  # only the calls in flight
        assert all(i.kind == outbox.OUTCOME_UNKNOWN for i in unknown)
        incident_ids = [i.id for i in unknown]
        db.session.rollback()

    browser = app.test_client()
    assert browser.post("/login", data={"username": "admin", "password": "kefu-demo"}).status_code == 302
    page = browser.get("/admin/incidents").get_data(as_text=True)
    if point == "claimed":
        assert jobs_by_status(app, calls) == {"done": CALLS}
        return
    words = re.sub(r"<details.*?</details>", "", page, flags=re.DOTALL)  # the worker's note, for maintainers
    assert "外呼" in words and "结果不明" in words and "无法事后查询" in words
    assert "pbx.originate" not in page and "the worker stopped" not in words
    assert "Ask the peer" not in page and "询问对方系统" not in page  # the PBX cannot be asked
    for incident_id in incident_ids:  # the administrator decides to call again
        assert browser.post(f"/admin/incidents/{incident_id}/retry").status_code == 302
    wait_until(lambda: jobs_by_status(app, calls) == {"done": CALLS}, what="the retried calls done")
    redialled = Counter(a["exten"] for a in ami_peer.actions("Originate")) - Counter(numbers)
    assert redialled == Counter(placed), "the retry should dial exactly the calls in doubt, once"
