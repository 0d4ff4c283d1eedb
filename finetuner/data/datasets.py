"""Training data as one of three datasets, detected from its shape and validated eagerly (content stays lazy).

- class data: every document has ``tags['finetuner_label']`` (any hashable label), or ``(X, y)`` arrays;
- session data: query documents whose ``.matches`` carry ``tags['finetuner_label']`` = +1 / -1;
- instance data: no labels (self-supervised: two augmented views per item), or a plain ``X`` array.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from finetuner.data.augment import AugmentFn, with_rng
from finetuner.data.content import LABEL_TAG, content_kind, is_document, load_content
from finetuner.data.errors import DataError, doc_error

PreprocessFn = Callable[[Any], Any]
Row = tuple[Any, Any]
KINDS = ("class", "session", "instance")


def _matches(doc: Any) -> Sequence[Any]:
    """A document's matches without creating an empty match array on it."""
    data = getattr(doc, "_data", None)
    return (data.matches if data is not None else doc.matches) or []


def _tags(doc: Any) -> Mapping[str, Any]:
    return doc.tags or {}


class Dataset(ABC):
    """Items with lazily loaded content; ``rows(i, rng)`` gives the ``(content, label)`` rows of item ``i``.

    ``labels`` holds one label per item (int64). ``preprocess_fn(item) -> content`` replaces the default
    :func:`~finetuner.data.content.load_content`; it gets the Document (or the raw row for array input).
    """

    kind: ClassVar[str]

    def __init__(self, items: Sequence[Any], preprocess_fn: PreprocessFn | None = None):
        self.items = items
        self.preprocess_fn = preprocess_fn
        self.labels: np.ndarray = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.items)

    def name(self, index: int) -> tuple[str, Any]:
        """``(position, id)`` of item ``index`` for error messages."""
        item = self.items[index]
        return str(index), (item.id if is_document(item) else f"row {index}")

    def content(self, index: int) -> Any:
        """Item ``index``'s content, loaded and preprocessed now."""
        try:
            return (self.preprocess_fn or load_content)(self.items[index])
        except Exception as exc:
            position, doc_id = self.name(index)
            raise doc_error(
                position,
                doc_id,
                f"loading its content failed ({type(exc).__name__}: {exc})",
                "fix the document or the preprocess_fn",
            ) from exc

    @abstractmethod
    def rows(self, index: int, rng: np.random.Generator) -> list[Row]:
        """The ``(content, label)`` rows item ``index`` contributes to a batch."""


class ClassDataset(Dataset):
    """Class data: ``labels`` are int64 class ids; ``label_names[id]`` is the user's label.

    Non-negative integer labels are their own ids (so ids agree across datasets); other labels are numbered in
    sorted order, or by ``label_map`` (label -> id) when given.
    """

    kind = "class"

    def __init__(
        self,
        items: Sequence[Any],
        raw_labels: Sequence[Hashable],
        preprocess_fn: PreprocessFn | None = None,
        augment_fn: AugmentFn | None = None,
        label_map: Mapping[Hashable, int] | None = None,
    ):
        super().__init__(items, preprocess_fn)
        self.augment_fn = None if augment_fn is None else with_rng(augment_fn)
        self.label_map = dict(label_map) if label_map is not None else _label_map(raw_labels)
        ids = np.empty(len(raw_labels), dtype=np.int64)
        for i, label in enumerate(raw_labels):
            key = _normalise_label(label)
            if key not in self.label_map:
                raise doc_error(
                    *self.name(i), f"its label {label!r} is not in label_map", "add it to label_map"
                )
            ids[i] = self.label_map[key]
        self.labels = ids
        self.label_names = {v: k for k, v in self.label_map.items()}

    @property
    def num_classes(self) -> int:
        return len(np.unique(self.labels))

    def rows(self, index: int, rng: np.random.Generator) -> list[Row]:
        content = self.content(index)
        if self.augment_fn is not None:
            content = self.augment_fn(content, rng)
        return [(content, self.labels[index])]


class SessionDataset(Dataset):
    """Session data flattened: each query is followed by its matches; ``labels`` rows are
    ``(session_id, type)`` with type 0 = query, 1 = positive, -1 = negative. ``sessions[s]`` holds the item
    indices of session ``s`` (the query's position in the input)."""

    kind = "session"

    def __init__(self, queries: Sequence[Any], preprocess_fn: PreprocessFn | None = None):
        items, labels, names, sessions = [], [], [], []
        for q, query in enumerate(queries):
            start = len(items)
            items.append(query)
            labels.append((q, 0))
            names.append((str(q), query.id))
            for j, match in enumerate(_matches(query)):
                items.append(match)
                labels.append((q, _relevance(match, q, j, query.id)))
                names.append((f"{q} match {j}", match.id))
            sessions.append(np.arange(start, len(items)))
        super().__init__(items, preprocess_fn)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1, 2)
        self.sessions = sessions
        self._names = names

    def name(self, index: int) -> tuple[str, Any]:
        return self._names[index]

    def rows(self, index: int, rng: np.random.Generator) -> list[Row]:
        return [(self.content(index), self.labels[index])]


