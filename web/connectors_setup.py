"""Which connectors this product runs with, built from configuration (the composition root).

Each connector is created lazily: an app that never sends an SMS never binds to the SMSC, so
tests and CLI commands start fast; the running product (``serve``) opens the links at start so
that receipts and customers' replies arrive even before anything is sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

from connectors.base import Registry, TransientError
from engine import outbox
from engine.clock import utcnow

from .extensions import db

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

    def submit(self, to: str, text: str, source: str | None = None) -> Any:
        return self.client().submit(to, text, source=source)

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
                outbox.receive(db.session, kind, payload, now=utcnow(), ref=ref)
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
    from .product_operations import operations as product_operations

    registry.add(product_operations(app))
    app.extensions["kefu_connector_starters"] = starters
    return registry


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
    from connectors.sms.templates import render

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
