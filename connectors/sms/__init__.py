"""SMS centre connector: an SMPP 3.4 client (``SmppClient``) configured by ``KEFU_SMPP_URL``.

Imports neither Flask nor the engine; the web app wires the client into the outbox.
"""

from connectors.sms.client import MoHandler, ReceiptHandler, SmppClient, SubmitResult, describe_status
from connectors.sms.config import SmppConfig, parse_smpp_url

__all__ = ["MoHandler", "ReceiptHandler", "SmppClient", "SmppConfig", "SubmitResult", "describe_status",
           "parse_smpp_url"]
