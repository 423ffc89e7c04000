"""A Kefu process for the crash and concurrency tests, started as ``python -m tests.crash.driver MODE``
and killed with SIGKILL by them:

* ``serve PORT`` — the app over HTTP (werkzeug, threaded), as a server process;
* ``work`` — the connector job worker (``run_jobs`` + what peers sent), every 50 ms;
* ``tick`` — the scheduler's tick, guarded by the database lease as in ``web.scheduler``
  (``CRASH_NO_LEASE=1``: without the lease, to show every tick step is safe concurrently).

Configuration from the environment: ``CRASH_DB``, ``CRASH_BILLING``, ``CRASH_SMPP`` (URLs),
``CRASH_AMI`` (the PBX's AMI URL; unset: originate jobs wait), ``CRASH_LEASE`` (job lease seconds), ``CRASH_CLAIM`` (jobs per claim), ``CRASH_STEP_FILE`` (serve:
SIGKILL this process inside the next step that closes a task, while that file exists).
``KEFU_CRASH_AT`` stops the worker at a point of a job (see ``engine.worker._stop_here``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from engine.listeners import StepHooks


def make_app() -> Flask:
    from web import create_app

    config = {"SQLALCHEMY_DATABASE_URI": os.environ["CRASH_DB"], "WTF_CSRF_ENABLED": False,
              "KEFU_BILLING_URL": os.environ["CRASH_BILLING"], "KEFU_BILLING_DEMO": False}
    if os.environ.get("CRASH_AMI"):  # quick timeouts against the loopback peer, as the other tests
        from tests.conftest import FAST_AMI

        config.update(KEFU_AMI_URL=os.environ["CRASH_AMI"], KEFU_AMI_OPTIONS=FAST_AMI)
    app = create_app(config)
    engine = app.extensions["kefu_engine"]
    if os.environ.get("CRASH_LEASE"):
        engine.worker.lease = timedelta(seconds=float(os.environ["CRASH_LEASE"]))
    if os.environ.get("CRASH_CLAIM"):
        engine.worker.claim_size = int(os.environ["CRASH_CLAIM"])
    from web.connectors_setup import start_links, use_smsc

    if os.environ.get("CRASH_SMPP"):
        use_smsc(app, os.environ["CRASH_SMPP"])
    start_links(app)
    return app


class StopInsideStep(StepHooks):
    """A step listener that kills the process while a step is being written (before its commit)."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def task_closed(self, *args: Any) -> None:
        if self.flag.exists():
            os.kill(os.getpid(), signal.SIGKILL)



def serve(port: int) -> None:
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    app = make_app()
    if os.environ.get("CRASH_STEP_FILE"):
        app.extensions["kefu_engine"].listeners.append(StopInsideStep(Path(os.environ["CRASH_STEP_FILE"])))
    server = make_server("127.0.0.1", port, app, threaded=True)
    print("ready", flush=True)
    server.serve_forever()


def work() -> None:
    from engine.clock import utcnow
    from processes.inbound import process_inbound
    from web.extensions import db

    app = make_app()
    engine = app.extensions["kefu_engine"]
    print("ready", flush=True)
    while True:
        with app.app_context():
            try:
                now = utcnow()
                engine.run_jobs(db.session, now)
                process_inbound(db.session, engine, now)
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 - as the product's waker: the next round retries
                db.session.rollback()
                print(f"worker round failed: {exc!r}", file=sys.stderr, flush=True)
            finally:
                db.session.remove()
        time.sleep(0.05)


def tick_loop() -> None:
    from engine import lease
    from engine.clock import utcnow
    from processes.tick import tick
    from web.extensions import db
    from web.scheduler import LEASE, tick_settings

    app = make_app()
    engine = app.extensions["kefu_engine"]
    holder, guarded = f"crash-{os.getpid()}-{uuid.uuid4().hex[:6]}", not os.environ.get("CRASH_NO_LEASE")
    print("ready", flush=True)
    while True:
        with app.app_context():
            try:
                now = utcnow()
                if not guarded or lease.acquire(db.session, LEASE, holder, now, ttl_seconds=30):
                    tick(db.session, engine, now, **tick_settings(app))
                    db.session.commit()
            except Exception as exc:  # noqa: BLE001 - as web.scheduler: the next tick retries
                db.session.rollback()
                print(f"tick failed: {exc!r}", file=sys.stderr, flush=True)
            finally:
                db.session.remove()
        time.sleep(0.1)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "serve":
        serve(int(sys.argv[2]))
    elif mode == "work":
        work()
    elif mode == "tick":
        tick_loop()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
