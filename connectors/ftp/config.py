"""The file-exchange account as one URL: ``ftp://user:password@host:port/path?inbox=…&outbox=…``.

``ftps://`` is the same over explicit TLS (AUTH TLS on the control port, then a protected data
channel). As in RFC 1738, the path is taken relative to the login directory; an absolute folder is
written with ``%2F`` (``ftp://u:p@host/%2Fdata/kefu``). ``outbox`` (where uploads go, default the
root) and ``inbox`` (where the peer offers files, default ``<root>/inbox``) are relative to the root
unless they start with ``/``. Parsing only; imports nothing from the rest of Kefu.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 21  # FTP and explicit FTPS share the control port
DEFAULT_TIMEOUT = 30.0
DEFAULT_INBOX = "inbox"
_EXPECTED = "expected ftp://user:password@host:port/path (or ftps://)"


@dataclass(frozen=True)
class FtpConfig:
    """Where and how to log in. ``root`` is ``""`` for the login directory, ``"a/b"`` relative to
    it, ``"/a/b"`` absolute; ``upload_dir``/``inbox_dir`` are resolved paths in the same form."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    root: str = ""
    tls: bool = False
    timeout: float = DEFAULT_TIMEOUT
    upload_dir: str = ""
    inbox_dir: str = DEFAULT_INBOX

    def __str__(self) -> str:  # safe for logs: no password
        scheme = "ftps" if self.tls else "ftp"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.root}"


def parse_ftp_url(url: str) -> FtpConfig:
    """Parse ``ftp[s]://user:password@host[:port][/path][?inbox=&outbox=&timeout=]``.

    Raises ``ValueError`` saying what is wrong (never echoing the password).
    """
    if not url or not isinstance(url, str):
        raise ValueError(f"FTP URL is empty; {_EXPECTED}")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("ftp", "ftps"):
        raise ValueError(f"FTP URL must start with ftp:// or ftps:// (got scheme {parts.scheme or 'none'!r})")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError("FTP URL has an invalid port; expected a number from 1 to 65535") from None
    if not host:
        raise ValueError(f"FTP URL has no host; {_EXPECTED}")
    if port == 0:
        raise ValueError("FTP URL has an invalid port; expected a number from 1 to 65535")
    user = unquote(parts.username or "")
    if not user:
        raise ValueError(f"FTP URL has no user name; {_EXPECTED}")
    if parts.password is None:
        raise ValueError(f"FTP URL has no password; {_EXPECTED}")
    password = unquote(parts.password)
    for name, value in (("user name", user), ("password", password)):
        if any(ch in value for ch in "\r\n\0"):  # would end the USER/PASS command early
            raise ValueError(f"FTP URL {name} contains a line break or NUL")
    if parts.fragment:
        raise ValueError("FTP URL must not have a #fragment")

    root = _folder("path", unquote(parts.path)[1:] if parts.path.startswith("/") else unquote(parts.path))
    options = _query(parts.query)
    inbox = _folder("inbox", options.pop("inbox", DEFAULT_INBOX))
    outbox = _folder("outbox", options.pop("outbox", ""))
    timeout = _timeout(options.pop("timeout", str(DEFAULT_TIMEOUT)))
    if options:
        raise ValueError(f"FTP URL has unknown parameter(s) {', '.join(sorted(options))}; "
                         "known: inbox, outbox, timeout")
    return FtpConfig(host=host, port=port or DEFAULT_PORT, user=user, password=password, root=root,
                     tls=scheme == "ftps", timeout=timeout, upload_dir=join_folder(root, outbox),
                     inbox_dir=join_folder(root, inbox))


def join_folder(root: str, sub: str) -> str:
    """``sub`` under ``root``, unless ``sub`` is absolute; ``""`` means the login directory."""
    if sub.startswith("/"):
        return sub
    if not sub:
        return root
    return f"{root.rstrip('/')}/{sub}" if root and root != "/" else f"{root}{sub}"


def _folder(what: str, value: str) -> str:
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise ValueError(f"FTP URL {what} {value!r} contains control characters")
    if ".." in value.split("/"):
        raise ValueError(f"FTP URL {what} {value!r} must not contain '..'")
    stripped = value.rstrip("/")
    return stripped or ("/" if value.startswith("/") else "")


def _query(query: str) -> dict[str, str]:
    try:
        values = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ValueError(f"FTP URL has a malformed query string: {exc}") from None
    repeated = sorted(name for name, items in values.items() if len(items) > 1)
    if repeated:
        raise ValueError(f"FTP URL repeats parameter(s) {', '.join(repeated)}")
    return {name: items[0] for name, items in values.items()}


def _timeout(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FTP URL parameter timeout={raw!r} is not a number of seconds") from None
    if not 0 < value <= 3600:  # written so that nan and inf are refused too
        raise ValueError("FTP URL parameter timeout must be more than 0 and at most 3600 seconds")
    return value
