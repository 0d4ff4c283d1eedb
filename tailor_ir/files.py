"""Writing files so that a crash never leaves a half-written or unnoticed-corrupt one; the one place for it.

- :func:`atomic_write`: a temp file beside the destination, fsync, one ``os.replace``, fsync of the folder;
  temp files a killed writer left behind for the same destination are removed on the next write; every file
  gets the same mode (``0o666`` minus the umask, as ``open()`` would give), whoever writes it.
- :func:`seal` / :func:`verify`: a SHA-256 of the serialised ONNX model in its ``metadata_props``, so a
  flipped byte is an error at load time instead of a silently different model. Files without the entry (older
  or foreign ONNX) load as before.
- :func:`write_model`: a sealed ONNX model, atomically. Models over 2 GB (protobuf's limit) keep their weights
  in ``<name>.<sha256[:16]>.data`` beside the ``.onnx``: the data file is written first under a name of its
  own content, the ``.onnx`` that names it replaces the old one last (one rename switches both), data files of
  earlier versions go afterwards, and the data file's SHA-256 is sealed into the metadata, so :func:`verify`
  checks the weights too.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx

from tailor_ir.errors import InvalidGraphError
from tailor_ir.protos import copy_fields, model_shell

__all__ = [
    "CHECKSUM_KEY",
    "DATA_CHECKSUM_KEY",
    "ChecksumError",
    "atomic_write",
    "atomic_write_bytes",
    "file_mode",
    "seal",
    "verify",
    "write_model",
]

CHECKSUM_KEY = "finetuner.sha256"
DATA_CHECKSUM_KEY = "finetuner.sha256.data"  # of the external data file, sealed with the rest
# protobuf serialises no more than this: larger models keep their weights beside the .onnx
EXTERNAL_DATA_BYTES = 2**31 - 1
EXTERNAL_TENSOR_BYTES = 1024  # initializers this large go to the data file (onnx's own default threshold)
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


def verify(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Raise :class:`ChecksumError` naming the file at ``path`` when the stored checksum does not match the model
    (loaded without its external data) or, for a model written with a data file, that file's bytes."""
    props = {p.key: p.value for p in model.metadata_props}
    stored = props.get(CHECKSUM_KEY)
    external = _external_locations(model)
    if stored is None or (external and DATA_CHECKSUM_KEY not in props):
        return  # unsealed, or sealed before its weights went to a data file (older exports): nothing to compare
    if stored != _digest(model):
        raise ChecksumError(
            f"{path}: the model's bytes do not match the checksum stored with it; the file is corrupt "
            "(a flipped byte, a bad copy): write it again from the model"
        )
    if external:
        folder = Path(path).resolve().parent
        if len(external) != 1:
            raise ChecksumError(
                f"{path}: its weights point at {sorted(external)}; a sealed model has one data file"
            )
        data = (folder / next(iter(external))).resolve()
        if not data.is_relative_to(folder) or not data.is_file():
            raise ChecksumError(
                f"{path}: its data file {data} is missing or outside the model's folder {folder}"
            )
        if _file_digest(data) != props[DATA_CHECKSUM_KEY]:
            raise ChecksumError(
                f"{data}: the weights do not match the checksum stored in {path}; the data file is corrupt or "
                "belongs to another version of the model: write the model again"
            )


def write_model(
    model: onnx.ModelProto, path: str | os.PathLike, check: Callable[[Path], None] | None = None
) -> Path:
    """Seal ``model`` (in place) and write it to ``path`` so that a reader sees the old model or the new one.

    ``check(temp_path)`` runs on the finished file (data file beside it) before it is moved into place. Up to
    ``EXTERNAL_DATA_BYTES`` the model is one file (:func:`atomic_write`); a larger one gets a content-named data
    file (module docstring); ``model`` itself keeps its weights either way.
    """
    path = Path(path)
    if model.ByteSize() <= EXTERNAL_DATA_BYTES:
        return _write_one_file(model, path, check)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        staged_data = Path(tmp) / "weights.data"
        light, digest = _split_weights(model, staged_data)
        if not _external_locations(light):  # no initializer large enough to move: one file after all
            return _write_one_file(model, path, check)
        data_name = f"{path.name}.{digest[:16]}.data"
        for tensor in light.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = data_name
        kept = [(p.key, p.value) for p in light.metadata_props if p.key != DATA_CHECKSUM_KEY]
        del light.metadata_props[:]
        for key, value in [*kept, (DATA_CHECKSUM_KEY, digest)]:
            light.metadata_props.add(key=key, value=value)
        seal(light)
        staged_model = Path(tmp) / path.name
        staged_model.write_bytes(light.SerializeToString())
        os.replace(staged_data, Path(tmp) / data_name)
        for file in (staged_model, Path(tmp) / data_name):
            with open(file, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(file, file_mode())
        if check is not None:
            check(staged_model)
        # the data file first, under a new name: the current model and its data file are untouched
        os.replace(Path(tmp) / data_name, path.with_name(data_name))
        fsync_dir(path.parent)
        os.replace(staged_model, path)  # the switch
    fsync_dir(path.parent)
    _remove_other_data_files(path, keep=data_name)
    return path


def _write_one_file(model: onnx.ModelProto, path: Path, check: Callable[[Path], None] | None) -> Path:
    seal(model)

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(model.SerializeToString())
        if check is not None:
            check(Path(tmp))

    return atomic_write(path, write)


def _split_weights(model: onnx.ModelProto, data_file: Path) -> tuple[onnx.ModelProto, str]:
    """A copy of ``model`` whose large initializers point into ``data_file`` (written here, one after another),
    and the SHA-256 of that file. The weights are copied one tensor at a time, never the whole model."""
    light = model_shell(model, skip_graph=("initializer",))
    digest = hashlib.sha256()
    offset = 0
    with open(data_file, "wb") as out:
        for tensor in model.graph.initializer:
            if not tensor.HasField("raw_data") or len(tensor.raw_data) < EXTERNAL_TENSOR_BYTES:
                light.graph.initializer.append(tensor)
                continue
            raw = tensor.raw_data
            out.write(raw)
            digest.update(raw)
            stub = light.graph.initializer.add()
            copy_fields(tensor, stub, skip=("raw_data",))
            stub.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (
                ("location", data_file.name),
                ("offset", str(offset)),
                ("length", str(len(raw))),
            ):
                stub.external_data.add(key=key, value=value)
            offset += len(raw)
    return light, digest.hexdigest()


def _external_locations(model: onnx.ModelProto) -> set[str]:
    return {
        entry.value
        for tensor in model.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_other_data_files(path: Path, keep: str) -> None:
    """Data files of earlier versions of the model at ``path`` (content-named, or the older ``<name>.data``)."""
    pattern = re.compile(re.escape(path.name) + r"(\.[0-9a-f]{16})?\.data")
    for file in path.parent.iterdir():
        if file.name != keep and pattern.fullmatch(file.name) and file.is_file():
            file.unlink(missing_ok=True)
