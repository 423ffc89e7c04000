"""The billing connector: the interim tables (中间表) shared with the GSM, IP-phone, fixed-line and
193 billing systems, read and written on their own connection (``KEFU_BILLING_URL``).

``schema`` defines the tables (and renders the shipped DDL), ``gateway.BillingGateway`` is Kefu's
access to them, ``operations`` offers them to BPMN service tasks. ``demo_data`` and ``simulator``
are demo parts only: a seeded demo database and a stand-in for billing. Imports neither Flask nor
the engine. The interface is documented for billing vendors in docs/billing-interim-tables.md.
"""

from .gateway import BillingGateway, check_password, hash_password
from .operations import operations

__all__ = ["BillingGateway", "check_password", "hash_password", "operations"]
