"""PBX connector: an Asterisk Manager Interface client (``ami``), its settings (``config``), a
tracker that turns channel events into ringing notices and call records (``calls``) and the
operations BPMN service tasks call (``operations``). Imports nothing from Flask or the engine."""

from connectors.pbx.ami import AmiClient, OriginateResult, mask_numbers
from connectors.pbx.calls import CallRecord, CallTracker, extension_of
from connectors.pbx.config import AmiConfig, parse_ami_url
from connectors.pbx.operations import operations

__all__ = [
    "AmiClient",
    "AmiConfig",
    "CallRecord",
    "CallTracker",
    "OriginateResult",
    "extension_of",
    "mask_numbers",
    "operations",
    "parse_ami_url",
]
