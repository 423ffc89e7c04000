"""The scheduler lease: one holder at a time; an expired holder is replaced."""

from __future__ import annotations

from datetime import timedelta

from engine.lease import acquire, release
from tests.conftest import T0


def test_one_holder_at_a_time(store):
    session, _ = store
    assert acquire(session, "tick", "a", T0, ttl_seconds=30)
    assert not acquire(session, "tick", "b", T0 + timedelta(seconds=10), ttl_seconds=30)
    assert acquire(session, "tick", "a", T0 + timedelta(seconds=20), ttl_seconds=30)  # renew
    assert not acquire(session, "tick", "b", T0 + timedelta(seconds=45), ttl_seconds=30)
    assert acquire(session, "tick", "b", T0 + timedelta(seconds=51), ttl_seconds=30)  # a died
    assert not acquire(session, "tick", "a", T0 + timedelta(seconds=52), ttl_seconds=30)
    release(session, "tick", "b")
    assert acquire(session, "tick", "a", T0 + timedelta(seconds=53), ttl_seconds=30)
