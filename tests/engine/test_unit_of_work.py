"""Post-commit effects: run once after the commit, never after a rollback, one failing alone."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from engine import unit_of_work


def _session(tmp_path) -> Session:
    unit_of_work.install()
    return Session(create_engine(f"sqlite:///{tmp_path / 'uow.db'}"))


def test_effects_run_after_commit_and_not_after_rollback(tmp_path):
    ran: list[str] = []
    with _session(tmp_path) as session:
        session.execute(text("SELECT 1"))
        unit_of_work.after_commit(session, lambda: ran.append("rolled back"))
        session.rollback()
        assert ran == [] and unit_of_work.pending(session) == 0
        session.execute(text("SELECT 1"))
        unit_of_work.after_commit(session, lambda: ran.append("a"))
        unit_of_work.after_commit(session, lambda: ran.append("old"), key="k")
        unit_of_work.after_commit(session, lambda: ran.append("new"), key="k")  # replaces "old"
        assert ran == []
        session.commit()
        assert ran == ["a", "new"]
        session.commit()
        assert ran == ["a", "new"]  # once


def test_a_failing_effect_does_not_stop_the_others(tmp_path):
    ran: list[str] = []
    with _session(tmp_path) as session:
        session.execute(text("SELECT 1"))
        unit_of_work.after_commit(session, lambda: 1 / 0)
        unit_of_work.after_commit(session, lambda: ran.append("woken"))
        session.commit()
    assert ran == ["woken"]
