"""A loopback FTP server (pyftpdlib) standing in for the national centre's exchange server, for the
demo and the tests.

One account whose home is a folder on disk (a temporary one unless given): uploads land in the home
folder, files offered to Kefu lie in ``inbox/``. Test helpers play the remote side of the contract
(``ack`` writes the success mark of an upload, ``offer`` puts a file and its sent mark in the inbox,
``files``/``read`` show what is there), and fault knobs break it: ``stop()`` then ``start()`` again
(``restart()``) on the same port for a server that is down for a while, ``drop_upload_after(n)`` to
cut both connections once an upload has received ``n`` bytes.

``serve --demo`` starts one when ``KEFU_FTP_URL`` is unset. By hand:
``python -m peers.ftp --port 2121 --user kefu --password kefu [--root DIR]``.
Nothing here imports the product.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

with warnings.catch_warnings():
    # pyftpdlib runs on the standard library's asyncore/asynchat (deprecated in 3.11, and installed
    # as pyasyncore/pyasynchat on 3.12+); nothing to act on, so keep test output clean.
    warnings.filterwarnings("ignore", r"The (asyncore|asynchat) module is deprecated", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import DTPHandler, FTPHandler
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer

HOST = "127.0.0.1"
INBOX = "inbox"
PERMISSIONS = "elradfmwMT"  # list, read, write, delete, rename, mkdir, …: everything an exchange needs


class FtpPeer:
    """A threaded FTP server on 127.0.0.1 (``port=0``: a free port). See the module docstring."""

    def __init__(self) -> None:
        self.port = 0
        self.user = "kefu"
        self.password = "kefu-ftp"
        self.auth_fail_delay = 0.2
        self.drops = 0  # uploads cut by drop_upload_after so far
        self._root: Path | None = None
        self._own_root = False  # a temporary root is ours to delete on close()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._drop_after: int | None = None
        self._drops_left = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int | None = None, user: str | None = None, password: str | None = None,
              root: str | Path | None = None, *, auth_fail_delay: float | None = None) -> Self:
        """Listen on ``port`` (0: a free one). Unset arguments keep their earlier values, so that a
        stopped peer starts again on the same port, account and files."""
        if self._thread is not None:
            raise RuntimeError("the FTP peer is already running")
        self.user = user if user is not None else self.user
        self.password = password if password is not None else self.password
        if auth_fail_delay is not None:
            self.auth_fail_delay = auth_fail_delay  # real servers pause, seconds; tests need less
        if root is not None:
            self._root, self._own_root = Path(root), False
        elif self._root is None:
            self._root, self._own_root = Path(tempfile.mkdtemp(prefix="kefu-ftp-")), True
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / INBOX).mkdir(exist_ok=True)
        _quiet_library_logging()
        self._server = FTPServer((HOST, self.port if port is None else port), self._handler(), ioloop=IOLoop())
        self.port = self._server.address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, args=(self._server,), name="ftp-peer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection (the files stay): the server is down."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout=5)
        self._server = None

    def restart(self) -> Self:
        """Stop, then listen again on the same port with the same account and files."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and delete the root folder if the peer created it."""
        self.stop()
        if self._own_root and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> Self:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def url(self) -> str:
        """``ftp://user:password@127.0.0.1:port/`` — the home folder; uploads go there, the inbox is
        ``inbox/`` (the connector's default)."""
        return f"ftp://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{HOST}:{self.port}/"

    @property
    def root(self) -> Path:
        """The account's home folder on disk."""
        if self._root is None:
            raise RuntimeError("the FTP peer has no root folder (not started, or closed)")
        return self._root

    # ------------------------------------------------------------------ the remote side
    def ack(self, name: str) -> None:
        """Acknowledge an upload as the receiver would: write the empty success mark ``NAME.ok``."""
        self._path(name + ".ok").write_bytes(b"")

    def offer(self, name: str, data: bytes) -> None:
        """Offer a file to Kefu: ``inbox/NAME`` complete first, then its sent mark ``NAME.sent``."""
        self._path(f"{INBOX}/{name}").write_bytes(data)
        self._path(f"{INBOX}/{name}.sent").write_bytes(b"")

    def files(self) -> list[str]:
        """Every file under the root as a sorted relative path (``report.csv``, ``inbox/x.ok``)."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def read(self, path: str) -> bytes:
        """The content of the file at ``path`` relative to the root."""
        return self._path(path).read_bytes()

    def _path(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"{relative!r} is outside the peer's root")
        return path

    # ------------------------------------------------------------------ faults
    def drop_upload_after(self, nbytes: int, times: int = 1) -> None:
        """Cut the next ``times`` uploads once they have received ``nbytes`` bytes: the data and
        the control connection close without a reply, leaving a truncated file on disk."""
        if nbytes < 0 or times < 1:
            raise ValueError("nbytes must be >= 0 and times >= 1")
        with self._lock:
            self._drop_after, self._drops_left = nbytes, times

    def _should_drop(self, received: int) -> bool:
        with self._lock:
            if self._drop_after is None or received < self._drop_after:
                return False
            self._drops_left -= 1
            if self._drops_left <= 0:
                self._drop_after = None
            self.drops += 1
            return True

    # ------------------------------------------------------------------ server
    def _handler(self) -> type[Any]:
        """Handler classes bound to this peer (pyftpdlib configures servers by class attributes)."""
        peer = self

        class DataChannel(DTPHandler):
            def handle_read(self) -> None:
                super().handle_read()
                if self.receive and not self._closed and peer._should_drop(self.tot_bytes_received):
                    control = self.cmd_channel
                    self._resp = ()  # no "226 Transfer complete": the link is gone
                    self.close()
                    control.close()

            handle_read_event = handle_read  # the base class binds its own handle_read to this name

        authorizer = DummyAuthorizer()
        authorizer.add_user(self.user, self.password, str(self.root), perm=PERMISSIONS)
        return type("PeerControl", (FTPHandler,), {
            "authorizer": authorizer, "dtp_handler": DataChannel, "banner": "Kefu loopback FTP peer ready.",
            "auth_failed_timeout": self.auth_fail_delay, "timeout": 120,
        })

    def _serve(self, server: Any) -> None:
        # pyftpdlib's loop is not thread-safe: poll in short slices and close it from this thread.
        try:
            while not self._stopping.is_set():
                server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        finally:
            server.close_all()


def _quiet_library_logging() -> None:
    """pyftpdlib logs every session at INFO and, finding no handler, installs one on stderr."""
    library = logging.getLogger("pyftpdlib")
    if not library.handlers:
        library.addHandler(logging.NullHandler())
    if library.level == logging.NOTSET:
        library.setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback FTP peer for the file exchange (demo)")
    parser.add_argument("--port", type=int, default=2121)
    parser.add_argument("--user", default="kefu")
    parser.add_argument("--password", default="kefu")
    parser.add_argument("--root", default=None, help="home folder (default: a new temporary folder)")
    args = parser.parse_args(argv)
    peer = FtpPeer().start(args.port, args.user, args.password, args.root)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"FTP peer ready on {HOST}:{peer.port} (user {args.user}), files in {peer.root}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        peer.close()  # deletes the folder only if it was a temporary one


if __name__ == "__main__":
    main()
