"""Roaming complaint transfer connector (漫游投诉转递): signed JSON over HTTP between provincial
deployments (``RoamingClient``), the operations the outbox runs (``roaming.dispatch``,
``roaming.receipt``) and the signature helpers the receiving side shares (``signing``).
Standard library only; imports neither Flask nor the engine."""

from connectors.roaming.client import PartnerLink, RoamingClient, encode
from connectors.roaming.operations import operations

__all__ = ["PartnerLink", "RoamingClient", "encode", "operations"]
