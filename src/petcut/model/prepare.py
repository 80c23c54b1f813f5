"""Prepared artifacts: the InSPyReNet checkpoint exported once to an OpenVINO IR, next to the weights.

``petcut weights prepare`` (and ``weights download``, ``make run``, the CPU image's build) exports the
checkpoint to ONNX with dynamic height and width, converts it to an OpenVINO IR with fp32 weights and
saves it under ``<weights dir>/prepared/<key>/``. The key holds everything that changes the graph or its
meaning: the checkpoint's md5, the network's base size (the mode's; its attention stages are built for
it) and the OpenVINO version. ``meta.json`` records the files' sizes and sha256, checked before use, so a
stale, truncated or altered artifact is never served: :func:`find` says why it is unusable and the
loader falls back to torch.

One dynamic IR serves static and dynamic resize alike (every multiple of 32 up to 4096 per side).
Preparing imports torch and transparent-background; finding and using an artifact does not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from petcut.config import Settings
from petcut.model import checkpoint

log = logging.getLogger(__name__)

FORMAT = 1
XML, BIN, META = "model.xml", "model.bin", "meta.json"


@dataclass(frozen=True)
class Artifact:
    """A prepared IR that passed its checks."""

    directory: Path
    key: str

    @property
    def xml(self) -> Path:
        return self.directory / XML


@dataclass(frozen=True)
class Lookup:
    """Where the artifact for a checkpoint lives, and either the usable artifact or why there is none."""

    directory: Path
    artifact: Artifact | None
    reason: str


def prepared_root(settings: Settings) -> Path:
    return settings.weights_dir / "prepared"


def cache_dir(settings: Settings) -> Path:
    """OpenVINO's compiled-blob cache (``CACHE_DIR``): a restart does not compile again. It lives in the
    data directory, which is writable, not beside the weights, which a container image bakes read-only
    (and a blob compiled on the build machine's CPU would not fit the serving machine's anyway)."""
    return settings.data_dir / "openvino-cache"


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def checkpoint_md5(settings: Settings, path: Path) -> str:
    """The checkpoint's md5: the published one for a verified weights file, else hashed (and remembered
    by path, size and mtime in the prepared directory, so a restart does not hash 370 MB again)."""
    if checkpoint.should_verify(settings, path):
        published = checkpoint.mode_info(settings.mode).md5
        if published and checkpoint.verify(path, settings.mode):
            return published
    stat = path.stat()
    index_path = prepared_root(settings) / "checkpoints.json"
    entry_key = str(path.resolve())
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    entry = index.get(entry_key) if isinstance(index, dict) else None
    if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return str(entry["md5"])
    md5 = checkpoint.file_md5(path)
    index = index if isinstance(index, dict) else {}
    index[entry_key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "md5": md5}
    try:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(index_path, json.dumps(index, indent=1))
    except OSError:  # a read-only weights directory: hash again next start
        pass
    return md5


def artifact_key(md5: str, base_size: int, openvino_version: str) -> str:
    return f"inspyrenet-{base_size}-{md5[:16]}-ov{openvino_version}"


def find(settings: Settings, path: Path, base_size: int) -> Lookup:
    """The usable artifact for checkpoint ``path``, or the reason there is none. Never prepares."""
    try:
        from petcut.model.engine_openvino import openvino_version

        version = openvino_version()
    except ImportError:
        return Lookup(prepared_root(settings), None, "OpenVINO is not installed")
    key = artifact_key(checkpoint_md5(settings, path), base_size, version)
    directory = prepared_root(settings) / key
    if not directory.is_dir():
        stale = sorted(p.name for p in prepared_root(settings).glob(f"inspyrenet-{base_size}-*") if p.is_dir())
        why = f" (found only {', '.join(stale)}: another checkpoint or OpenVINO version)" if stale else ""
        return Lookup(directory, None, f"no prepared OpenVINO artifact {key}{why}; run `petcut weights prepare`")
    problem = _check(directory, key)
    if problem:
        return Lookup(
            directory, None, f"the prepared artifact {key} is unusable ({problem}); run `petcut weights prepare`"
        )
    return Lookup(directory, Artifact(directory, key), "prepared artifact verified")


def _check(directory: Path, key: str) -> str | None:
    try:
        meta = json.loads((directory / META).read_text())
    except (OSError, ValueError):
        return "meta.json missing or unreadable"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != key:
        return "meta.json does not describe this artifact"
    files = meta.get("files")
    if not isinstance(files, dict):
        return "meta.json lists no files"
    for name in (XML, BIN):
        expected = files.get(name)
        target = directory / name
        if not isinstance(expected, dict) or not target.is_file():
            return f"{name} missing"
        stat = target.stat()
        if stat.st_size != expected.get("size"):
            return f"{name} has {stat.st_size} bytes, expected {expected.get('size')}"
        if stat.st_mtime_ns != expected.get("mtime_ns") and _sha256(target) != expected.get("sha256"):
            return f"{name} does not match its sha256"
    return None


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def prepare(settings: Settings, *, force: bool = False, progress: Callable[[str], None] | None = None) -> Artifact:
    """Export the configured checkpoint to an OpenVINO IR unless a valid one exists. Imports torch."""
    from petcut.model.inspyrenet import InSPyReNet

    step = progress or (lambda message: None)
    path = checkpoint.InSPyReNetWeights(settings).locate()
    if checkpoint.should_verify(settings, path):
        step("verifying the checkpoint")
        checkpoint.verify(path, settings.mode)
    base_size = InSPyReNet.from_settings(settings).network_base_size
    step("hashing the checkpoint")
    found = find(settings, path, base_size)
    if found.artifact is not None and not force:
        step("already prepared")
        return found.artifact
    import openvino as ov

    from petcut.model.export import export_onnx
    from petcut.model.inspyrenet_torch import load_network

    directory = found.directory
    key = directory.name
    directory.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=directory.parent))
    work.chmod(0o755)  # mkdtemp's 0700 would hide the artifact from a service running as another user
    try:
        step("loading the network")
        network = load_network(path, base_size)
        step("exporting to ONNX with dynamic sizes (a minute or two)")
        started = time.perf_counter()
        onnx_path = export_onnx(network, work / "onnx" / "model.onnx", sample_size=(base_size, base_size))
        del network
        step("converting to OpenVINO IR")
        model = ov.convert_model(str(onnx_path))
        ov.save_model(model, str(work / XML), compress_to_fp16=False)
        shutil.rmtree(work / "onnx")
        files = {}
        for name in (XML, BIN):
            stat = (work / name).stat()
            files[name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _sha256(work / name)}
        meta = {
            "format": FORMAT,
            "key": key,
            "model": "inspyrenet",
            "mode": settings.mode,
            "base_size": base_size,
            "checkpoint_md5": key.split("-")[2],
            "openvino": ov.__version__,
            "input": "image f32[1,3,H,W], H and W multiples of 32 up to 4096",
            "output": "alpha f32[1,1,H,W] in [0,1]",
            "seconds": round(time.perf_counter() - started, 1),
            "files": files,
        }
        (work / META).write_text(json.dumps(meta, indent=1))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(work, directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    problem = _check(directory, key)
    if problem:  # pragma: no cover - a disk that changes what was just written
        raise OSError(f"the artifact just written is unusable: {problem}")
    log.info("OpenVINO artifact prepared", extra={"artifact": key, "seconds": meta["seconds"]})
    step(f"prepared {directory}")
    return Artifact(directory, key)
