"""File exchange with the national centre over FTP: upload with marks, poll acknowledgements, fetch
what the peer offers. As the contract (DESIGN.md, "File exchange over FTP") says, a file ``NAME``
is stored as ``NAME.part`` and renamed when complete, then the empty sent mark ``NAME.sent`` is
stored; the receiver writes the empty success mark ``NAME.ok``. The other direction works the same
way in the inbox folder, with Kefu as the receiver.

Every operation opens its own connection (passive mode; ``ftps://`` = explicit TLS with a protected
data channel) and always closes it: exchanges are rare, and a long-lived FTP session would only
time out on the server between them. Errors map onto ``connectors.base``:

* server unreachable, connection dropped or timed out, 4xx replies → ``TransientError``;
* login refused (530), a bad file name, other 5xx replies (no such folder, permission denied) →
  ``PermanentError``.

Imports neither Flask nor the engine; standard library only.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from connectors.base import PermanentError, TransientError
from connectors.ftp.config import FtpConfig

log = logging.getLogger("kefu.ftp")
T = TypeVar("T")

PART, SENT, OK = ".part", ".sent", ".ok"
MARKS = (PART, SENT, OK)
MAX_NAME = 200


def check_name(name: str) -> str:
    """Return ``name`` if it is a plain file name the exchange may use, else raise ``PermanentError``.

    Refused: folders (``/`` or ``\\``), ``..``, control characters (a CR/LF would end the FTP
    command), more than 200 characters, a leading dot (many servers hide dot files from listings,
    so the marks would never be seen), surrounding spaces, and the mark suffixes themselves.
    """
    if not isinstance(name, str) or not name:
        raise PermanentError("file name is empty")
    shown = repr(name[:60])
    if len(name) > MAX_NAME:
        raise PermanentError(f"file name {shown}… is {len(name)} characters; at most {MAX_NAME} allowed")
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in name):
        raise PermanentError(f"file name {shown} contains control characters")
    if "/" in name or "\\" in name:
        raise PermanentError(f"file name {shown} must not contain a folder separator")
    if ".." in name:
        raise PermanentError(f"file name {shown} must not contain '..'")
    if name.startswith(".") or name != name.strip():
        raise PermanentError(f"file name {shown} must not start with a dot or start/end with a space")
    if name.endswith(MARKS):
        raise PermanentError(f"file name {shown} must not end with a mark suffix ({', '.join(MARKS)})")
    return name


class _TlsSessionReuse(ftplib.FTP_TLS):
    """Explicit FTPS whose data connections resume the control connection's TLS session.

    Common servers (vsftpd's default ``require_ssl_reuse``, FileZilla Server) refuse a data
    connection that does not, and ftplib starts a fresh session for each one.
    """

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if getattr(self, "_prot_p", False):
            session = getattr(self.sock, "session", None)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


class FtpExchangeClient:
    """The exchange folders of one FTP account (``FtpConfig``); safe to share between threads,
    since nothing but the configuration is kept between calls."""

    def __init__(self, config: FtpConfig, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        # Certificates are verified by default; a test or a private CA passes its own context.
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"FtpExchangeClient({self.config})"

    # ------------------------------------------------------------------ upload side
    def upload(self, name: str, data: bytes) -> dict[str, Any]:
        """Store ``data`` as ``name`` in the upload folder: ``NAME.part``, renamed to ``NAME``, then
        the sent mark. Calling it again with the same name replaces the file (never a second one).
        Returns ``{"name", "size", "sha256"}``."""
        check_name(name)
        data = bytes(data)

        def run(ftp: ftplib.FTP) -> None:
            present = self._names(ftp)
            # The sent mark goes first, so the receiver never takes a file that is being replaced;
            # a stale .ok of an earlier upload would acknowledge the new content falsely.
            for stale in (name + SENT, name + OK, name, name + PART):
                if stale in present:
                    ftp.delete(stale)
            ftp.storbinary(f"STOR {name}{PART}", io.BytesIO(data))
            ftp.rename(name + PART, name)
            ftp.storbinary(f"STOR {name}{SENT}", io.BytesIO(b""))

        self._session(self.config.upload_dir, f"upload of {name!r}", run)
        log.info("ftp: uploaded %s (%d bytes) to %s", name, len(data), self.config)
        return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def acknowledged(self, name: str) -> bool:
        """Whether the receiver wrote the success mark ``NAME.ok`` next to the uploaded file."""
        check_name(name)
        return self._session(self.config.upload_dir, f"acknowledgement check of {name!r}",
                             lambda ftp: name + OK in self._names(ftp))

    # ------------------------------------------------------------------ download side
    def list_incoming(self) -> list[str]:
        """Files in the inbox folder that have a sent mark and no success mark yet, sorted."""
        names = self._session(self.config.inbox_dir, "inbox listing", self._names)
        incoming = []
        for name in sorted(names):
            if name.endswith(MARKS) or name + SENT not in names or name + OK in names:
                continue
            try:
                incoming.append(check_name(name))
            except PermanentError as exc:  # offered under a name we could not fetch safely
                log.warning("ftp: ignoring offered file: %s", exc)
        return incoming

    def download(self, name: str) -> bytes:
        """The content of ``name`` in the inbox folder."""
        check_name(name)
        chunks: list[bytes] = []

        def run(ftp: ftplib.FTP) -> bytes:
            ftp.retrbinary(f"RETR {name}", chunks.append)
            return b"".join(chunks)

        return self._session(self.config.inbox_dir, f"download of {name!r}", run)

    def acknowledge(self, name: str) -> None:
        """Write the success mark ``NAME.ok`` in the inbox folder (again: harmless)."""
        check_name(name)
        self._session(self.config.inbox_dir, f"acknowledgement of {name!r}",
                      lambda ftp: ftp.storbinary(f"STOR {name}{OK}", io.BytesIO(b"")))

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    def _names(ftp: ftplib.FTP) -> set[str]:
        """Plain names in the current folder. NLST is the one listing every server offers; some
        answer an empty folder with 450/550 instead of an empty list, some prefix ``./``."""
        try:
            entries = ftp.nlst()
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return set()
            raise
        except ftplib.error_temp as exc:
            if str(exc).startswith("450"):
                return set()
            raise
        return {entry.rsplit("/", 1)[-1] for entry in entries if entry}

    def _connect(self) -> ftplib.FTP:
        cfg = self.config
        ftp: ftplib.FTP
        if cfg.tls:
            context = self._ssl_context or ssl.create_default_context()
            ftp = _TlsSessionReuse(context=context, timeout=cfg.timeout)
        else:
            ftp = ftplib.FTP(timeout=cfg.timeout)
        try:
            ftp.connect(cfg.host, cfg.port)
        except (OSError, EOFError, ftplib.Error) as exc:
            ftp.close()
            raise TransientError(f"FTP server {cfg.host}:{cfg.port} is unreachable: {_describe(exc)}") from exc
        try:
            ftp.login(cfg.user, cfg.password)  # FTP_TLS.login sends AUTH TLS first
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(True)
        except ftplib.error_perm as exc:
            ftp.close()
            if str(exc).startswith("530"):
                raise PermanentError(f"FTP server {cfg.host}:{cfg.port} refused the login of user "
                                     f"{cfg.user!r}: {exc}") from exc
            raise PermanentError(f"FTP server {cfg.host}:{cfg.port} refused the session: {exc}") from exc
        except ssl.SSLCertVerificationError as exc:
            ftp.close()
            raise PermanentError(f"FTP server {cfg.host}:{cfg.port} has an untrusted certificate: "
                                 f"{exc.verify_message}") from exc
        except (OSError, EOFError, ftplib.Error) as exc:
            ftp.close()
            raise TransientError(f"FTP server {cfg.host}:{cfg.port} dropped the login: {_describe(exc)}") from exc
        return ftp

    def _session(self, folder: str, what: str, run: Callable[[ftplib.FTP], T]) -> T:
        """Connect, change to ``folder``, ``run``, quit; translate every failure."""
        ftp = self._connect()
        try:
            with _translated(what, self.config):
                if folder:
                    try:
                        ftp.cwd(folder)
                    except ftplib.error_perm as exc:
                        raise PermanentError(f"FTP folder {folder!r} on {self.config.host} cannot be "
                                             f"opened: {exc}") from exc
                result = run(ftp)
            try:
                ftp.quit()
            except (OSError, EOFError, ftplib.Error):
                pass  # the work is done; a goodbye lost on the way changes nothing
            return result
        finally:
            ftp.close()


@contextmanager
def _translated(what: str, config: FtpConfig) -> Iterator[None]:
    """ftplib's exceptions as ``connectors.base`` errors, naming the operation."""
    where = f"{config.host}:{config.port}"
    try:
        yield
    except (PermanentError, TransientError):
        raise
    except ftplib.error_perm as exc:
        raise PermanentError(f"FTP {what} refused by {where}: {exc}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(f"FTP {what}: {where} has an untrusted certificate") from exc
    except (ftplib.Error, OSError, EOFError) as exc:  # 4xx, odd replies, resets, timeouts, TLS
        raise TransientError(f"FTP {what} failed on {where}: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the server closed the connection"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
