"""Local-directory backend: ``<root>/<key>`` plus a ``<key>.json`` metadata sidecar.

Writes never overwrite: the sidecar is created with ``open(..., "xb")`` (which reserves the name), the
image is written to a temporary file and published with ``os.link`` (atomic, fails if the name exists),
so a reader never sees a half-written image. The app serves the files at ``/images/<key>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from petcut.storage.base import ImageStore, KeyExists, StoredObject, backend_guard
from petcut.storage.errors import ImageNotFound
from petcut.storage.ids import Tier, new_token, parse_key, validate_id
from petcut.storage.media import CONTENT_TYPE_BY_EXT

log = logging.getLogger("petcut.storage")

_SIDECAR = ".json"
_TMP_MARK = ".tmp-"
#: Leftovers of interrupted writes (temporary files, sidecars without an image) older than this are purged.
_STALE_AFTER = timedelta(hours=1)


def _guard(op: str) -> contextlib.AbstractContextManager[None]:
    """Disk errors (full, read-only, permissions) become :class:`StorageUnavailable`; the cause is logged."""
    return backend_guard("local image storage", op, lambda exc: isinstance(exc, OSError))


class LocalImageStore(ImageStore):
    backend = "local"
    serves_own_urls = True

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        public_base_url: str | None = None,
        clock: Callable[[], datetime] | None = None,
        token: Callable[[], str] | None = None,
    ) -> None:
        super().__init__(max_bytes=max_bytes, clock=clock, token=token)
        self.root = Path(root)
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    def __repr__(self) -> str:
        return f"LocalImageStore({str(self.root)!r})"

    def url_for(self, key: str) -> str:
        """``<PETCUT_PUBLIC_BASE_URL>/images/<key>``, else root-relative ``/images/<key>`` (the route
        turns it into an absolute URL from the request)."""
        return f"{self.public_base_url or ''}/images/{key}"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _create(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
        path = self._path(key)
        sidecar = path.with_name(path.name + _SIDECAR)
        tmp = path.with_name(f".{path.name}{_TMP_MARK}{new_token()}")
        with _guard("write"):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                meta_file = open(sidecar, "xb")  # noqa: SIM115 - reserves the name before anything else
            except FileExistsError:
                raise KeyExists(key) from None
            with meta_file:
                meta_file.write(json.dumps({**metadata, "content_type": content_type}).encode())
            try:
                with open(tmp, "xb") as out:
                    out.write(data)
                os.link(tmp, path)
            except FileExistsError:
                sidecar.unlink(missing_ok=True)
                raise KeyExists(key) from None
            except BaseException:
                sidecar.unlink(missing_ok=True)
                raise
            finally:
                tmp.unlink(missing_ok=True)

    def _objects(self, directory: Path, prefix: str) -> Iterator[StoredObject]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            parts = parse_key(f"{prefix}/{entry.name}")
            if parts is None:
                continue
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:  # moved or purged meanwhile
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            metadata = self._metadata(Path(entry.path))
            content_type = metadata.pop("content_type", None) or CONTENT_TYPE_BY_EXT[parts.ext]
            yield StoredObject(parts.key, size, content_type, metadata)

    @staticmethod
    def _metadata(path: Path) -> dict[str, str]:
        try:
            raw = json.loads(path.with_name(path.name + _SIDECAR).read_bytes())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in raw.items() if v is not None} if isinstance(raw, dict) else {}

    def _list(self, session_id: str) -> Iterable[StoredObject]:
        with _guard("list"):
            return [
                obj
                for tier in Tier
                for obj in self._objects(self.root / tier.value / session_id, f"{tier.value}/{session_id}")
            ]

    def _list_tier(self, tier: Tier) -> Iterable[StoredObject]:
        with _guard("list"):
            try:
                sessions = [e.name for e in os.scandir(self.root / tier.value) if e.is_dir(follow_symlinks=False)]
            except FileNotFoundError:
                return []
            found: list[StoredObject] = []
            for session_id in sessions:
                with contextlib.suppress(ValueError):
                    validate_id("session_id", session_id)
                    found += self._objects(self.root / tier.value / session_id, f"{tier.value}/{session_id}")
            return found

    def _move(self, src: str, dst: str, content_type: str, metadata: dict[str, str]) -> None:
        src_path, dst_path = self._path(src), self._path(dst)
        with _guard("move"):
            dst_path.parent.mkdir(parents=True, exist_ok=True)
            dst_sidecar = dst_path.with_name(dst_path.name + _SIDECAR)
            tmp = dst_sidecar.with_name(f".{dst_sidecar.name}{_TMP_MARK}{new_token()}")
            tmp.write_bytes(json.dumps({**metadata, "content_type": content_type}).encode())
            os.replace(tmp, dst_sidecar)  # dst's name is derived from src's: only a retry can meet it
            try:
                os.link(src_path, dst_path)
            except FileExistsError:
                pass  # a previous attempt got this far
            except FileNotFoundError:
                if not dst_path.exists():
                    dst_sidecar.unlink(missing_ok=True)
                    raise ImageNotFound("The image was removed meanwhile.") from None
            self._delete(src)

    def _read(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        with _guard("read"):
            try:
                if not path.resolve().is_relative_to(self.root.resolve()):
                    raise ImageNotFound("No such image.")
                data = path.read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise ImageNotFound("No such image.") from None
        parts = parse_key(key)
        assert parts is not None
        content_type = self._metadata(path).get("content_type") or CONTENT_TYPE_BY_EXT[parts.ext]
        return data, content_type

    def _delete(self, key: str) -> None:
        path = self._path(key)
        with _guard("delete"):
            path.unlink(missing_ok=True)
            path.with_name(path.name + _SIDECAR).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only when empty

    def purge_expired(self, now: datetime | None = None) -> list[str]:
        """As :meth:`ImageStore.purge_expired`, plus leftovers of interrupted writes older than an hour."""
        now = now or self._clock()
        deleted = super().purge_expired(now)
        with _guard("purge"):
            for tier in Tier:
                for directory in (self.root / tier.value).glob("*"):
                    self._purge_leftovers(directory, now)
        return deleted

    def _purge_leftovers(self, directory: Path, now: datetime) -> None:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        names = {e.name for e in entries}
        for entry in entries:
            stale = _TMP_MARK in entry.name or (
                entry.name.endswith(_SIDECAR) and entry.name[: -len(_SIDECAR)] not in names
            )
            if not stale:
                continue
            with contextlib.suppress(FileNotFoundError):
                age = now.timestamp() - entry.stat(follow_symlinks=False).st_mtime
                if age > _STALE_AFTER.total_seconds():
                    os.unlink(entry.path)
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty
