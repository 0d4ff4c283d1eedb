"""What a document contributes to a batch: its content (loaded lazily) and the default ways to collate it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from finetuner.data.errors import DataError

LABEL_TAG = "finetuner_label"
"""The tag holding a document's class label, or a match's relevance (+1 / -1) in session data."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")

CollateFn = Callable[[list[Any]], Any]

MIN_CHUNK_ROWS = 32
MIN_CHUNK_SAVING = 0.25


class Chunks(list):
    """A batch collated as several chunks (each padded to its own longest text) that a backend runs one after
    another and concatenates (:mod:`finetuner.tuner.chunked`, shared by the three backends); ``order[i]`` is the batch row of the i-th concatenated row. Pair batches mix long
    anchors with short positives: padding all rows to the longest wastes most of the forward pass."""

    def __init__(self, chunks: list[Any], order: np.ndarray):
        super().__init__(chunks)
        self.order = np.asarray(order, dtype=np.int64)

    def restore(self) -> np.ndarray:
        """Indices that put the concatenated chunk rows back in batch order."""
        return np.argsort(self.order, kind="stable")

    def merged(self) -> dict[str, np.ndarray]:
        """The one padded batch an unchunked collation gives: every chunk zero-padded to the widest, rows in
        batch order (for a path that cannot run chunks, e.g. splitting a batch over ``tf.distribute`` replicas)."""
        width = max(chunk["input_ids"].shape[1] for chunk in self)
        pad = lambda value: np.pad(value, ((0, 0), (0, width - value.shape[1])))  # noqa: E731
        rows = {name: np.concatenate([pad(chunk[name]) for chunk in self]) for name in self[0]}
        restore = self.restore()
        return {name: value[restore] for name, value in rows.items()}


def is_document(item: Any) -> bool:
    """Whether ``item`` is a docarray v1 ``Document``."""
    return type(item).__name__ == "Document" and type(item).__module__.startswith("docarray")


def content_kind(doc: Any) -> str | None:
    """Which content ``doc`` has, by priority: ``'tensor'``, ``'blob'``, ``'uri'``, ``'text'`` or None."""
    if doc.tensor is not None:
        return "tensor"
    if doc.blob:
        return "blob"
    if doc.uri:
        return "uri"
    if doc.text:
        return "text"
    return None


