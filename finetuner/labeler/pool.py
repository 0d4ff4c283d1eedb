"""The workdir (pool, labels, checkpoints, exports) and how a pool Document is shown as a card in the UI.

Workdir layout::

    pool.bin                    the unlabelled pool (DocumentArray, protobuf)
    pool.json                   {"items", "text"}: what the pool's default settings depend on, without reading it
    labels.sqlite               every label, committed per submit (see store.py)
    checkpoints/latest.json     {"version", "path", "metrics", "time"} of the newest fitted weights
    checkpoints/model-<v>.npz   the model's weights of version v (numpy arrays by name: a Tuner's get_weights)
    exports/model.onnx          the saved model (finetuner.save: finetuner.load reads it back, any framework)
    exports/embedding.onnx      the serving-ready export (finetuner.export), when asked for
    exports/labels.bin          the exported labels (session DocumentArray)

Every file is written to a temporary name first and renamed, so a crash never leaves half a file behind.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from tailor_ir.files import atomic_write, atomic_write_bytes

MAX_INLINE_BYTES = 8 * 1024 * 1024


def is_text_pool(docs: Any) -> bool:
    """Whether ``docs`` is a non-empty pool of text documents only (which decides its default settings)."""
    return bool(len(docs)) and all(doc.content_type == "text" for doc in docs)


class Workdir:
    """Paths and atomic reads/writes of one Labeler workdir."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.pool = self.root / "pool.bin"
        self.pool_summary = self.root / "pool.json"
        self.labels = self.root / "labels.sqlite"
        self.checkpoints = self.root / "checkpoints"
        self.latest = self.checkpoints / "latest.json"
        self.exports = self.root / "exports"
        self.stop_request = self.root / "stop.request"

    def create(self) -> Workdir:
        """Make the folders."""
        for path in (self.root, self.checkpoints, self.exports):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def save_pool(self, docs: Any) -> None:
        """Write the pool atomically, then its summary (``pool.json``). The old summary goes first, so a crash in
        between leaves no summary of another pool (:meth:`pool_is_text` then reads the pool)."""
        self.pool_summary.unlink(missing_ok=True)
        atomic_write_bytes(self.pool, docs.to_bytes(protocol="protobuf", compress="zlib"))
        summary = {"items": len(docs), "text": is_text_pool(docs)}
        atomic_write_bytes(self.pool_summary, json.dumps(summary).encode())

    def pool_is_text(self) -> bool:
        """Whether every pool document is text (:func:`is_text_pool`), from ``pool.json``; a workdir without one
        (written by an older Labeler, or cut between the two writes) has its pool read instead."""
        try:
            return bool(json.loads(self.pool_summary.read_text())["text"])
        except (FileNotFoundError, KeyError, ValueError):
            return is_text_pool(self.load_pool())

    def load_pool(self) -> Any:
        """Read the pool."""
        from docarray import DocumentArray

        return DocumentArray.from_bytes(self.pool.read_bytes(), protocol="protobuf", compress="zlib")

    def latest_checkpoint(self) -> dict | None:
        """The newest checkpoint's record, or None before the first fit."""
        try:
            return json.loads(self.latest.read_text())
        except FileNotFoundError:
            return None

    def write_checkpoint(self, weights: dict[str, np.ndarray], metrics: dict) -> dict:
        """Save ``weights`` (name -> numpy array, a Tuner's ``get_weights()``) as the next version and point
        ``latest.json`` at it; returns the record. The ``.npz`` is written to a temporary file, synced and
        renamed, then ``latest.json`` likewise; the previous version's file goes only after both."""
        import time

        previous = self.latest_checkpoint()
        version = (previous["version"] if previous else 0) + 1
        path = self.checkpoints / f"model-{version}.npz"
        names = list(weights)
        arrays = {f"w{i}": np.asarray(weights[name]) for i, name in enumerate(names)}

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:  # a handle: np.savez would append .npz to a name
                np.savez(handle, names=np.asarray(names, dtype=str), **arrays)

        atomic_write(path, write)
        record = {"version": version, "path": path.name, "metrics": metrics, "time": time.time()}
        atomic_write_bytes(self.latest, json.dumps(record).encode())
        if previous and previous["version"] >= 1 and previous["path"] != path.name:
            (self.checkpoints / previous["path"]).unlink(missing_ok=True)
        return record

    def read_checkpoint(self, record: dict | None = None) -> dict[str, np.ndarray] | None:
        """The weights (name -> numpy array) of the newest (or the given) checkpoint, or None before a fit.

        Reads the ``.npz`` checkpoints of any framework (no pickles), and the torch ``state_dict`` files
        (``model-<v>.pt``) that older Labelers wrote.
        """
        record = record or self.latest_checkpoint()
        if record is None:
            return None
        path = self.checkpoints / record["path"]
        if path.suffix == ".pt":
            from tailor_ir.imports import import_torch

            state = import_torch().load(path, map_location="cpu", weights_only=True)
            return {k: v.detach().cpu().numpy() for k, v in state.items()}
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["names"]]
            return {name: data[f"w{i}"] for i, name in enumerate(names)}

    def load_checkpoint_into(self, model: Any, record: dict | None = None) -> dict | None:
        """Load the newest (or the given) checkpoint's weights into ``model`` (any framework, through its
        Tuner's ``set_weights``); returns the record, or None (model untouched) before the first fit."""
        from finetuner.labeler.training import set_weights

        record = record or self.latest_checkpoint()
        if record is None:
            return None
        set_weights(model, self.read_checkpoint(record))
        return record


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W), (H, W, 3) or (H, W, 4) array as PNG (zlib only, no imaging library)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(tag: bytes, payload: bytes) -> bytes:
        body = tag + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def tensor_as_image(tensor: Any) -> np.ndarray | None:
    """A displayable uint8 image from a tensor, or None when it does not look like one.

    (H, W), (H, W, C) and (C, H, W) with C in 1/3/4 are images; a flat vector whose length is a square
    (e.g. 64 for an 8x8 digit) is shown as a square grey image. Values are min-max scaled.
    """
    array = np.asarray(tensor, dtype=np.float32)
    if array.ndim == 1:
        side = int(round(np.sqrt(array.size)))
        if side < 4 or side * side != array.size:
            return None
        array = array.reshape(side, side)
    elif array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
        array = np.transpose(array, (1, 2, 0))
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or min(array.shape[:2]) < 2:
        return None
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return (np.nan_to_num(scaled) * 255).round().astype(np.uint8)


