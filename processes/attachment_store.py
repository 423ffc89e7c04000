"""Where attachments' bytes live: a directory of the data dir (the default) or an S3-compatible
object store (AWS S3, MinIO, Ceph RGW, …), chosen by configuration.

A store only puts, gets and deletes objects by key; the database row (``attachments``) says which
key belongs to which case. Faults of the store are two typed errors: :class:`StoreUnavailable`
(the store did not answer or refused us: nothing was written, try again) and :class:`ObjectMissing`
(the store answered, but has no object under that key).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from connectors.base import peer_wait
from engine.errors import KefuError

log = logging.getLogger("kefu.attachments")
_KEY = re.compile(r"[0-9a-f]{32}")  # the keys attachments.add makes (uuid4 hex): never a path


class StoreUnavailable(KefuError):
    """The attachment store did not answer (or refused our credentials); nothing was stored."""

    code = "store_unavailable"


class ObjectMissing(KefuError):
    """The store answered but has no object under the key a row names."""

    code = "attachment_missing"


class AttachmentStore(Protocol):
    """Objects by key. ``put`` overwrites; ``delete`` of a missing key is not an error."""

    def put(self, key: str, content: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


def _checked(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"not an attachment key: {key!r}")
    return key


@dataclass(frozen=True)
class DirectoryStore:
    """Files named by their key in one directory (``KEFU_DATA_DIR/attachments``)."""

    directory: Path

    def put(self, key: str, content: bytes, content_type: str) -> None:
        path = self.directory / _checked(key)
        partial = path.with_suffix(".part")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(content)
            partial.replace(path)  # a reader never sees half a file
        except OSError as exc:  # disk full, permissions: the upload is refused, nothing kept
            partial.unlink(missing_ok=True)
            log.warning("attachment directory %s: %s", self.directory, exc)
            raise StoreUnavailable("the attachment directory cannot be written") from exc

    def get(self, key: str) -> bytes:
        try:
            return (self.directory / _checked(key)).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(f"attachment object {key} is missing") from exc
        except OSError as exc:
            log.warning("attachment directory %s: %s", self.directory, exc)
            raise StoreUnavailable("the attachment directory cannot be read") from exc

    def delete(self, key: str) -> None:
        try:
            (self.directory / _checked(key)).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreUnavailable("the attachment directory cannot be written") from exc


@dataclass(frozen=True)
class S3Settings:
    """``KEFU_ATTACHMENT_STORE=s3://bucket/prefix`` and the ``KEFU_S3_*`` variables."""

    bucket: str
    prefix: str = ""
    endpoint: str = ""  # unset: AWS itself
    access_key: str = ""  # unset: the client's usual sources (environment, instance role)
    secret_key: str = ""
    region: str = "us-east-1"
    addressing: str = ""  # path | virtual; unset: path when an endpoint is given (MinIO, Ceph)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.addressing not in ("", "path", "virtual"):
            raise ValueError(f"KEFU_S3_ADDRESSING must be path or virtual, not {self.addressing!r}")


class S3Store:
    """Objects ``prefix + key`` in one bucket of an S3-compatible store (the bucket must exist)."""

    def __init__(self, settings: S3Settings) -> None:
        import boto3  # type: ignore[import-untyped]  # only deployments using S3 pay for importing it
        from botocore.config import Config  # type: ignore[import-untyped]

        self.settings = settings
        addressing = settings.addressing or ("path" if settings.endpoint else "auto")
        config = Config(
            region_name=settings.region or None, connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            # a store that is down fails the upload in seconds, not after minutes of retries
            retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": addressing},
            # newer botocore checksums every request by default, which many S3-compatible stores refuse
            request_checksum_calculation="when_required", response_checksum_validation="when_required")
        self._client: Any = boto3.client(
            "s3", endpoint_url=settings.endpoint or None, config=config,
            aws_access_key_id=settings.access_key or None, aws_secret_access_key=settings.secret_key or None)

    def _key(self, key: str) -> str:
        return self.settings.prefix + _checked(key)

    def put(self, key: str, content: bytes, content_type: str) -> None:
        self._call("put", key, lambda: self._client.put_object(
            Bucket=self.settings.bucket, Key=self._key(key), Body=content, ContentType=content_type))

    def get(self, key: str) -> bytes:
        return self._call("get", key, lambda: self._client.get_object(
            Bucket=self.settings.bucket, Key=self._key(key))["Body"].read())

    def delete(self, key: str) -> None:
        self._call("delete", key, lambda: self._client.delete_object(
            Bucket=self.settings.bucket, Key=self._key(key)))

    def _call(self, verb: str, key: str, action: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        try:
            with peer_wait():
                return action()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if verb == "get" and code == "NoSuchKey":
                raise ObjectMissing(f"attachment object {key} is missing") from exc
            # NoSuchBucket, AccessDenied, a signature refused, a 5xx, a bare 404 from something that
            # is not S3 (a proxy, a wrong endpoint): the store is not usable now
            log.warning("attachment store s3://%s: %s %s: %s", self.settings.bucket, verb, key, code or exc)
            raise StoreUnavailable("the attachment store refused the request") from exc
        except (BotoCoreError, OSError) as exc:  # connection refused, timeouts, a broken response
            log.warning("attachment store s3://%s: %s %s: %s", self.settings.bucket, verb, key, exc)
            raise StoreUnavailable("the attachment store is not answering") from exc


def s3_settings(url: str, **variables: Any) -> S3Settings:
    """The settings of ``s3://bucket/prefix`` (a prefix gets its trailing ``/``)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"KEFU_ATTACHMENT_STORE must be empty or s3://bucket/prefix, not {url!r}")
    prefix = parts.path.strip("/")
    return S3Settings(bucket=parts.netloc, prefix=f"{prefix}/" if prefix else "", **variables)


def from_settings(url: str, data_dir: Path, **s3_variables: Any) -> AttachmentStore:
    """The store ``KEFU_ATTACHMENT_STORE`` names: empty, the data dir; ``s3://…``, an S3 bucket."""
    if not url.strip():
        return DirectoryStore(data_dir / "attachments")
    return S3Store(s3_settings(url.strip(), **s3_variables))