def image_to_float(image: np.ndarray) -> np.ndarray:
    """An (H, W, C) uint8 image as a float32 (C, H, W) array in [0, 1] (the layout of exported image models)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0


def _is_image_uri(uri: str) -> bool:
    return uri.startswith("data:image") or uri.lower().split("?")[0].endswith(IMAGE_EXTENSIONS)


def load_content(item: Any) -> Any:
    """The default ``preprocess_fn``: a document's content, loaded now.

    ``.tensor`` as a numpy array; else ``.blob`` decoded as an image; else ``.uri`` loaded as an image
    (``load_uri_to_image_tensor``; float32 CHW in [0, 1]) or, for other files, as text; else ``.text``.
    Raw items (array rows, strings) pass through. The user's document is not modified.
    """
    if not is_document(item):
        return item
    from docarray import Document

    kind = content_kind(item)
    if kind == "tensor":
        return np.asarray(item.tensor)
    if kind == "blob":
        return image_to_float(Document(blob=item.blob).convert_blob_to_image_tensor().tensor)
    if kind == "uri":
        if _is_image_uri(item.uri):
            return image_to_float(Document(uri=item.uri).load_uri_to_image_tensor().tensor)
        return Document(uri=item.uri).load_uri_to_text().text
    if kind == "text":
        return item.text
    raise DataError("the document has no tensor, blob, uri or text: give it content or pass preprocess_fn")


def _stack(arrays: Sequence[Any]) -> np.ndarray:
    stacked = np.stack([np.asarray(a) for a in arrays])
    if np.issubdtype(stacked.dtype, np.signedinteger):
        return stacked.astype(np.int64, copy=False)
    return stacked.astype(np.float32, copy=False)


def default_collate(contents: list[Any]) -> Any:
    """Stack arrays into one float32 array (signed integer arrays, e.g. token ids, into int64); keep strings as a
    list (tokenise them with :func:`tokenizer_collate`); stack dicts of arrays key by key."""
    if not contents:
        raise ValueError("nothing to collate: the batch is empty")
    first = contents[0]
    if isinstance(first, str):
        return list(contents)
    if isinstance(first, Mapping):
        return {key: _stack([c[key] for c in contents]) for key in first}
    return _stack(contents)


def _pad(encoded: list[dict[str, list[int]]], rows: np.ndarray, wanted: Sequence[str]) -> dict[str, np.ndarray]:
    width = max(len(encoded[r]["input_ids"]) for r in rows)
    out = {name: np.zeros((len(rows), width), dtype=np.int64) for name in wanted}
    for i, r in enumerate(rows):
        n = len(encoded[r]["input_ids"])
        for name in wanted:
            out[name][i, :n] = encoded[r][name]
    return out


def _length_chunks(lengths: np.ndarray) -> list[np.ndarray]:
    """Rows sorted by length and cut in two at the split that saves the most padding, if it saves enough."""
    order = np.argsort(lengths, kind="stable")
    n, full = len(order), int(lengths.max()) * len(order)
    best, cut = full, None
    for k in range(MIN_CHUNK_ROWS, n - MIN_CHUNK_ROWS + 1):
        cost = int(lengths[order[k - 1]]) * k + int(lengths[order[-1]]) * (n - k)
        if cost < best:
            best, cut = cost, k
    if cut is None or best > (1 - MIN_CHUNK_SAVING) * full:
        return [np.arange(n)]
    return [order[:cut], order[cut:]]


def tokenizer_collate(
    tokenizer: Any, max_length: int = 128, input_names: Sequence[str] | None = None, chunked: bool = False
) -> CollateFn:
    """A ``collate_fn`` that tokenises a batch of strings into int64 ``input_ids``, ``attention_mask`` (and
    ``token_type_ids`` when the tokenizer gives them), padded to the longest text, truncated to ``max_length``.

    ``tokenizer``: a Hugging Face ``transformers`` tokenizer, or a ``tokenizers.Tokenizer``. ``input_names``:
    keep only these of the three (the model's inputs, e.g. a model exported without ``token_type_ids``).
    ``chunked``: when sorting the rows by length and cutting them in two (at least 32 rows each) saves 25% of
    the padded tokens, return :class:`Chunks` of two padded dicts instead (for backends that run chunks).
    The returned function's ``tokenizer`` attribute is ``tokenizer``: the Labeler writes it beside the models it
    saves, so a text model travels with the tokenizer it was trained with.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    wanted = tuple(
        name for name in ("input_ids", "attention_mask", "token_type_ids")
        if input_names is None or name in input_names
    )
    if "input_ids" not in wanted:
        raise ValueError(f"the model's inputs {list(input_names or [])} take no input_ids: it is not a text model")
    original = tokenizer
    if hasattr(tokenizer, "encode_batch"):  # a `tokenizers.Tokenizer`: truncate a copy (keeps [SEP])
        tokenizer = type(tokenizer).from_str(tokenizer.to_str())
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)

    def encode(texts: list[str]) -> list[dict[str, list[int]]]:
        if hasattr(tokenizer, "encode_batch"):
            return [
                {"input_ids": e.ids, "attention_mask": e.attention_mask, "token_type_ids": e.type_ids}
                for e in tokenizer.encode_batch(texts)
            ]
        encoded = tokenizer(texts, padding=False, truncation=True, max_length=max_length)
        names = [name for name in wanted if name in encoded]
        return [{name: encoded[name][i] for name in names} for i in range(len(texts))]

    def collate(texts: list[Any]) -> dict[str, np.ndarray] | Chunks:
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise DataError(
                f"item {bad[0]} of the batch is a {type(texts[bad[0]]).__name__}, not text: tokenizer_collate "
                "needs strings (docs with .text, or a preprocess_fn returning str)"
            )
        encoded = encode(list(texts))
        names = [name for name in wanted if name in encoded[0]]
        lengths = np.array([len(e["input_ids"]) for e in encoded])
        parts = _length_chunks(lengths) if chunked else [np.arange(len(texts))]
        if len(parts) == 1:
            return _pad(encoded, parts[0], names)
        return Chunks([_pad(encoded, rows, names) for rows in parts], np.concatenate(parts))

    collate.tokenizer = original  # type: ignore[attr-defined]  # what a save/export of the model writes beside it
    return collate