def _sniff_image_mime(data: bytes) -> str | None:
    signatures = {
        b"\x89PNG\r\n\x1a\n": "image/png",
        b"\xff\xd8\xff": "image/jpeg",
        b"GIF87a": "image/gif",
        b"GIF89a": "image/gif",
        b"BM": "image/bmp",
    }
    for magic, mime in signatures.items():
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _image_file_src(path: Path, mime: str) -> str:
    """A thumbnail of a local image file (the file itself when Pillow cannot read it and it is small)."""
    from finetuner.labeler.sources import thumbnail

    try:
        return thumbnail(path)
    except (ImportError, OSError, ValueError):
        if path.stat().st_size <= MAX_INLINE_BYTES:
            return _data_uri(mime, path.read_bytes())
        raise ValueError(f"cannot show {path}: Pillow cannot read it and it is over {MAX_INLINE_BYTES} bytes") from None


def render_card(doc: Any) -> dict:
    """What the UI shows for a Document: ``{"id", "kind": "image"|"text", "src" or "text"}``.

    Order of preference: ``.tensor`` (shown as an image when it looks like one), ``.blob`` (image bytes, or
    UTF-8 text), ``.uri`` (data/http URIs become image sources, local image files thumbnails), ``.text``.
    """
    card: dict = {"id": doc.id}
    if doc.tensor is not None:
        image = tensor_as_image(doc.tensor)
        if image is not None:
            return {**card, "kind": "image", "src": _data_uri("image/png", png_bytes(image))}
        if not doc.text:
            shape = "x".join(str(d) for d in np.shape(doc.tensor))
            values = np.asarray(doc.tensor).ravel()[:8]
            return {**card, "kind": "text", "text": f"tensor {shape}: " + ", ".join(f"{v:.3g}" for v in values)}
    if doc.blob:
        mime = doc.mime_type if (doc.mime_type or "").startswith("image/") else _sniff_image_mime(doc.blob)
        if mime and len(doc.blob) <= MAX_INLINE_BYTES:
            return {**card, "kind": "image", "src": _data_uri(mime, doc.blob)}
        if not doc.text:
            return {**card, "kind": "text", "text": doc.blob[:2000].decode("utf-8", errors="replace")}
    if doc.uri:
        uri = doc.uri
        if uri.startswith(("data:image/", "http://", "https://")):
            return {**card, "kind": "image", "src": uri}
        path = Path(uri[7:] if uri.startswith("file://") else uri)
        mime = mimetypes.guess_type(path.name)[0] or ""
        if mime.startswith("image/") and path.is_file():
            return {**card, "kind": "image", "src": _image_file_src(path, mime)}
        if not doc.text:
            return {**card, "kind": "text", "text": uri}
    return {**card, "kind": "text", "text": doc.text or f"(document {doc.id} has no content)"}
