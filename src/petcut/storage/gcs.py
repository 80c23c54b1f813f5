"""Google Cloud Storage backend: object ``<prefix>/<key>``, metadata as the object's custom metadata.

``google.cloud.storage`` is imported and the client created on first use. When ``STORAGE_EMULATOR_HOST``
is set (tests, local development) the client talks to that emulator with anonymous credentials, and the
URLs point at it. Uploads use ``if_generation_match=0``, so an existing object is never overwritten.
Every call carries a bounded retry (``PETCUT_STORAGE_TIMEOUT_S``): when GCS is unreachable the request
fails with :class:`StorageUnavailable` (503) instead of hanging in the client's default 120 s retry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from petcut.storage.base import ImageStore, KeyExists, StoredObject, backend_guard
from petcut.storage.errors import ImageNotFound
from petcut.storage.ids import Tier, parse_key

log = logging.getLogger("petcut.storage")

PUBLIC_HOST = "https://storage.googleapis.com"
EMULATOR_PROJECT = "petcut-local"
#: printable ASCII but '%': metadata values are percent-encoded beyond it, because GCS returns custom
#: metadata as ``x-goog-meta-*`` HTTP headers on downloads, which cannot carry e.g. a pet name "Zoë 🐶"
_META_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _encode_metadata(metadata: dict[str, str]) -> dict[str, str]:
    return {key: quote(value, safe=_META_SAFE) for key, value in metadata.items()}


def _decode_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    return {str(key): unquote(str(value)) for key, value in (metadata or {}).items()}


def _guard(op: str) -> contextlib.AbstractContextManager[None]:
    """Any client, auth or transport failure becomes :class:`StorageUnavailable`; the cause is logged."""
    return backend_guard("GCS", op, _is_backend_error)


def _is_backend_error(exc: Exception) -> bool:
    import requests
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return isinstance(exc, GoogleAPIError | GoogleAuthError | requests.RequestException | OSError)


class GcsImageStore(ImageStore):
    backend = "gcs"
    serves_own_urls = False

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        max_bytes: int,
        timeout_s: float = 10.0,
        project: str | None = None,
        clock: Callable[[], datetime] | None = None,
        token: Callable[[], str] | None = None,
    ) -> None:
        super().__init__(max_bytes=max_bytes, clock=clock, token=token)
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.timeout_s = timeout_s
        self.project = project
        self._lock = threading.Lock()
        self._client: Any = None
        self._bucket: Any = None
        self._retry: Any = None
        self._download_base: str | None = None

    def __repr__(self) -> str:
        return f"GcsImageStore('gs://{self.bucket_name}/{self.prefix}')"

    # --- the client, created on first use ---------------------------------------------------------
    def _connect(self) -> Any:
        if self._bucket is not None:
            return self._bucket
        with self._lock, _guard("connect"):
            if self._bucket is None:
                from google.cloud import storage
                from google.cloud.storage.retry import DEFAULT_RETRY

                emulator = os.environ.get("STORAGE_EMULATOR_HOST")
                if emulator:
                    from google.auth.credentials import AnonymousCredentials

                    project = self.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or EMULATOR_PROJECT
                    client = storage.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]  # google-auth leaves it unannotated
                    base = emulator if "://" in emulator else f"http://{emulator}"
                else:
                    client = storage.Client(project=self.project)
                    base = PUBLIC_HOST
                self._retry = DEFAULT_RETRY.with_timeout(self.timeout_s)
                self._download_base = base.rstrip("/")
                self._client = client
                self._bucket = client.bucket(self.bucket_name)
        return self._bucket

    def _call(self) -> dict[str, Any]:
        return {"retry": self._retry, "timeout": self.timeout_s}

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, name: str) -> str | None:
        if self.prefix:
            if not name.startswith(self.prefix + "/"):
                return None
            name = name[len(self.prefix) + 1 :]
        return name if parse_key(name) else None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
            self._client = self._bucket = None

    # --- primitives ---------------------------------------------------------------------------------
    def url_for(self, key: str) -> str:
        """``https://storage.googleapis.com/<bucket>/<object>`` (the emulator's host instead when set).
        The object must be readable by the client: a public bucket, or a CDN/proxy in front of it."""
        self._connect()
        return f"{self._download_base}/{self.bucket_name}/{quote(self._name(key), safe='/')}"

    def _create(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
        from google.api_core.exceptions import PreconditionFailed

        bucket = self._connect()
        with _guard("upload"):
            blob = bucket.blob(self._name(key))
            blob.metadata = _encode_metadata(metadata)
            try:
                blob.upload_from_string(data, content_type=content_type, if_generation_match=0, **self._call())
            except PreconditionFailed:
                raise KeyExists(key) from None

    def _objects(self, prefix: str) -> list[StoredObject]:
        bucket = self._connect()
        found = []
        with _guard("list"):
            for blob in self._client.list_blobs(bucket, prefix=self._name(prefix), **self._call()):
                key = self._key(blob.name)
                if key is not None:
                    found.append(
                        StoredObject(key, int(blob.size or 0), blob.content_type or "", _decode_metadata(blob.metadata))
                    )
        return found

    def _list(self, session_id: str) -> Iterable[StoredObject]:
        return [obj for tier in Tier for obj in self._objects(f"{tier.value}/{session_id}/")]

    def _list_tier(self, tier: Tier) -> Iterable[StoredObject]:
        return self._objects(f"{tier.value}/")

    def _move(self, src: str, dst: str, content_type: str, metadata: dict[str, str]) -> None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        bucket = self._connect()
        with _guard("move"):
            source, target = bucket.blob(self._name(src)), bucket.blob(self._name(dst))
            try:
                bucket.copy_blob(source, bucket, target.name, if_generation_match=0, **self._call())
            except PreconditionFailed:
                pass  # a previous attempt copied it
            except NotFound:
                if not target.exists(**self._call()):
                    raise ImageNotFound("The image was removed meanwhile.") from None
            target.metadata = _encode_metadata(metadata)
            target.content_type = content_type
            target.patch(**self._call())
            with contextlib.suppress(NotFound):
                source.delete(**self._call())

    def _read(self, key: str) -> tuple[bytes, str]:
        from google.api_core.exceptions import NotFound

        bucket = self._connect()
        with _guard("read"):
            try:
                blob = bucket.get_blob(self._name(key), **self._call())
                if blob is None:
                    raise ImageNotFound("No such image.")
                return blob.download_as_bytes(**self._call()), blob.content_type or "application/octet-stream"
            except NotFound:
                raise ImageNotFound("No such image.") from None

    def _delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        bucket = self._connect()
        with _guard("delete"), contextlib.suppress(NotFound):
            bucket.blob(self._name(key)).delete(**self._call())
