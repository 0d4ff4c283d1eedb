"""Writing files so that a crash never leaves a half-written or unnoticed-corrupt one; the one place for it.

- :func:`atomic_write`: a temp file beside the destination, fsync, one ``os.replace``, fsync of the folder;
  temp files a killed writer left behind for the same destination are removed on the next write; every file
  gets the same mode (``0o666`` minus the umask, as ``open()`` would give), whoever writes it.
- :func:`seal` / :func:`verify`: a SHA-256 of the serialised ONNX model in its ``metadata_props``, so a
  flipped byte is an error at load time instead of a silently different model. Files without the entry (older
  or foreign ONNX) load as before. Weights kept as external data (models over 2 GB) are not covered.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx

from tailor_ir.errors import InvalidGraphError

__all__ = ["CHECKSUM_KEY", "ChecksumError", "atomic_write", "atomic_write_bytes", "file_mode", "seal", "verify"]

CHECKSUM_KEY = "finetuner.sha256"
STALE_TEMP_S = 60.0  # a temp file untouched this long belongs to a writer that died


class ChecksumError(InvalidGraphError):
    """The model's bytes do not match the checksum written with it: the file is corrupt."""


def file_mode() -> int:
    """The mode a plain ``open(path, 'w')`` would give under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(temp_path)``, then move the file onto ``path`` durably; a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    now = time.time()
    for temp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - temp.stat().st_mtime > STALE_TEMP_S:
                temp.unlink()
        except OSError:
            continue


def _digest(model: onnx.ModelProto) -> str:
    props = [(p.key, p.value) for p in model.metadata_props]
    unsealed = onnx.ModelProto()
    unsealed.CopyFrom(model)
    del unsealed.metadata_props[:]
    for key, value in props:
        if key != CHECKSUM_KEY:
            unsealed.metadata_props.add(key=key, value=value)
    return hashlib.sha256(unsealed.SerializeToString(deterministic=True)).hexdigest()


def seal(model: onnx.ModelProto) -> onnx.ModelProto:
    """Store the SHA-256 of ``model`` (without this entry) in its ``metadata_props``, in place; returns it."""
    digest = _digest(model)
    keep = [(p.key, p.value) for p in model.metadata_props if p.key != CHECKSUM_KEY]
    del model.metadata_props[:]
    for key, value in [*keep, (CHECKSUM_KEY, digest)]:
        model.metadata_props.add(key=key, value=value)
    return model


def verify(model: onnx.ModelProto, culprit: str) -> None:
    """Raise :class:`ChecksumError` naming ``culprit`` when the stored checksum does not match the model."""
    stored = next((p.value for p in model.metadata_props if p.key == CHECKSUM_KEY), None)
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    if stored is not None and not external and stored != _digest(model):
        raise ChecksumError(
            f"{culprit}: the model's bytes do not match the checksum stored with it; the file is corrupt "
            "(a flipped byte, a bad copy): write it again from the model"
        )
