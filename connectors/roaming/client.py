"""The HTTP client of the roaming exchange: one signed JSON POST to a partner deployment (or to a
relay that forwards it). Standard library only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import PermanentError, TransientError

from . import signing

DISPATCH_PATH = "/api/v1/roaming/dispatches"
RECEIPT_PATH = "/api/v1/roaming/receipts"
RETRY_STATUSES = frozenset({408, 425, 429})  # plus every 5xx
STALE = "stale_timestamp"  # the receiver's 401 code for a clock that is off: worth retrying


@dataclass(frozen=True)
class PartnerLink:
    """Where a partner is reached and the secret this pair signs with."""

    code: str
    url: str
    secret: str


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class RoamingClient:
    """Posts signed requests from ``company`` to the partners ``links()`` returns (by code)."""

    def __init__(self, company: str, links: Callable[[], Mapping[str, PartnerLink]],
                 timeout: float = 10.0) -> None:
        self.company, self.links, self.timeout = company, links, timeout

    def post(self, partner: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``partner`` + ``path``, sent as the body's ``company_code`` (this
        deployment's code; in the loopback demo, the code it answers for); the partner's JSON
        answer when it is a success mark (``200 {"ack": "ok"}``). Raises ``TransientError``
        (unreachable, 5xx, throttled, clock skew) or ``PermanentError`` (refused)."""
        link = self.links().get(partner)
        if link is None:
            raise PermanentError(f"no roaming partner '{partner}' is configured")
        data = encode(body)
        request = urllib.request.Request(link.url.rstrip("/") + path, data=data, method="POST",
                                         headers=signing.headers(str(body.get("company_code") or self.company),
                                                                 link.secret, data))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
            raise TransientError(f"partner {partner} not reachable: {getattr(exc, 'reason', exc)}") from exc
        answer = _json(raw)
        if status == 200 and answer.get("ack") == "ok":
            return answer
        detail = f"partner {partner} answered {status}: {answer.get('error') or ''} {answer.get('message') or ''}"
        if status >= 500 or status in RETRY_STATUSES or (status == 401 and answer.get("error") == STALE):
            raise TransientError(detail.strip())
        raise PermanentError(detail.strip() if status != 200 else f"partner {partner} gave no success mark")


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
