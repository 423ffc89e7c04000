"""DEMO ONLY — the demo billing database and its simulator, so that ``make run`` shows the loop
(look a customer up, accept a request, billing executes it, the customer is told).

Both act only when ``KEFU_BILLING_DEMO`` is on (``KEFU_BILLING_URL`` unset) and, for the
simulator, only on a database that ``demo_data.seed`` made: a real billing database is never
seeded nor simulated.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import Flask

from connectors.base import PermanentError, TransientError
from connectors.billing import demo_data
from connectors.billing.simulator import BillingSimulator

log = logging.getLogger("kefu.demo")

SUBSCRIBERS = 3000  # about 7 s to generate and write on a laptop; once per data dir
SIMULATOR_DELAY = timedelta(seconds=10)
_EXTENSION = "kefu_billing_simulator"


def seed_demo_billing(app: Flask) -> dict[str, int]:
    """Fill the demo billing database once (rows per table; {} when off or already seeded)."""
    if not app.config.get("KEFU_BILLING_DEMO"):
        return {}
    started = time.monotonic()
    try:
        counts = demo_data.seed(app.extensions["kefu_billing"], subscribers=SUBSCRIBERS)
    except (TransientError, PermanentError) as exc:  # the demo runs on; lookups answer 503
        log.warning("DEMO billing database not seeded: %s", exc)
        return {}
    if counts:
        log.info("DEMO billing database: %s subscribers in %.1fs", counts.get("kf_subscriptions", 0),
                 time.monotonic() - started)
    return counts


def billing_simulator(app: Flask) -> BillingSimulator | None:
    """The demo billing simulator for the tick, or None: demo mode off, or the billing database is
    not (yet) a seeded demo database. Asked every tick until the database is a demo one."""
    if not app.config.get("KEFU_BILLING_DEMO"):
        return None
    simulator = app.extensions.get(_EXTENSION)
    if simulator is None:
        gateway = app.extensions["kefu_billing"]
        try:
            if not gateway.is_demo():
                return None
        except (TransientError, PermanentError):  # no tables yet, or the file is unreadable
            return None
        simulator = app.extensions[_EXTENSION] = BillingSimulator(gateway, delay=SIMULATOR_DELAY)
    return simulator
