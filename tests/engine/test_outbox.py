"""The connector outbox: jobs written with their step, run after commit, retried with backoff,
incidents, crash recovery and delivery of results into the waiting instance."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from connectors.base import INLINE, NotReady, Operation, PermanentError, TransientError
from engine import outbox, peer_events
from engine.errors import DefinitionInvalid, PeerUnavailable
from engine.models import ProcessInstance, instance_events, open_tasks_of_instance
from engine.people import user_by_name
from tests.conftest import T0

DIAGRAM = (Path(__file__).parent / "diagrams" / "outbox.bpmn").read_bytes()
NOTE = {"note.schema.json": {"type": "object", "properties": {"note": {"type": "string"}}}}


class ScriptedPeer:
    """Stands in for a remote system inside the process: answers by a script, counts calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.script: list[Exception] = []  # raised in order before answering normally
        self.lock = threading.Lock()

    def echo(self, params, call):
        with self.lock:
            self.calls.append((call.key, params))
            if self.script:
                raise self.script.pop(0)
        return {"text": params["text"], "attempt": call.attempt}

    def lookup(self, params, call):
        if params["phone"] == "down":
            raise TransientError("billing database unreachable")
        return {"vip": params["phone"].endswith("1")}


@pytest.fixture
def peer(store):
    session, engine = store
    peer = ScriptedPeer()
    engine.operations.update({
        "test.echo": Operation("test.echo", "回显", peer.echo, required=("text",)),
        "test.lookup": Operation("test.lookup", "查询", peer.lookup, required=("phone",), mode=INLINE),
    })
    engine.deploy(session, DIAGRAM, NOTE, now=T0)
    session.commit()
    yield peer
    engine.operations.pop("test.echo")
    engine.operations.pop("test.lookup")


def _start(session, engine, text="你好", phone="13800000001"):
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "outbox_test", {"text": text, "customer_phone": phone},
                            actor=agent, now=T0)
    session.commit()
    return instance


def _jobs(session, instance_id):
    session.expire_all()
    return outbox.jobs_of_instance(session, instance_id)


def test_job_is_written_with_the_step_and_result_resumes_the_instance(store, peer):
    session, engine = store
    instance = _start(session, engine)
    (job,) = _jobs(session, instance.id)
    assert (job.operation, job.status, job.params, job.wait) == ("test.echo", "queued", {"text": "你好"}, True)
    assert peer.calls == []  # nothing is called inside the step
    assert open_tasks_of_instance(session, instance.id) == []  # the instance waits

    report = engine.run_jobs(session, T0)
    assert report.done == 1
    (job,) = _jobs(session, instance.id)
    assert job.status == "done" and job.result == {"text": "你好", "attempt": 1}
    (task,) = open_tasks_of_instance(session, instance.id)
    assert task.name == "review"
    data = engine.workflow_data(session, session.get(ProcessInstance, instance.id))
    assert data["echo"] == {"text": "你好", "attempt": 1}
    assert data["found"] == {"vip": True}  # the inline lookup ran inside the step


def test_a_notification_does_not_hold_the_case(store, peer):
    session, engine = store
    instance = _start(session, engine)
    engine.run_jobs(session, T0)
    (task,) = open_tasks_of_instance(session, instance.id)
    engine.complete_task(session, task.id, {"note": "ok"}, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    assert session.get(ProcessInstance, instance.id).status == "completed"
    notify = _jobs(session, instance.id)[-1]
    assert (notify.element_id, notify.status, notify.wait) == ("notify", "queued", False)
    assert notify.params == {"text": "done: 你好"}
    engine.run_jobs(session, T0)
    assert _jobs(session, instance.id)[-1].status == "done"
    assert [c[1]["text"] for c in peer.calls] == ["你好", "done: 你好"]


def test_a_step_that_rolls_back_leaves_no_job(store, peer):
    session, engine = store
    agent = user_by_name(session, "agent1")
    engine.start(session, "outbox_test", {"text": "x", "customer_phone": "1"}, actor=agent, now=T0)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(outbox.ConnectorJob)) == 0


