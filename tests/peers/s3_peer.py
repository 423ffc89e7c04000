"""pytest fixture for a real S3-compatible server on loopback: moto's standalone server (the S3
REST API over HTTP, answered by moto's S3 implementation), started in a thread of the test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

__all__ = ["S3Peer", "s3_peer"]


@dataclass
class S3Peer:
    server: Any
    endpoint: str
    bucket: str
    access_key: str = "kefu-test"
    secret_key: str = "kefu-test-secret"
    stopped: bool = False

    def client(self) -> Any:
        """A plain boto3 client of our own, to look at the bucket behind the product's back."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def keys(self) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=self.bucket)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def stop(self) -> None:
        """The store goes down: its port stops answering."""
        self.server.stop()
        self.stopped = True


@pytest.fixture
def s3_peer() -> Iterator[S3Peer]:
    """A started S3 server on 127.0.0.1 (a free port) with an empty bucket of its own."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its buckets per process: a fresh name per test, whatever an earlier test left
    peer = S3Peer(server, f"http://{host}:{port}", bucket=f"kefu-files-{uuid.uuid4().hex[:12]}")
    peer.client().create_bucket(Bucket=peer.bucket)
    yield peer
    if not peer.stopped:
        requests.post(f"{peer.endpoint}/moto-api/reset", timeout=5)  # free what the test stored
        peer.stop()
