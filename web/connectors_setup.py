"""Which connectors this product runs with, built from configuration (the composition root).

Each connector is created lazily: an app that never sends an SMS never binds to the SMSC, so
tests and CLI commands start fast; the running product (``serve``) opens the links at start so
that receipts and customers' replies arrive even before anything is sent.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

from connectors.base import Registry, TransientError
from engine import peer_events
from engine.clock import utcnow

from .extensions import app_sessions, db

log = logging.getLogger("kefu.connectors")


class LazySms:
    """The SMPP client, bound on first use (or by :meth:`start`); receipts and replies from the SMSC
    are stored as inbound events before they are acknowledged."""

    def __init__(self, app: Flask, url: str) -> None:
        self.app, self.url = app, url
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from connectors.sms.client import SmppClient
                from connectors.sms.config import parse_smpp_url

                client = SmppClient(parse_smpp_url(self.url), on_receipt=self._on_receipt, on_mo=self._on_mo)
                client.connect()
                self._client = client
            return self._client

    def submit(self, to: str, text: str, source: str | None = None, tag: str | None = None,
               on_accepted: Any = None, before_send: Any = None) -> Any:
        return self.client().submit(to, text, source=source, tag=tag, on_accepted=on_accepted,
                                    before_send=before_send)

    def query(self, message_id: str, source: str | None = None) -> Any:
        return self.client().query(message_id, source=source)

    def start(self) -> None:
        try:
            self.client()
        except Exception as exc:  # noqa: BLE001 - the product runs on; sends retry through the outbox
            log.warning("SMSC not reachable at start: %s", exc)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _store(self, kind: str, payload: dict[str, Any], ref: str | None) -> None:
        with self.app.app_context():
            try:
                peer_events.receive(db.session, kind, payload, now=utcnow(), ref=ref)
                db.session.commit()
            finally:
                db.session.remove()

    def _on_receipt(self, message_id: str, state: str, raw: dict[str, Any]) -> None:
        self._store("smpp_receipt", {"state": state, "detail": {k: str(v) for k, v in raw.items()}},
                    message_id)

    def _on_mo(self, source: str, destination: str, text: str) -> None:
        self._store("sms_mo", {"from": source, "to": destination, "text": text}, source)


class Unconfigured:
    """Stands where a connector's link would be when its URL is not configured."""

    def __init__(self, setting: str) -> None:
        self.setting = setting

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise TransientError(f"{self.setting} is not configured")

        return fail


def build_registry(app: Flask) -> Registry:
    """The operations of every configured connector."""
    registry = Registry()
    starters: list[Callable[[], None]] = []
    from connectors.sms.operations import operations as sms_operations

    smpp_url = app.config.get("KEFU_SMPP_URL")
    if smpp_url:
        sms: Any = LazySms(app, smpp_url)
        registry.add(sms_operations(sms, _template_renderer(app)), close=sms.close)
        starters.append(sms.start)
    else:
        # The operation exists (diagrams that send texts deploy and run); its jobs wait and retry
        # until an SMS centre is configured, then go out.
        registry.add(sms_operations(Unconfigured("KEFU_SMPP_URL"), _template_renderer(app)))
    from connectors.billing.gateway import BillingGateway
    from connectors.billing.operations import operations as billing_operations

    # The gateway connects on first use; a billing database that is down makes inline reads answer
    # 503 and outbox jobs retry (see connectors/billing).
    billing = BillingGateway(app.config["KEFU_BILLING_URL"])
    registry.add(billing_operations(billing), close=billing.close)
    app.extensions["kefu_billing"] = billing
    _add_pbx(app, registry, starters)
    _add_ftp(app, registry)
    from processes.outbound_call_operations import operations as product_operations
    from processes.outbound_calls import AdjustableHours

    hours = AdjustableHours.configured(str(app.config.get("KEFU_CALLBACK_HOURS") or "08:00-21:00"),
                                       "calling_hours")
    registry.add(product_operations(hours, app.extensions.get("kefu_billing"), app_sessions(app),
                                    lambda: app.extensions["kefu_engine"]))
    from processes.complaint_rules import operations as complaint_operations

    registry.add(complaint_operations(app_sessions(app), lambda: app.extensions["kefu_engine"]))
    from processes.dunning import Dunning
    from processes.dunning import operations as dunning_operations

    dunning_settings = _dunning_settings(app)
    registry.add(dunning_operations(dunning_settings.hours))
    app.extensions["kefu_dunning"] = Dunning(billing, dunning_settings)
    from processes.payment_reminders import PaymentReminders

    app.extensions["kefu_reminders"] = PaymentReminders(billing, _reminder_settings(app))
    from .roaming import add_roaming

    add_roaming(app, registry)  # the roaming exchange (KEFU_COMPANY_CODE, KEFU_PARTNERS)
    app.extensions["kefu_connector_starters"] = starters
    return registry