def test_transient_failures_back_off_exponentially_then_succeed(store, peer):
    session, engine = store
    instance = _start(session, engine)
    peer.script = [TransientError("SMSC busy"), TransientError("SMSC busy")]
    assert engine.run_jobs(session, T0).retried == 1
    (job,) = _jobs(session, instance.id)
    assert job.status == "queued" and job.next_run_at == T0 + timedelta(seconds=10)
    assert engine.run_jobs(session, T0 + timedelta(seconds=9)).total == 0  # not due yet
    assert engine.run_jobs(session, T0 + timedelta(seconds=10)).retried == 1
    (job,) = _jobs(session, instance.id)
    assert job.next_run_at == T0 + timedelta(seconds=30)  # 10 s, then 20 s
    assert engine.run_jobs(session, T0 + timedelta(seconds=30)).done == 1
    (job,) = _jobs(session, instance.id)
    assert job.attempts == 3 and job.result["attempt"] == 3
    assert len(peer.calls) == 3 and len({c[0] for c in peer.calls}) == 1  # one idempotency key
    assert open_tasks_of_instance(session, instance.id)[0].name == "review"


def test_exhausted_retries_open_an_incident_and_retry_resumes(store, peer):
    session, engine = store
    instance = _start(session, engine)
    peer.script = [TransientError("link down")] * 5
    at = T0
    for _ in range(5):
        engine.run_jobs(session, at)
        at += timedelta(hours=2)
    (job,) = _jobs(session, instance.id)
    assert job.status == "failed" and job.attempts == 5
    (incident,) = outbox.open_incidents(session)
    assert (incident.kind, incident.instance_id, incident.element_id) == ("exhausted", instance.id, "call")
    assert "link down" in incident.message
    assert outbox.incident_elements(session, instance.id) == {"call"}
    assert engine.run_jobs(session, at + timedelta(days=1)).total == 0  # parked until a person acts

    outbox.retry_incident(session, incident.id, actor="admin", now=at)
    session.commit()
    assert engine.run_jobs(session, at).done == 1
    assert outbox.open_incidents(session) == []
    assert open_tasks_of_instance(session, instance.id)[0].name == "review"


def test_a_refused_call_is_an_incident_at_once(store, peer):
    session, engine = store
    instance = _start(session, engine)
    peer.script = [PermanentError("SMSC refused the bind: ESME_RINVPASWD")]
    assert engine.run_jobs(session, T0).incidents == 1
    (incident,) = outbox.open_incidents(session)
    assert incident.kind == "refused" and "ESME_RINVPASWD" in incident.message
    assert "incident" in [e.kind for e in instance_events(session, instance.id)]


def test_not_ready_asks_again_later_without_counting_an_attempt(store, peer):
    session, engine = store
    instance = _start(session, engine)
    peer.script = [NotReady(timedelta(seconds=30))] * 3
    at = T0
    for _ in range(3):
        assert engine.run_jobs(session, at).waiting == 1
        at += timedelta(seconds=30)
    (job,) = _jobs(session, instance.id)
    assert job.attempts == 0 and job.status == "queued"
    assert engine.run_jobs(session, at).done == 1


def test_worker_crash_mid_call_never_calls_a_non_idempotent_peer_twice(store, peer):
    session, engine = store
    instance = _start(session, engine)
    (claimed,) = engine.worker.claim(session, T0, 10)
    jobs = engine.worker.submitting(session, [claimed], T0)  # committed: handed to the peer
    engine.worker.execute(jobs, T0)  # the peer is called … and the worker dies here
    assert len(peer.calls) == 1
    report = engine.run_jobs(session, T0 + timedelta(minutes=10))  # lease (5 min) ran out
    assert len(peer.calls) == 1 and report.total == 0
    (incident,) = outbox.open_incidents(session)
    assert incident.kind == "outcome_unknown" and incident.instance_id == instance.id
    assert "confirmed nothing" in incident.message


def test_jobs_claimed_but_never_handed_to_the_peer_are_queued_again_not_unknown(store, peer):
    session, engine = store
    instances = [_start(session, engine, text=f"第{i}条") for i in range(3)]
    claimed = engine.worker.claim(session, T0, 10)
    assert len(claimed) == 3
    engine.worker.submitting(session, claimed[:1], T0)  # the first was handed over, then a crash
    report = engine.run_jobs(session, T0 + timedelta(minutes=10))
    assert report.done == 2 and len(peer.calls) == 2  # the two never sent are sent now, once each
    (incident,) = outbox.open_incidents(session)
    assert incident.kind == "outcome_unknown" and incident.instance_id == instances[0].id
    retried = [e for i in instances[1:] for e in instance_events(session, i.id) if e.kind == "job_retry"]
    assert len(retried) == 2 and all("before calling the peer" in e.message for e in retried)


