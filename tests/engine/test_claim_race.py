"""Two agents claiming the same free task at once: exactly one wins, the other is told it is
taken — even when both read it free (PostgreSQL's read committed lets both see it so)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import Conflict
from engine.models import OPEN, HumanTask
from engine.people import user_by_name
from tests.conftest import INTAKE, T0


def test_the_second_of_two_simultaneous_claims_is_refused(bundled, monkeypatch):
    session, engine = bundled
    instance = engine.start(session, "complaint", INTAKE, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    task = session.scalar(select(HumanTask).where(HumanTask.instance_id == instance.id, HumanTask.status == OPEN))
    if task.assignee_id is not None:
        engine.unclaim(session, task.id, user_by_name(session, "agent1"), T0)
        session.commit()
    task_id = session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance.id,
                                                        HumanTask.status == OPEN))
    stale = session.get(HumanTask, task_id)  # agent1's request has read the task: free
    assert stale.assignee_id is None
    session.expunge(stale)
    session.commit()  # (SQLite serialises writers: let the other request in)

    with Session(session.get_bind()) as other:  # meanwhile agent2's request claims it and commits
        engine.claim(other, task_id, user_by_name(other, "agent2"), T0)
        other.commit()

    # agent1's request still holds what it read before agent2's commit: the task free
    stale = session.merge(stale, load=False)
    monkeypatch.setattr(engine, "get_task", lambda _session, _task_id, _actor: stale)
    with pytest.raises(Conflict):
        engine.claim(session, task_id, user_by_name(session, "agent1"), T0)
    session.rollback()
    assert session.get(HumanTask, task_id).assignee_id == user_by_name(session, "agent2").id