def _dunning_settings(app: Flask) -> Any:
    """The dunning settings (KEFU_DUNNING_HOURS, KEFU_DUNNING_DAY, KEFU_DUNNING_RECALL_DAYS)."""
    from processes.dunning import DunningSettings
    from processes.outbound_calls import AdjustableHours

    return DunningSettings(hours=AdjustableHours.configured(str(app.config.get("KEFU_DUNNING_HOURS") or "09:00-20:00"),
                                                            "dunning_hours"),
                           day=max(1, min(28, int(app.config.get("KEFU_DUNNING_DAY") or 5))),
                           recall_days=max(1, int(app.config.get("KEFU_DUNNING_RECALL_DAYS") or 7)))


def _reminder_settings(app: Flask) -> Any:
    """The payment-reminder settings (KEFU_REMINDER_THRESHOLDS, KEFU_PREPAID_FLOOR_FEN, KEFU_REMINDER_HOURS)."""
    from processes.outbound_calls import CallingHours
    from processes.payment_reminders import ReminderSettings

    return ReminderSettings(
        hours=CallingHours.parse(str(app.config.get("KEFU_REMINDER_HOURS") or "09:00-20:00")),
        thresholds=ReminderSettings.parse_thresholds(str(app.config.get("KEFU_REMINDER_THRESHOLDS") or "80,100")),
        prepaid_floor_fen=max(0, int(app.config.get("KEFU_PREPAID_FLOOR_FEN") or 0)))


# -- PBX (AMI) ------------------------------------------------------------------------------------
class UnconfiguredPbx(Unconfigured):
    """The PBX link when ``KEFU_AMI_URL`` is unset: originate jobs wait and retry."""

    @property
    def config(self) -> Any:
        raise TransientError(f"{self.setting} is not configured")


class LazyPbx:
    """The AMI client, connected on first use (or by :meth:`start`, as ``serve`` and ``worker`` do).

    Its events feed a ``CallTracker``; ringing and finished calls are handed to one worker thread
    that records them (``web.telephony``), so the AMI reader thread never waits on the database.
    A refused login or an unreachable PBX is retried in the background with backoff; meanwhile
    ``originate`` raises ``TransientError`` and the outbox retries the job."""

    def __init__(self, app: Flask, url: str) -> None:
        from connectors.pbx import CallTracker, parse_ami_url

        self.app = app
        self.config = parse_ami_url(url)
        # Test-only tuning of timeouts and backoff (AmiClient keyword arguments).
        self.options: dict[str, Any] = dict(app.config.get("KEFU_AMI_OPTIONS") or {})
        self.tracker = CallTracker(self._on_ringing, self._on_ended)
        self._client: Any = None
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    def client(self) -> Any:
        """The AMI client, started (logging in in the background) on first use."""
        with self._lock:
            if self._client is None:
                from connectors.pbx import AmiClient

                self._client = AmiClient(self.config, self.tracker.feed, **self.options)
                self._client.start()
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="kefu-pbx-calls", daemon=True)
                self._worker.start()
            return self._client

    def originate(self, *args: Any, **kwargs: Any) -> Any:
        client = self.client()
        if not client.wait_connected(float(self.options.get("connect_timeout", 3.0))):
            raise TransientError("the PBX (AMI) is not connected; reconnecting in the background")
        return client.originate(*args, **kwargs)

    def start(self) -> None:
        self.client()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            worker, self._worker = self._worker, None
        if client is not None:
            client.close()
        if worker is not None:
            self._queue.put(None)
            worker.join(timeout=2.0)

    def _on_ringing(self, caller: str, extension: str, call_id: str) -> None:
        self._queue.put(("ringing", (caller, extension, call_id)))

    def _on_ended(self, record: Any) -> None:
        self._queue.put(("ended", record))

    def _work(self) -> None:
        from processes import telephony

        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, value = item
            try:
                if kind == "ringing":
                    caller, extension, call_id = value
                    telephony.inbound_ringing(app_sessions(self.app), self.app.extensions.get("kefu_billing"),
                                              caller=caller, extension=extension, call_id=call_id, source="ami")
                else:
                    telephony.call_ended(app_sessions(self.app), value)
            except Exception:  # one bad event must not stop the recording of later calls
                log.exception("recording PBX %s event failed", kind)