def test_small_claims_and_ids_noted_as_the_peer_gives_them(store, peer):
    session, engine = store
    engine.worker.claim_size = 2
    for i in range(5):
        _start(session, engine, text=f"第{i}条")

    def accepting(params, call):
        call.accepted("test", [f"m-{call.job_id}"])
        if params["text"] == "第3条":
            raise TransientError("link dropped after the peer accepted it")
        return {"peer_refs": {"kind": "test", "ids": [f"m-{call.job_id}"]}}

    engine.operations["test.echo"] = Operation("test.echo", "回显", accepting, required=("text",))
    claims = []
    original = engine.worker.claim
    engine.worker.claim = lambda *a: claims.append(original(*a)) or claims[-1]
    assert engine.run_jobs(session, T0).done == 4
    assert [len(c) for c in claims] == [2, 2, 1]
    refs = list(session.scalars(select(peer_events.PeerReference).order_by(peer_events.PeerReference.id)))
    assert len(refs) == 5 and len({(r.job_id, r.ref) for r in refs}) == 5  # no second row at the end
    assert sorted(r.state for r in refs) == ["accepted"] + ["submitted"] * 4


def test_an_unknown_outcome_the_peer_confirms_is_closed_without_a_second_call(store, peer):
    session, engine = store
    instance = _start(session, engine)
    (claimed,) = engine.worker.submitting(session, engine.worker.claim(session, T0, 10), T0)
    engine.worker.execute([claimed], T0, bind=session.get_bind())
    engine.run_jobs(session, T0 + timedelta(minutes=10))
    (incident,) = outbox.open_incidents(session)
    outbox.confirm_incident(session, incident.id, actor="admin", now=T0 + timedelta(minutes=11),
                            result={"text": "你好", "confirmed": True})
    session.commit()
    engine.run_jobs(session, T0 + timedelta(minutes=11))
    assert len(peer.calls) == 1 and outbox.open_incidents(session) == []
    assert open_tasks_of_instance(session, instance.id)[0].name == "review"
    kinds = [e.kind for e in instance_events(session, instance.id)]
    assert "incident_confirmed" in kinds and kinds.count("job_done") == 1


def test_worker_crash_mid_call_reruns_an_idempotent_operation(store, peer):
    session, engine = store
    engine.operations["test.echo"] = Operation("test.echo", "回显", peer.echo, required=("text",),
                                               idempotent=True)
    instance = _start(session, engine)
    engine.worker.claim(session, T0, 10)  # claimed, then the worker dies
    assert engine.run_jobs(session, T0 + timedelta(minutes=1)).total == 0  # lease still held
    assert engine.run_jobs(session, T0 + timedelta(minutes=10)).done == 1
    assert outbox.open_incidents(session) == []
    assert open_tasks_of_instance(session, instance.id)[0].name == "review"


def test_a_busy_case_gets_the_result_later_without_a_second_call(store, peer, monkeypatch):
    session, engine = store
    instance = _start(session, engine)
    from engine.errors import Conflict

    original = engine.worker.deliver
    failures = iter([Conflict("the case was changed by someone else")])

    def deliver(session, job, now):
        for exc in failures:
            raise exc
        original(session, job, now)

    monkeypatch.setattr(engine.worker, "deliver", deliver)
    engine.run_jobs(session, T0)
    (job,) = _jobs(session, instance.id)
    assert job.status == "delivering" and job.result["text"] == "你好"
    assert engine.run_jobs(session, T0 + timedelta(seconds=5)).done == 1
    assert len(peer.calls) == 1
    assert open_tasks_of_instance(session, instance.id)[0].name == "review"


def test_inline_failure_abandons_the_step_with_a_clear_error(store, peer):
    session, engine = store
    agent = user_by_name(session, "agent1")
    with pytest.raises(PeerUnavailable, match="billing database unreachable"):
        engine.start(session, "outbox_test", {"text": "x", "customer_phone": "down"}, actor=agent, now=T0)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ProcessInstance)
                          .where(ProcessInstance.process_key == "outbox_test")) == 0


