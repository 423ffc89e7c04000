"""The background scheduler of the running product (never started by imports or unit tests).

Every few seconds one job takes the database lease and runs a tick as of now; with several
processes only the lease holder acts. Missed ticks need no replay: a tick handles everything due
up to its time, so the first tick after a restart catches up.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from engine import lease
from engine.clock import utcnow
from processes.tick import tick

from .extensions import db

log = logging.getLogger("kefu.scheduler")
LEASE = "tick"


def start_scheduler(app: Flask) -> BackgroundScheduler:
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    seconds = app.config["KEFU_TICK_SECONDS"]

    def job() -> None:
        with app.app_context():
            try:
                now = utcnow()
                if not lease.acquire(db.session, LEASE, holder, now, ttl_seconds=max(30, 6 * seconds)):
                    return
                report = tick(db.session, app.extensions["kefu_engine"], now, **tick_settings(app))
                lease.record_tick(db.session, LEASE, now)
                db.session.commit()
                if report.eventful:
                    for line in report.lines():
                        log.info(line)
            except Exception:  # the scheduler must survive a bad tick; the next one retries
                db.session.rollback()
                log.exception("tick failed")
            finally:
                db.session.remove()

    start_job_waker(app)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(job, "interval", seconds=seconds, id="tick", coalesce=True,
                      max_instances=1, misfire_grace_time=None, next_run_time=utcnow())
    scheduler.start()
    return scheduler


def start_job_waker(app: Flask) -> threading.Event:
    """Run connector jobs as soon as a committed step queued some (a dial, a text) instead of at
    the next tick. Jobs are claimed by compare-and-set, so this thread and ticks never collide."""
    wake = threading.Event()
    seconds = app.config["KEFU_TICK_SECONDS"]

    app.extensions["kefu_engine"].on_jobs_queued = wake.set

    def loop() -> None:
        from processes.inbound import process_inbound

        while True:
            wake.wait(timeout=seconds)
            if not wake.is_set():
                continue
            wake.clear()
            with app.app_context():
                try:
                    eng = app.extensions["kefu_engine"]
                    now = utcnow()
                    eng.run_jobs(db.session, now)
                    process_inbound(db.session, eng, now)
                    db.session.commit()
                except Exception:  # the next wake or tick retries
                    db.session.rollback()
                    log.exception("running woken jobs failed")
                finally:
                    db.session.remove()

    threading.Thread(target=loop, name="kefu-job-waker", daemon=True).start()
    app.extensions["kefu_wake_jobs"] = wake
    return wake


def tick_settings(app: Flask) -> dict[str, Any]:
    """The tick's settings from the app's configuration (the scheduler's and ``kefu tick``'s)."""
    from datetime import timedelta

    from .demo_billing import billing_simulator

    return {"billing_simulator": billing_simulator(app),
            "ftp_ack_limit": timedelta(minutes=int(app.config.get("KEFU_FTP_ACK_MINUTES") or 60)),
            "collect_files": bool(app.config.get("KEFU_FTP_URL")),
            "dunning": app.extensions.get("kefu_dunning"),
            "reminders": app.extensions.get("kefu_reminders"),
            "roaming": app.extensions.get("kefu_roaming")}
