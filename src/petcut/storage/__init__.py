"""Customer image storage: a local directory (default) or Google Cloud Storage.

``PETCUT_STORAGE_URL`` picks the backend (:func:`open_store`):

- ``file:///abs/path`` (default ``<PETCUT_DATA_DIR>/images``): files on disk, served back by the app at
  ``/images/<key>``;
- ``gs://bucket[/prefix]``: objects in a bucket, fetched by clients from
  ``https://storage.googleapis.com/<bucket>/<prefix>/<key>`` (or from ``STORAGE_EMULATOR_HOST``).

Images live in tiers; the key is ``<tier>/<session_id>/<image_type>-<UTC timestamp>-<token>.<ext>``, so
two uploads never share a name, and backends refuse to overwrite anyway. Retention, counted from when an
image entered its tier (docs/storage.md has the GCS lifecycle rules that enforce it):

=================  ==============  ==========================================================
tier               retention       meaning
=================  ==============  ==========================================================
temporary          24 hours        previews while the customer is choosing (the default)
order_pending      30 days         in a cart / checkout that has not completed yet
order_completed    365 days        ordered (moved here by ``complete_order``), for reprints
archived           indefinitely    kept on purpose (e.g. customer consent, disputes)
=================  ==============  ==========================================================

On the local backend :meth:`ImageStore.purge_expired` (``python -m petcut.storage purge``, from cron or a
Kubernetes CronJob) deletes what has run out; on GCS bucket lifecycle rules do it (``purge_expired`` works
there too, e.g. against the emulator).

Identifiers (``session_id``, ``image_type``, ``pet_id``, ``order_id``) must match
``[A-Za-z0-9][A-Za-z0-9_-]{0,63}``, else :class:`InvalidIdentifier`; the content type is sniffed from the
bytes (:class:`UnsupportedMediaType` otherwise). Nothing is imported from Google's libraries and no
directory or connection is opened until a store is first used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from petcut.storage.base import ImageStore, StoredImage
from petcut.storage.errors import (
    ImageNotFound,
    InvalidIdentifier,
    InvalidParameter,
    PayloadTooLarge,
    StorageError,
    StorageUnavailable,
    UnsupportedMediaType,
)
from petcut.storage.ids import RETENTION, Tier, parse_key, validate_id
from petcut.storage.media import sniff

if TYPE_CHECKING:
    from petcut.config import Settings

__all__ = [
    "RETENTION",
    "ImageNotFound",
    "ImageStore",
    "InvalidIdentifier",
    "InvalidParameter",
    "PayloadTooLarge",
    "StorageError",
    "StorageUnavailable",
    "StoredImage",
    "Tier",
    "UnsupportedMediaType",
    "open_store",
    "parse_key",
    "parse_storage_url",
    "sniff",
    "validate_id",
]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_PREFIX_PART = re.compile(r"[A-Za-z0-9._-]{1,128}")


def parse_storage_url(url: str) -> tuple[str, str, str]:
    """``("file", "/abs/path", "")`` or ``("gs", bucket, prefix)``; ValueError naming the variable."""
    parts = urlsplit(url.strip())
    problem = None
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/") or parts.query or parts.fragment:
            problem = "a file URL needs an absolute path: file:///abs/path"
        else:
            return "file", path, ""
    elif parts.scheme == "gs":
        prefix = parts.path.strip("/")
        if not _BUCKET.fullmatch(parts.netloc) or parts.query or parts.fragment:
            problem = "not a valid bucket: gs://bucket[/prefix]"
        elif prefix and not all(_PREFIX_PART.fullmatch(p) and p not in (".", "..") for p in prefix.split("/")):
            problem = "the prefix may hold letters, digits, '.', '_', '-' and '/' only"
        else:
            return "gs", parts.netloc, prefix
    else:
        problem = "use file:///abs/path or gs://bucket/prefix"
    raise ValueError(f"PETCUT_STORAGE_URL: {problem} (got {url!r})")


def open_store(settings: Settings) -> ImageStore:
    """The store ``settings.storage_url`` names (default: ``<data_dir>/images``). Opens nothing yet."""
    url = settings.storage_url
    if not url:
        kind, where, prefix = "file", str(Path(settings.data_dir).expanduser().absolute() / "images"), ""
    else:
        kind, where, prefix = parse_storage_url(url)
    if kind == "file":
        from petcut.storage.local import LocalImageStore

        return LocalImageStore(
            Path(where), max_bytes=settings.max_upload_bytes, public_base_url=settings.public_base_url
        )
    from petcut.storage.gcs import GcsImageStore

    return GcsImageStore(where, prefix, max_bytes=settings.max_upload_bytes, timeout_s=settings.storage_timeout_s)
