"""Backfilling the complaint statistics' city (地市) of complaints recorded before it was written
in the step (``kefu backfill-cities``): billing's home city of the case's number, then the city of
the last city centre a step was transferred to (the case's history says which). Run it once after
upgrading; running it again only fills what is still unknown and re-applies the transfers."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import AuditEvent, ProcessInstance

from .complaint_facts import ComplaintFact

TRANSFER_EVENT = "transferred_to_city"   # processes/city_transfer.py
BATCH = 500


def backfill_cities(session: Session, home_city: Callable[[str], str | None] | None) -> tuple[int, int]:
    """Fill the unknown cities (``home_city``: billing's, None to skip billing) and apply the
    transfers; commits per batch. ``(from billing, from transfers)`` rows changed."""
    from_billing = 0
    if home_city is not None:
        known: dict[str, str | None] = {}
        last_id = 0
        while True:
            batch = session.execute(
                select(ComplaintFact.instance_id, ProcessInstance.customer_phone)
                .join(ProcessInstance, ProcessInstance.id == ComplaintFact.instance_id)
                .where(ComplaintFact.city.is_(None), ProcessInstance.customer_phone.is_not(None),
                       ComplaintFact.instance_id > last_id)
                .order_by(ComplaintFact.instance_id).limit(BATCH)).all()
            if not batch:
                break
            for instance_id, phone in batch:
                number = str(phone)
                if number not in known:
                    known[number] = home_city(number)
                city = known[number]
                if city:
                    session.get_one(ComplaintFact, instance_id).city = city[:40]
                    from_billing += 1
            last_id = batch[-1][0]
            session.commit()
    cities: dict[int, str] = {}
    for instance_id, data in session.execute(
            select(AuditEvent.instance_id, AuditEvent.data)
            .join(ComplaintFact, ComplaintFact.instance_id == AuditEvent.instance_id)
            .where(AuditEvent.kind == TRANSFER_EVENT).order_by(AuditEvent.id)):
        city = (data or {}).get("city")
        if isinstance(city, str) and city:
            cities[instance_id] = city[:40]  # the last transfer wins
    from_transfers = 0
    for instance_id, city in cities.items():
        fact = session.get_one(ComplaintFact, instance_id)
        if fact.city != city:
            fact.city = city
            from_transfers += 1
    session.commit()
    return from_billing, from_transfers
