"""Real Kefu processes (``tests/crash/driver.py``) on the test's database, billing database and
loopback SMSC, started and SIGKILLed by the crash and concurrency tests."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from connectors.billing.schema import service_orders
from engine import outbox
from engine.clock import utcnow
from engine.models import open_tasks_of_instance
from engine.people import user_by_name
from tests.conftest import INTAKE, ROOT, T0
from web.extensions import db


class Processes:
    """Driver processes of one test; every one still alive is killed at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-m", "tests.crash.driver", *args], cwd=ROOT,
                                   env={**self.env, **extra}, stdout=subprocess.PIPE)
        self.running.append(process)
        assert process.stdout is not None
        readable, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if readable else b""
        assert line.strip() == b"ready", f"driver {args} did not start (exit {process.poll()})"
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)

    def wait_killed(self, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
        """The process stopped itself with SIGKILL at its crash point."""
        assert process.wait(timeout) == -signal.SIGKILL

    def close(self) -> None:
        for process in self.running:
            self.kill(process)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def kefu(app, billing, smsc, tmp_path: Path) -> Iterator[Processes]:
    smsc.configure(receipt_delay_ms=20)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEFU_", "CRASH_"))}
    env.update(CRASH_DB=app.config["SQLALCHEMY_DATABASE_URI"], CRASH_BILLING=app.config["KEFU_BILLING_URL"],
               CRASH_SMPP=smsc.url, CRASH_LEASE="1", KEFU_DATA_DIR=str(tmp_path / "data"),
               KEFU_SECRET_KEY="crash-tests", PYTHONUNBUFFERED="1")
    from web.connectors_setup import use_smsc

    use_smsc(app, smsc.url)  # the administrator's pages ask the same SMSC
    running = Processes(env)
    yield running
    running.close()
    app.extensions["kefu_connectors"].close()


def start_complaints(app, count: int, first: int = 0) -> list[str]:
    """``count`` complaints, each texting its acceptance notice to its own contact number."""
    numbers = [f"139{first + i:08d}" for i in range(count)]
    with app.app_context():
        engine, agent = app.extensions["kefu_engine"], user_by_name(db.session, "agent1")
        for number in numbers:
            engine.start(db.session, "complaint", {**INTAKE, "contact_phone": number}, actor=agent, now=utcnow())
            db.session.commit()
    return numbers


def take_orders(app, count: int) -> None:
    """``count`` business acceptance cases up to their service order (one billing order each)."""
    with app.app_context():
        engine, agent = app.extensions["kefu_engine"], user_by_name(db.session, "agent1")
        for _ in range(count):
            instance = engine.start(db.session, "business_acceptance", {"customer_phone": "13800000001"},
                                    actor=agent, now=utcnow())
            db.session.commit()
            for name, data in (("verify", {"service_password": "123456"}),
                               ("take_request", {"request_type": "feature_on", "feature": "call_waiting"})):
                (task,) = [t for t in open_tasks_of_instance(db.session, instance.id) if t.name == name]
                engine.complete_task(db.session, task.id, data, actor=agent, now=utcnow())
                db.session.commit()


def place_calls(app, count: int) -> list[str]:
    """``count`` outbound callbacks dialled by agent1 (Monday 09:00, in the calling hours): one
    ``pbx.originate`` job each, ringing agent1's extension, then the customer."""
    from processes.outbound_calls import start_callback

    numbers = [f"135{i:08d}" for i in range(count)]
    with app.app_context():
        engine, agent = app.extensions["kefu_engine"], user_by_name(db.session, "agent1")
        for number in numbers:
            instance, _created = start_callback(db.session, engine, phone=number, reason="遇忙回叫",
                                                kind="ivr_callback", priority=0, now=T0)
            db.session.commit()
            (task,) = [t for t in open_tasks_of_instance(db.session, instance.id) if t.name == "dial"]
            engine.complete_task(db.session, task.id, {}, actor=agent, now=T0)
            db.session.commit()
    return numbers


def jobs_by_status(app, operations: tuple[str, ...] = ("sms.send", "billing.submit_order")) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(sql_select(outbox.ConnectorJob.status, func.count())
                                  .where(outbox.ConnectorJob.operation.in_(operations))
                                  .group_by(outbox.ConnectorJob.status)).all()
        db.session.rollback()
    return {status: count for status, count in rows}


def wait_until(condition: Callable[[], Any], timeout: float = 60, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not reached within {timeout:g}s"
        time.sleep(0.1)


def settled(app) -> bool:
    """Every text and order job is done or parked as an incident."""
    return set(jobs_by_status(app)) <= {"done", "failed"}


def billing_orders(billing) -> list[str]:
    with billing.engine.connect() as conn:
        return list(conn.scalars(sql_select(service_orders.c.idempotency_key)
                                 .where(service_orders.c.idempotency_key.like("kefu-%"))))


def resolve_incidents(app) -> list[tuple[str, bool | None]]:
    """Do what the administrator does with each open incident: ask the peer, confirm what it has,
    retry what it has not. Returns (operation, what the peer said) per incident."""
    from engine import worker

    answers = []
    with app.app_context():
        engine, now = app.extensions["kefu_engine"], utcnow()
        for incident in outbox.open_incidents(db.session):
            assert incident.kind == outbox.OUTCOME_UNKNOWN, incident.message
            answer = worker.ask_peer(db.session, engine.operations, incident.id, actor="admin", now=now)
            assert answer.has is not None or "没有返回短信编号" in answer.summary_zh, answer.summary_zh
            if answer.has:
                outbox.confirm_incident(db.session, incident.id, actor="admin", now=now, result=answer.result)
            else:
                outbox.retry_incident(db.session, incident.id, actor="admin", now=now)
            db.session.commit()
            answers.append((incident.operation, answer.has))
    return answers


LEASE_OVER = timedelta(seconds=1.5)
