"""The loopback SMSC (``peers/smsc.js``, node-smpp's server) driven from Python: start it, read
what it received (``messages``, ``parts``, ``stats``), change its behaviour (throttling, drops,
receipts), make it send a customer's message or a receipt. Tests use it through the fixtures in
``tests/peers/smsc.py``; ``serve --demo`` starts one when ``KEFU_SMPP_URL`` is unset.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("smsc.js")
T = TypeVar("T")


class PeerUnavailable(RuntimeError):
    """node or node-smpp is not installed: tests using the peer cannot run here."""


class SmscPeer:
    """One ``node peers/smsc.js`` process: an SMPP port, and an HTTP control port to inspect it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.smpp_port = 0
        self.control_port = 0
        self.system_id = ""
        self.password = ""

    def start(self, system_id: str = "kefu", password: str = "secret", *, port: int = 0,
              timeout: float = 10.0, **config: Any) -> SmscPeer:
        """Start the peer accepting ``system_id``/``password``; ``config`` as for ``configure``."""
        node = shutil.which("node")
        if node is None:
            raise PeerUnavailable("node is not installed (the loopback SMSC runs on node-smpp)")
        if not (ROOT / "node_modules" / "smpp" / "package.json").exists():
            raise PeerUnavailable("node_modules/smpp is missing (run `npm ci` in the repository root)")
        self.system_id, self.password = system_id, password
        command = [node, str(SCRIPT), "--host", self.host, "--port", str(port), "--control-port", "0",
                   "--system-id", system_id, "--password", password, "--config", json.dumps(config),
                   "--exit-on-stdin-close"]
        # stdin stays open and unused: when this process dies, the peer sees it close and exits.
        self.process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready = self._read_line(timeout)
        self.smpp_port, self.control_port = ready["smpp_port"], ready["control_port"]
        return self

    def _read_line(self, timeout: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if readable else b""
        if not line:
            self.stop()
            raise RuntimeError(f"the loopback SMSC did not start within {timeout:g}s (see its stderr)")
        return json.loads(line)

    @property
    def url(self) -> str:
        """``smpp://…@127.0.0.1:port?source=10010`` — the peer's credentials, source number 10010."""
        return (f"smpp://{quote(self.system_id, safe='')}:{quote(self.password, safe='')}"
                f"@{self.host}:{self.smpp_port}?source=10010")

    # -- control API -------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://{self.host}:{self.control_port}{path}", data=data,
                                         method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"SMSC control {method} {path}: {exc.code} {exc.read().decode()}") from None

    def messages(self) -> list[dict[str, Any]]:
        """Whole messages (concatenated parts joined), in arrival order."""
        return self._call("GET", "/messages")

    def parts(self) -> list[dict[str, Any]]:
        """Every accepted submit_sm: message_id, source, destination, data_coding, text, reference/part/total."""
        return self._call("GET", "/parts")

    def stats(self) -> dict[str, int]:
        """Counters: sessions, binds, bind_failures, submits, accepted, throttled, drops, enquire_links, unbinds …"""
        return self._call("GET", "/stats")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change behaviour: throttle_every, drop_after, receipts, receipt_delay_ms, receipt_stat,
        receipt_stat_by_destination, reject_destinations, refuse_all_binds, response_delay_ms,
        receipt_route ("other": receipts go to a bind other than the submitting one, when there is
        one), password (the one accepted from now on). Returns the whole config."""
        return self._call("POST", "/config", settings)

    def reset(self) -> None:
        """Forget messages and counters; settings back to those given to ``start``."""
        self._call("POST", "/reset", {})

    def send_mo(self, source: str, destination: str, text: str) -> dict[str, Any]:
        """A customer's message (from ``source`` to our ``destination``), split with a UDH if long."""
        return self._call("POST", "/mo", {"from": source, "to": destination, "text": text})

    def send_receipt(self, message_id: str, stat: str = "DELIVRD") -> dict[str, Any]:
        """A delivery receipt for a message the peer accepted."""
        return self._call("POST", "/receipt", {"message_id": message_id, "stat": stat})

    def drop(self) -> int:
        """Close every SMPP session now (the link "drops"); returns how many there were."""
        return self._call("POST", "/drop", {})["dropped"]

    def wait_for(self, condition: Callable[[SmscPeer], T], timeout: float = 5.0) -> T:
        """Poll ``condition(peer)`` until it returns something truthy; return that, or fail the test."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition(self)
            if result or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if not result:
            raise AssertionError(f"the SMSC peer did not reach the expected state within {timeout:g}s")
        return result

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self.process = None
