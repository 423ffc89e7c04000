"""What the production server (gunicorn, ``gunicorn.conf.py``) needs from the app.

The app is built once in gunicorn's master (``preload_app``) and forked into the workers. What a
fork must not share: open database connections (two processes on one socket corrupt the
protocol) — each worker drops the pools it inherited, without closing the parent's sockets, and
opens its own. The workflow cache needs nothing: the master never ran a step, and an entry is
only valid at the exact row version it was saved with, so processes never see each other's
stale workflows. Web workers start no scheduler and no connector links: ticks and connector jobs
run in their own processes (``kefu scheduler``, ``kefu worker``).
"""

from __future__ import annotations

from flask import Flask

from .extensions import db


def after_fork(app: Flask) -> int:
    """In a freshly forked worker: forget the inherited connection pools. Returns how many."""
    engines = []
    with app.app_context():
        engines.extend(db.engines.values())
    billing = app.extensions.get("kefu_billing")
    if billing is not None:
        engines.append(billing.engine)
    for engine in engines:
        engine.dispose(close=False)  # the parent's sockets stay the parent's
    return len(engines)