def _add_pbx(app: Flask, registry: Registry, starters: list[Callable[[], None]]) -> None:
    from connectors.pbx import operations as pbx_operations

    url = app.config.get("KEFU_AMI_URL")
    if url:
        pbx: Any = LazyPbx(app, url)
        registry.add(pbx_operations(pbx), close=pbx.close)
        starters.append(pbx.start)
        app.extensions["kefu_pbx"] = pbx
    else:
        # The operation exists (callback diagrams deploy and run); its jobs retry until configured.
        registry.add(pbx_operations(UnconfiguredPbx("KEFU_AMI_URL")))
        app.extensions["kefu_pbx"] = None


def use_pbx(app: Flask, url: str) -> LazyPbx:
    """Dial and listen through the PBX at ``url`` from now on (the demo's loopback AMI peer)."""
    from connectors.pbx import operations as pbx_operations

    registry: Registry = app.extensions["kefu_connectors"]
    app.config["KEFU_AMI_URL"] = url
    pbx = LazyPbx(app, url)
    for op in pbx_operations(pbx):
        registry.operations[op.name] = op  # the engine and its worker share this mapping
    registry.closers.append(pbx.close)
    app.extensions["kefu_connector_starters"].append(pbx.start)
    app.extensions["kefu_pbx"] = pbx
    return pbx


def _add_ftp(app: Flask, registry: Registry) -> None:
    from connectors.ftp import operations as ftp_operations

    url = app.config.get("KEFU_FTP_URL")
    # Unconfigured, exchange jobs wait and retry (the files are kept) until a URL is set.
    registry.add(ftp_operations(_ftp_client(url) if url else Unconfigured("KEFU_FTP_URL")))


def _ftp_client(url: str) -> Any:
    from connectors.ftp import FtpExchangeClient, parse_ftp_url

    return FtpExchangeClient(parse_ftp_url(url))


def use_ftp(app: Flask, url: str) -> None:
    """Exchange files through the FTP server at ``url`` from now on (the demo's loopback server)."""
    from connectors.ftp import operations as ftp_operations

    registry: Registry = app.extensions["kefu_connectors"]
    app.config["KEFU_FTP_URL"] = url
    for op in ftp_operations(_ftp_client(url)):
        registry.operations[op.name] = op  # the engine and its worker share this mapping


def use_smsc(app: Flask, url: str) -> None:
    """Send texts through the SMSC at ``url`` from now on (the demo's loopback SMSC)."""
    from connectors.sms.operations import operations as sms_operations

    registry: Registry = app.extensions["kefu_connectors"]
    app.config["KEFU_SMPP_URL"] = url
    sms = LazySms(app, url)
    for op in sms_operations(sms, _template_renderer(app)):
        registry.operations[op.name] = op  # the engine and its worker share this mapping
    registry.closers.append(sms.close)
    app.extensions["kefu_connector_starters"].append(sms.start)


def start_links(app: Flask) -> None:
    """Open the connectors' links now (the running product; see module doc)."""
    for start in app.extensions.get("kefu_connector_starters", []):
        start()


def _template_renderer(app: Flask) -> Callable[[str, dict[str, Any]], str]:
    from processes.sms_templates import render

    def render_in_app(code: str, context: dict[str, Any]) -> str:
        # Worker threads have no app context of their own: read the template in a short one.
        with app.app_context():
            try:
                return render(db.session, code, context)
            except Exception as exc:
                if isinstance(exc, ValueError):
                    raise
                raise TransientError(f"reading SMS template '{code}' failed: {exc}") from exc
            finally:
                db.session.remove()

    return render_in_app
