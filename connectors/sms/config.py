"""The SMSC account as one URL: ``smpp://system_id:password@host:port?source=10010&window=10``.

Parsing only; imports nothing from the rest of Kefu. SMPP 3.4 C-octet strings are short (system_id
15 characters, password 8, addresses 20), and smpplib would silently cut longer values — so they
are refused here with a message naming the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone, tzinfo
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_PORT = 2775  # IANA port for SMPP

# Query parameters: name -> (converter, smallest allowed value, what it means).
_NUMBERS: dict[str, tuple[type, float, str]] = {
    "window": (int, 1, "maximum submit_sm awaiting their submit_sm_resp"),
    "mps": (float, 0, "messages per second, 0 = unlimited"),
    "enquire_link": (float, 0.05, "seconds between enquire_link keep-alives"),
    "timeout": (float, 0.05, "seconds a submit waits for the link, a window slot or its response"),
}


@dataclass(frozen=True)
class SmppConfig:
    """Where and how to bind. ``timeout`` bounds every wait of a submit so none hangs forever."""

    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    source: str = ""            # default source_addr (the service number, e.g. 10010)
    system_type: str = ""
    window: int = 10
    mps: float = 20.0
    enquire_link: float = 30.0
    timeout: float = 10.0
    # The zone of the SMSC's clock in receipts ("submit date:YYMMDDhhmm"); None: this host's zone.
    receipt_tz: tzinfo | None = None

    def __str__(self) -> str:  # safe for logs: no password
        return f"smpp://{self.system_id}@{self.host}:{self.port}"


def parse_smpp_url(url: str) -> SmppConfig:
    """Parse ``smpp://system_id:password@host[:port][?source=&system_type=&window=&mps=&enquire_link=&timeout=]``.

    Raises ``ValueError`` with a message saying what is wrong (never echoing the password).
    """
    if not url or not isinstance(url, str):
        raise ValueError("SMPP URL is empty; expected smpp://system_id:password@host:port")
    parts = urlsplit(url.strip())
    if parts.scheme != "smpp":
        raise ValueError(f"SMPP URL must start with smpp:// (got scheme {parts.scheme or 'none'!r})")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # urlsplit's message for a bad port is good enough
        raise ValueError(f"SMPP URL has an invalid port: {exc}") from None
    if not host:
        raise ValueError("SMPP URL has no host: expected smpp://system_id:password@host:port")
    if port == 0:
        raise ValueError("SMPP URL port must be between 1 and 65535")
    system_id = unquote(parts.username or "")
    password = unquote(parts.password or "")
    if not system_id:
        raise ValueError("SMPP URL has no system_id: expected smpp://system_id:password@host:port")
    _check_text("system_id", system_id, 15)
    _check_text("password", password, 8, show=False)
    if parts.path not in ("", "/"):
        raise ValueError(f"SMPP URL must not have a path (got {parts.path!r})")

    options = _query(parts.query)
    source = options.pop("source", "")
    _check_text("source", source, 20)
    system_type = options.pop("system_type", "")
    _check_text("system_type", system_type, 12)
    receipt_tz = _zone(options.pop("receipt_tz")) if "receipt_tz" in options else None
    numbers = {name: _number(name, options.pop(name)) for name in list(options) if name in _NUMBERS}
    if options:
        known = ", ".join(["source", "system_type", "receipt_tz", *_NUMBERS])
        raise ValueError(f"SMPP URL has unknown parameter(s) {', '.join(sorted(options))}; known: {known}")
    return SmppConfig(host=host, port=port or DEFAULT_PORT, system_id=system_id, password=password,
                      source=source, system_type=system_type,
                      window=int(numbers.get("window", SmppConfig.window)),
                      mps=numbers.get("mps", SmppConfig.mps),
                      enquire_link=numbers.get("enquire_link", SmppConfig.enquire_link),
                      timeout=numbers.get("timeout", SmppConfig.timeout), receipt_tz=receipt_tz)


_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")


def _zone(raw: str) -> tzinfo:
    """``receipt_tz``: ``UTC``, an offset (``+08:00``, ``+0800``) or a zone name (``Asia/Shanghai``)."""
    if raw.upper() in ("UTC", "Z"):
        return UTC
    match = _OFFSET.fullmatch(raw)
    if match:
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        if offset < timedelta(hours=15):
            return timezone(-offset if sign == "-" else offset)
    else:
        try:
            return ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise ValueError(f"SMPP URL parameter receipt_tz={raw!r} is not a time zone "
                     "(expected UTC, an offset such as +08:00, or a name such as Asia/Shanghai)")


def _query(query: str) -> dict[str, str]:
    try:
        values = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ValueError(f"SMPP URL has a malformed query string: {exc}") from None
    repeated = sorted(name for name, items in values.items() if len(items) > 1)
    if repeated:
        raise ValueError(f"SMPP URL repeats parameter(s) {', '.join(repeated)}")
    return {name: items[0] for name, items in values.items()}


def _number(name: str, raw: str) -> float:
    convert, smallest, meaning = _NUMBERS[name]
    try:
        value = convert(raw)
    except ValueError:
        raise ValueError(f"SMPP URL parameter {name}={raw!r} is not a number ({meaning})") from None
    if value < smallest:
        raise ValueError(f"SMPP URL parameter {name} must be at least {smallest:g} ({meaning})")
    return value


def _check_text(name: str, value: str, limit: int, *, show: bool = True) -> None:
    """SMPP C-octet strings are ASCII and short; smpplib would truncate instead of failing."""
    shown = f" {value!r}" if show else ""
    if len(value) > limit:
        raise ValueError(f"SMPP {name}{shown} is {len(value)} characters; SMPP 3.4 allows at most {limit}")
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"SMPP {name}{shown} must be printable ASCII")
