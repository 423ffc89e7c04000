"""Loopback peers for a self-contained demo (``serve --demo`` with a connector URL unset).

They are the same protocol peers the tests use (``peers/``): a real SMPP server on loopback
(node-smpp) and an AMI server (the calls page can make it ring an agent's extension). The product talks to them exactly as to real ones; the admin pages
show what they received. Never started when the URL of a real peer is configured.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from flask import Flask

log = logging.getLogger("kefu.demo")


def start_demo_smsc(app: Flask) -> str | None:
    """Start a loopback SMSC and point the SMS connector at it; the line to print, or None."""
    if app.config.get("KEFU_SMPP_URL"):
        return None
    try:
        from peers.smsc import SmscPeer

        peer = SmscPeer().start("kefu", "demo1234", receipt_delay_ms=2000)
    except Exception as exc:  # noqa: BLE001 - the demo runs on; texts wait in the outbox
        log.warning("no loopback SMSC for the demo: %s", exc)
        return f"KEFU_SMPP_URL is not set and the loopback SMSC could not start ({exc}); texts wait"
    atexit.register(peer.stop)
    app.extensions["kefu_demo_smsc"] = peer
    from .connectors_setup import use_smsc

    use_smsc(app, peer.url)
    return f"KEFU_SMPP_URL is not set: texts go to a loopback SMS centre on {peer.host}:{peer.smpp_port} " \
           "(admin → SMS shows what it received)"


def start_demo_pbx(app: Flask) -> str | None:
    """Start a loopback AMI peer and point the PBX connector at it; the line to print, or None."""
    if app.config.get("KEFU_AMI_URL"):
        return None
    try:
        import secrets

        from peers.ami import AmiPeer

        # Calls ring for two seconds and last fifteen, so that a demo shows every state.
        peer = AmiPeer("kefu", secrets.token_hex(8), ring_time=2.0, talk_time=15.0).start()
    except Exception as exc:  # noqa: BLE001 - the demo runs on; dial jobs wait in the outbox
        log.warning("no loopback PBX for the demo: %s", exc)
        return f"KEFU_AMI_URL is not set and the loopback PBX could not start ({exc}); calls wait"
    atexit.register(peer.stop)
    app.extensions["kefu_demo_ami"] = peer
    from .connectors_setup import use_pbx

    use_pbx(app, peer.url)
    return (f"KEFU_AMI_URL is not set: calls go to a loopback PBX (AMI) on 127.0.0.1:{peer.port} "
            "(Calls → Simulate an inbound call rings an agent's extension)")


def start_demo_ftp(app: Flask) -> str | None:
    """Start a loopback FTP server and point the file exchange at it; the line to print, or None."""
    if app.config.get("KEFU_FTP_URL"):
        return None
    try:
        import secrets

        from peers.ftp import FtpPeer

        peer = FtpPeer().start(port=0, user="kefu", password=secrets.token_hex(8))
    except Exception as exc:  # noqa: BLE001 - the demo runs on; exchange jobs wait in the outbox
        log.warning("no loopback FTP server for the demo: %s", exc)
        return f"KEFU_FTP_URL is not set and the loopback FTP server could not start ({exc}); files wait"
    atexit.register(peer.close)
    # As the national centre would: a specification file offered for collection.
    peer.offer("SPEC_2027_holidays.txt", "2027 年节假日安排（国务院办公厅通知）：元旦 1 月 1 日至 3 日放假。\n".encode())
    app.extensions["kefu_demo_ftp"] = peer
    from .connectors_setup import use_ftp

    use_ftp(app, peer.url)
    return (f"KEFU_FTP_URL is not set: files are exchanged with a loopback FTP server on 127.0.0.1:{peer.port} "
            "(admin → File exchange shows them)")


def send_demo_reply(app: Flask, source: str, text: str) -> Any:
    """Make the demo SMSC deliver a customer's SMS reply (as if ``source`` had texted us)."""
    peer = app.extensions.get("kefu_demo_smsc")
    if peer is None:
        raise RuntimeError("no demo SMS centre is running")
    return peer.send_mo(source, "10010", text)
