"""Signing and checking a roaming request (DESIGN.md, "Roaming complaint transfer"): pure functions
shared by the sending connector and the receiving API.

``X-Kefu-Signature`` = lower-case hex HMAC-SHA256, keyed with the pair's shared secret, over
``timestamp + "." + raw body`` (the timestamp is the ``X-Kefu-Timestamp`` header, Unix seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import time

COMPANY_HEADER = "X-Kefu-Company"
TIMESTAMP_HEADER = "X-Kefu-Timestamp"
SIGNATURE_HEADER = "X-Kefu-Signature"
MAX_SKEW_SECONDS = 300


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The signature of ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def headers(company: str, secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The three headers of a signed request from ``company`` (plus the JSON content type)."""
    timestamp = str(int(time.time() if now is None else now))
    return {"Content-Type": "application/json; charset=utf-8", COMPANY_HEADER: company,
            TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}


def fresh(timestamp: str | None, now: float | None = None, skew: int = MAX_SKEW_SECONDS) -> bool:
    """Whether ``timestamp`` (Unix seconds as text) is within ``skew`` seconds of ``now``."""
    if not timestamp or not timestamp.strip().isdigit():
        return False
    current = time.time() if now is None else now
    return abs(current - int(timestamp.strip())) <= skew


def valid(secret: str, timestamp: str | None, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` is the signature of ``body`` at ``timestamp`` (constant-time compare)."""
    if not timestamp or not signature:
        return False
    return hmac.compare_digest(sign(secret, timestamp.strip(), body), signature.strip().lower())
