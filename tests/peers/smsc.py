"""pytest fixtures for the loopback SMSC (``peers/smsc.py``, node-smpp's server).

Use them from any test module by loading this module as a plugin (the root conftest does)::

    def test_something(smsc):                  # a fresh peer, credentials kefu / secret
        client = SmppClient(parse_smpp_url(smsc.url))
        ...
        assert smsc.wait_for(lambda peer: len(peer.messages()) == 1)

``smsc_factory(system_id=..., password=..., **config)`` starts peers with other credentials or
settings. Both skip the test (with the reason) when ``node`` or node_modules/smpp is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from peers.smsc import PeerUnavailable, SmscPeer

__all__ = ["PeerUnavailable", "SmscPeer", "smsc", "smsc_factory"]


@pytest.fixture
def smsc_factory() -> Iterator[Callable[..., SmscPeer]]:
    """Start peers with ``(system_id="kefu", password="secret", **config)``; all stopped afterwards."""
    peers: list[SmscPeer] = []

    def start(system_id: str = "kefu", password: str = "secret", **config: Any) -> SmscPeer:
        peer = SmscPeer()
        try:
            peer.start(system_id, password, **config)
        except PeerUnavailable as exc:
            pytest.skip(str(exc))
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.stop()


@pytest.fixture
def smsc(smsc_factory: Callable[..., SmscPeer]) -> SmscPeer:
    """A fresh loopback SMSC accepting kefu / secret; ``smsc.url`` is the client's KEFU_SMPP_URL."""
    return smsc_factory()