class InstanceDataset(Dataset):
    """Unlabelled data: each item gives two augmented views sharing the item's id as label."""

    kind = "instance"

    def __init__(
        self,
        items: Sequence[Any],
        preprocess_fn: PreprocessFn | None = None,
        augment_fn: AugmentFn | None = None,
    ):
        super().__init__(items, preprocess_fn)
        self.augment_fn = with_rng(augment_fn)
        self.labels = np.arange(len(items), dtype=np.int64)

    def rows(self, index: int, rng: np.random.Generator) -> list[Row]:
        content = self.content(index)
        return [(self.augment_fn(content, rng), self.labels[index]) for _ in range(2)]


# ---- labels --------------------------------------------------------------------------------------------------
def _normalise_label(label: Any) -> Hashable:
    """Integral floats (tags that went through JSON/protobuf) count as ints; numpy scalars as Python values."""
    if isinstance(label, np.generic):
        label = label.item()
    if isinstance(label, float) and label.is_integer():
        return int(label)
    return label


def _label_map(labels: Sequence[Hashable]) -> dict[Hashable, int]:
    keys = list(dict.fromkeys(_normalise_label(label) for label in labels))
    if all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in keys):
        return {k: k for k in keys}
    return {k: i for i, k in enumerate(sorted(keys, key=lambda k: (type(k).__name__, str(k))))}


def _check_label(label: Any, index: int, doc_id: Any) -> None:
    if label is None or not isinstance(label, Hashable) or (isinstance(label, float) and np.isnan(label)):
        raise doc_error(
            index,
            doc_id,
            f"tags[{LABEL_TAG!r}] is {label!r}",
            "use a hashable class label (an int or a string)",
        )


def _relevance(match: Any, q: int, j: int, query_id: Any) -> int:
    label = _tags(match).get(LABEL_TAG)
    value = _normalise_label(label) if isinstance(label, (int, float, np.number)) else None
    if isinstance(label, bool) or value not in (1, -1):
        raise doc_error(
            f"{q} match {j}",
            match.id,
            f"this match of query {query_id!r} has tags[{LABEL_TAG!r}] = {label!r}",
            "give every match +1 (relevant) or -1 (not relevant)",
        )
    return int(value)


# ---- detection and validation ------------------------------------------------------------------------------
def detect_kind(docs: Sequence[Any]) -> str:
    """``'class'``, ``'session'`` or ``'instance'`` for a sequence of Documents; raises on a mix."""
    labelled = [i for i, d in enumerate(docs) if LABEL_TAG in _tags(d)]
    sessions = [i for i, d in enumerate(docs) if any(LABEL_TAG in _tags(m) for m in _matches(d))]
    if labelled and sessions:
        i = sessions[0]
        raise doc_error(
            i,
            docs[i].id,
            f"it has labelled matches while document {labelled[0]} has tags[{LABEL_TAG!r}]",
            "use either class labels on every document or labelled matches on every query, not both",
        )
    if labelled:
        if len(labelled) < len(docs):
            i = next(i for i, d in enumerate(docs) if LABEL_TAG not in _tags(d))
            raise doc_error(
                i,
                docs[i].id,
                f"it has no tags[{LABEL_TAG!r}] but other documents have one (class data)",
                "give every document a class label, or remove the unlabelled ones",
            )
        return "class"
    if sessions:
        i = next((i for i, d in enumerate(docs) if not _matches(d)), None)
        if i is not None:
            raise doc_error(
                i,
                docs[i].id,
                "it is a query without matches in session data",
                f"add matches with tags[{LABEL_TAG!r}] = +1 / -1, or remove it",
            )
        return "session"
    return "instance"


def _describe_array(x: np.ndarray) -> str:
    return f"shape {x.shape} and dtype {x.dtype}"


