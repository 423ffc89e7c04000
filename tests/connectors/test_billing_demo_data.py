"""Demo billing data seeded today holds nothing after the moment of seeding: no payment and no
call in the future, whatever the hour (the issue saw payments and calls ahead of the clock)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from connectors.billing import BillingGateway, demo_data
from connectors.billing import gateway as gateway_module
from connectors.billing.schema import call_details, payments


def test_demo_data_seeded_today_lies_in_the_past(tmp_path, monkeypatch):
    monkeypatch.setattr(gateway_module, "SCRYPT_N", 2**8)
    demo_data.demo_hash.cache_clear()
    gateway = BillingGateway(f"sqlite:///{tmp_path / 'billing.db'}", timeout=5)
    try:
        demo_data.seed(gateway, subscribers=30, calls_per_day=2.0)
        seeded = datetime.now(UTC)
        with gateway.connect() as conn:
            latest_payment = conn.scalar(select(func.max(payments.c.paid_at)))
            latest_call = conn.scalar(select(func.max(call_details.c.started_at)))
            count = conn.scalar(select(func.count()).select_from(payments))
    finally:
        gateway.close()
        demo_data.demo_hash.cache_clear()
    assert count > 0
    for moment in (latest_payment, latest_call):
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        assert moment <= seeded, moment