def test_deploy_refuses_unknown_operations_and_missing_parameters(store, peer):
    session, engine = store
    bad_op = DIAGRAM.replace(b'id="test.echo" resultVariable="echo"', b'id="sms.nope" resultVariable="echo"')
    with pytest.raises(DefinitionInvalid) as err:
        engine.deploy(session, bad_op, NOTE, now=T0)
    assert err.value.errors == [{"element_id": "call",
                                 "message": "no installed connector offers the operation 'sms.nope'"}]
    no_param = DIAGRAM.replace(b'<spiffworkflow:parameter id="phone" type="str" value="customer_phone" />', b"")
    with pytest.raises(DefinitionInvalid) as err:
        engine.deploy(session, no_param, NOTE, now=T0)
    assert err.value.errors[0]["element_id"] == "lookup" and "phone" in err.value.errors[0]["message"]


def test_many_jobs_run_concurrently_each_exactly_once(store, peer):
    session, engine = store
    for i in range(60):
        outbox.enqueue(session, "test.echo", {"text": f"m{i}"}, key=f"bulk-{i}", now=T0)
    session.commit()
    report = engine.run_jobs(session, T0, batch=25)
    assert report.done == 60
    assert sorted(c[1]["text"] for c in peer.calls) == sorted(f"m{i}" for i in range(60))



def test_one_outcome_that_cannot_be_stored_does_not_roll_back_the_batch(store, peer):
    session, engine = store
    good = [_start(session, engine, text=f"第{i}条") for i in range(3)]
    bad = _start(session, engine, text="坏结果")
    original = peer.echo

    def echo(params, call):
        result = original(params, call)
        if params["text"] == "坏结果":
            result["unstorable"] = {1, 2}  # a set: the JSON column refuses it at flush
        return result

    engine.operations["test.echo"] = Operation("test.echo", "回显", echo, required=("text",))
    report = engine.run_jobs(session, T0)
    assert report.done == 3 and report.incidents == 1
    for instance in good:
        (job,) = _jobs(session, instance.id)
        assert job.status == "done"
    (job,) = _jobs(session, bad.id)
    (incident,) = outbox.open_incidents(session)
    assert job.status == "failed" and incident.kind == "unrecorded"
    assert "the peer answered" in incident.message
    assert len(peer.calls) == 4  # every peer was called once, none again


def test_a_peer_id_given_again_after_a_restart_reports_on_the_newest_call(store, peer):
    session, engine = store
    first, second = _start(session, engine, text="一"), _start(session, engine, text="二")
    engine.run_jobs(session, T0)
    jobs = [_jobs(session, first.id)[0], _jobs(session, second.id)[0]]
    peer_events.add_references(session, jobs[0], "smpp", ["0000000001"], "submitted", T0)
    session.commit()
    later = T0 + timedelta(hours=1)
    peer_events.add_references(session, jobs[1], "smpp", ["0000000001"], "submitted", later)  # same id again
    session.commit()
    row = peer_events.update_reference(session, "smpp", "0000000001", "delivered", later)
    assert row.instance_id == second.id
    session.commit()
    # Beyond the window an id names no call any more.
    assert peer_events.update_reference(session, "smpp", "0000000001", "delivered",
                                   later + peer_events.REFERENCE_WINDOW + timedelta(minutes=1)) is None


def _restarted_peer_ids(session, engine):
    """Two texts the SMSC gave id 0000000001: one before it restarted (recorded ten minutes
    before the other was submitted, by the host's clock), one after — not recorded yet."""
    old, new = _start(session, engine, text="一"), _start(session, engine, text="二")
    engine.run_jobs(session, T0)
    old_job, new_job = _jobs(session, old.id)[0], _jobs(session, new.id)[0]
    old_job.params = {**old_job.params, "to": "13800000001"}
    new_job.params = {**new_job.params, "to": "13800000002"}
    peer_events.add_references(session, old_job, "smpp", ["0000000001"], "submitted", T0)
    session.flush()
    submitted = datetime.now(UTC).replace(second=0, microsecond=0)  # a receipt's submit date: minutes
    (ref,) = session.scalars(select(peer_events.PeerReference).where(peer_events.PeerReference.job_id == old_job.id))
    ref.given_at = submitted - timedelta(minutes=10)
    session.commit()
    return old, new, old_job, new_job, submitted