def validate_contents(dataset: Dataset) -> None:
    """Cheap eager checks of the raw content (without a ``preprocess_fn``): every item has content, all of one
    kind; tensors share shape and dtype, are numeric and finite. Files (uri/blob) are only loaded later."""
    if dataset.preprocess_fn is not None:
        return
    first_kind, first_array = None, None
    for i, item in enumerate(dataset.items):
        if is_document(item):
            kind = content_kind(item)
            if kind is None:
                raise doc_error(
                    *dataset.name(i),
                    "it has no content (no tensor, blob, uri or text)",
                    "set .tensor, .uri or .text, or pass preprocess_fn",
                )
            value = np.asarray(item.tensor) if kind == "tensor" else None
        else:
            kind = "text" if isinstance(item, str) else "tensor"
            value = np.asarray(item) if kind == "tensor" else None
        family = "file" if kind in ("uri", "blob") else kind
        if first_kind is None:
            first_kind = family
        elif family != first_kind:
            raise doc_error(
                *dataset.name(i),
                f"its content is {kind} while document 0 has {first_kind} content",
                "give every document the same kind of content (or pass preprocess_fn to convert)",
            )
        if value is None:
            continue
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
            raise doc_error(*dataset.name(i), f"its tensor has dtype {value.dtype}", "use a numeric tensor")
        if first_array is None:
            first_array = value
        elif value.shape != first_array.shape or value.dtype != first_array.dtype:
            raise doc_error(
                *dataset.name(i),
                f"its tensor has {_describe_array(value)} but document 0 has {_describe_array(first_array)}",
                "give all tensors one shape and dtype (resize/cast them, or pass preprocess_fn)",
            )
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            raise doc_error(*dataset.name(i), "its tensor contains NaN or inf", "clean or drop it")


def _validate_array(x: np.ndarray) -> None:
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"the data array has shape {x.shape}: pass an array of shape (N, ...) with N >= 1")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"the data array has dtype {x.dtype}: pass a numeric array (or a list of strings)")
    if np.issubdtype(x.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
        if len(bad):
            raise doc_error(int(bad[0]), f"row {bad[0]}", "it contains NaN or inf", "clean or drop that row")


def as_dataset(
    data: Any,
    *,
    preprocess_fn: PreprocessFn | None = None,
    augment_fn: AugmentFn | None = None,
    label_map: Mapping[Hashable, int] | None = None,
) -> Dataset:
    """Detect the shape of ``data`` and return the validated :class:`Dataset`.

    ``data``: a DocumentArray or list of Documents (class / session / instance data, detected), ``(X, y)``
    arrays (class data), an array ``X`` / a list of strings (instance data), or pair/triplet data (see
    :mod:`finetuner.data.pairs`: tuples, columns, Documents with unlabelled matches). A :class:`Dataset` passes
    through. ``augment_fn(content[, rng])`` makes the views of instance data (default: numpy augmentations).
    """
    from finetuner.data.pairs import PairDataset, is_pair_data

    if isinstance(data, PairDataset) and preprocess_fn is not None and data.preprocess_fn is None:
        return PairDataset(data.examples, data.triplets, preprocess_fn)
    if isinstance(data, Dataset):
        return data
    if is_pair_data(data):
        if augment_fn is not None:
            raise DataError("augment_fn is for class or instance data; pair data is used as given")
        dataset = PairDataset.from_data(data, preprocess_fn)
        validate_contents(dataset)
        return dataset
    if isinstance(data, tuple) and len(data) == 2 and not is_document(data[0]):
        x, y = data
        x = x if isinstance(x, list) and x and isinstance(x[0], str) else np.asarray(x)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(
                f"(X, y): y has shape {y.shape} but X has {len(x)} rows: pass one label per row of X"
            )
        if isinstance(x, np.ndarray):
            _validate_array(x)
        for i, label in enumerate(y.tolist()):
            _check_label(label, i, f"row {i}")
        dataset: Dataset = ClassDataset(
            list(x) if isinstance(x, list) else x, y.tolist(), preprocess_fn, augment_fn, label_map
        )
        validate_contents(dataset)
        return dataset
    if isinstance(data, np.ndarray):
        _validate_array(data)
        return InstanceDataset(data, preprocess_fn, augment_fn)
    if not isinstance(data, Sequence) and not type(data).__module__.startswith("docarray"):
        raise DataError(
            f"cannot use {type(data).__name__} as training data: pass a DocumentArray, a list of Documents, "
            "(X, y) arrays or an array X"
        )
    items = list(data)
    if not items:
        raise DataError("the training data is empty: pass at least one document")
    if all(isinstance(item, str) for item in items):
        dataset = InstanceDataset(items, preprocess_fn, augment_fn)
    else:
        bad = next((i for i, item in enumerate(items) if not is_document(item)), None)
        if bad is not None:
            raise DataError(
                f"item {bad} is a {type(items[bad]).__name__}, not a Document: pass Documents, (X, y) or an array"
            )
        kind = detect_kind(items)
        if kind == "class":
            labels = [_tags(d)[LABEL_TAG] for d in items]
            for i, label in enumerate(labels):
                _check_label(label, i, items[i].id)
            dataset = ClassDataset(items, labels, preprocess_fn, augment_fn, label_map)
        elif kind == "session":
            if augment_fn is not None:
                raise DataError("augment_fn is for class or instance data; session data is used as labelled")
            dataset = SessionDataset(items, preprocess_fn)
        else:
            dataset = InstanceDataset(items, preprocess_fn, augment_fn)
    validate_contents(dataset)
    return dataset
