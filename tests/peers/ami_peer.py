"""pytest fixture for the loopback AMI peer (``peers/ami.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from peers.ami import AmiPeer

__all__ = ["AmiPeer", "ami_peer"]


@pytest.fixture
def ami_peer() -> Iterator[AmiPeer]:
    """A started ``AmiPeer`` (user ``kefu``, secret ``s3cret``, fast call timings), stopped after."""
    peer = AmiPeer().start()
    yield peer
    peer.stop()