def test_a_receipt_never_goes_to_a_text_the_smsc_gave_its_id_before_it_restarted(store, peer):
    """The receipt of the text after the restart comes before that text's id is recorded (another
    process sent it): it waits — whether it names no submit or, from a process that outlived the
    restart, the older text's job — and then goes to its own text (issue 17 item 2)."""
    session, engine = store
    old, new, old_job, new_job, submitted = _restarted_peer_ids(session, engine)
    later = T0 + timedelta(minutes=5)
    for tag in (None, old_job.key):
        assert peer_events.update_reference(session, "smpp", "0000000001", "delivered", later,
                                            job_key=tag, called_at=submitted) is None
    # Without its submit date, the handset number tells the texts apart.
    assert peer_events.update_reference(session, "smpp", "0000000001", "delivered", later,
                                        address="8613800000002") is None
    peer_events.add_references(session, new_job, "smpp", ["0000000001"], "submitted", later)
    session.commit()
    for tag in (None, old_job.key, new_job.key):
        row = peer_events.update_reference(session, "smpp", "0000000001", "delivered", later,
                                           job_key=tag, called_at=submitted, address="13800000002")
        assert row.instance_id == new.id
        session.rollback()
    # An older text that already had its final receipt takes no other.
    (old_ref,) = session.scalars(select(peer_events.PeerReference).where(peer_events.PeerReference.job_id == old_job.id))
    old_ref.given_at, old_ref.state = submitted, "delivered"
    session.commit()
    session.execute(delete(peer_events.PeerReference).where(peer_events.PeerReference.job_id == new_job.id))
    assert peer_events.update_reference(session, "smpp", "0000000001", "delivered", later,
                                        settled={"delivered"}) is None
    # Knowing nothing of the receipt, the newest text with the id takes it (as before).
    assert peer_events.update_reference(session, "smpp", "0000000001", "delivered", later).instance_id == old.id


def test_a_receipt_no_recorded_text_fits_waits_at_each_tick_then_is_kept_as_unmatched(store, peer):
    from processes.inbound import RECEIPT_GRACE, process_inbound

    session, engine = store
    old, new, old_job, new_job, submitted = _restarted_peer_ids(session, engine)
    received = datetime.now(UTC)
    detail = {"source": "13800000002", "submitted_at": submitted.isoformat(), "submit_tag": old_job.key}
    receipt = peer_events.receive(session, "smpp_receipt", {"state": "delivered", "detail": detail},
                                  now=received, ref="0000000001")
    stray = peer_events.receive(session, "smpp_receipt", {"state": "delivered", "detail": {**detail, "source": "139"}},
                                now=received, ref="0000000001")
    session.commit()
    assert process_inbound(session, engine, received + timedelta(seconds=5)) == 0  # both wait
    assert receipt.processed_at is None and stray.processed_at is None
    peer_events.add_references(session, new_job, "smpp", ["0000000001"], "submitted", received)
    session.commit()
    assert process_inbound(session, engine, received + timedelta(seconds=10)) == 1
    assert (receipt.outcome, receipt.instance_id) == ("message delivered", new.id)
    assert stray.processed_at is None
    assert process_inbound(session, engine, received + RECEIPT_GRACE) == 1
    assert stray.outcome.startswith("unknown message id") and stray.instance_id is None
    delivered = [e for i in (old.id, new.id) for e in instance_events(session, i) if e.kind == "smpp_delivered"]
    assert [e.instance_id for e in delivered] == [new.id]


def test_a_call_that_outlives_its_lease_closes_its_unknown_incident_when_it_answers(store, peer):
    from engine.worker import RunReport

    session, engine = store
    instance = _start(session, engine)
    jobs = engine.worker.submitting(session, engine.worker.claim(session, T0, 10), T0)
    outcomes = engine.worker.execute(jobs, T0)  # a slow call: meanwhile another worker …
    engine.run_jobs(session, T0 + timedelta(minutes=10))  # … finds the lease over: outcome unknown
    assert [i.kind for i in outbox.open_incidents(session)] == ["outcome_unknown"]
    engine.worker.record(session, outcomes, T0 + timedelta(minutes=11), RunReport())  # then it answers
    assert outbox.open_incidents(session) == [] and len(peer.calls) == 1
    assert open_tasks_of_instance(session, instance.id)[0].name == "review"
