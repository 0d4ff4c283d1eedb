"""Train/validation splits: by class (held-out classes, the usual metric-learning evaluation) or by item."""

from __future__ import annotations

from typing import Any

import numpy as np

from finetuner.data.content import LABEL_TAG, is_document
from finetuner.data.datasets import _normalise_label, detect_kind
from finetuner.data.errors import DataError
from finetuner.data.pairs import PairDataset, is_pair_data


def _is_xy(data: Any) -> bool:
    return isinstance(data, tuple) and len(data) == 2 and not is_document(data[0])


def _take(data: Any, rows: np.ndarray) -> Any:
    """The rows of ``data`` at ``rows``, as the same type as ``data``."""
    rows = np.sort(rows)
    if _is_xy(data):
        x, y = data
        pick = (lambda a: [a[i] for i in rows]) if isinstance(x, list) else (lambda a: np.asarray(a)[rows])
        return pick(x), np.asarray(y)[rows]
    if isinstance(data, np.ndarray):
        return data[rows]
    items = [data[int(i)] for i in rows]
    if type(data).__module__.startswith("docarray"):
        from docarray import DocumentArray

        return DocumentArray(items)
    return items


def class_labels(data: Any) -> np.ndarray:
    if _is_xy(data):
        return np.asarray([_normalise_label(v) for v in np.asarray(data[1]).tolist()], dtype=object)
    docs = list(data)
    if not docs or not all(is_document(d) for d in docs) or detect_kind(docs) != "class":
        raise DataError(f"split by class needs class data (docs with tags[{LABEL_TAG!r}] or (X, y))")
    return np.asarray([_normalise_label(d.tags[LABEL_TAG]) for d in docs], dtype=object)


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1, got {fraction}")


def split_by_class(data: Any, val_fraction_of_classes: float = 0.3, seed: int = 0) -> tuple[Any, Any]:
    """``(train, val)`` of class data where ``val`` holds a random ``val_fraction_of_classes`` of the classes
    (at least one, and at least one stays for training); both are of ``data``'s type."""
    _check_fraction(val_fraction_of_classes)
    labels = class_labels(data)
    classes = sorted(set(labels.tolist()), key=lambda k: (type(k).__name__, str(k)))
    if len(classes) < 2:
        raise DataError(f"split by class needs at least 2 classes, the data has {len(classes)}")
    n_val = min(len(classes) - 1, max(1, round(val_fraction_of_classes * len(classes))))
    order = np.random.default_rng(seed).permutation(len(classes))
    val_classes = {classes[i] for i in order[:n_val]}
    in_val = np.array([label in val_classes for label in labels.tolist()])
    return _take(data, np.flatnonzero(~in_val)), _take(data, np.flatnonzero(in_val))


def split_items(
    data: Any, val_fraction: float = 0.2, seed: int = 0, stratify: bool = True
) -> tuple[Any, Any]:
    """``(train, val)`` with a random ``val_fraction`` of the items (of the queries, for session data; of the
    examples, as two :class:`~finetuner.data.pairs.PairDataset` s, for pair data).

    With ``stratify`` class data is split class by class, so both sides keep every class's proportion.
    """
    _check_fraction(val_fraction)
    rng = np.random.default_rng(seed)
    if is_pair_data(data):
        pairs = PairDataset.from_data(data)
        n = len(pairs.sessions)
        if n < 2:
            raise DataError(f"cannot split {n} example(s): pass at least 2")
        val_rows = rng.permutation(n)[: max(1, min(n - 1, round(val_fraction * n)))]
        return pairs.subset(np.setdiff1d(np.arange(n), val_rows)), pairs.subset(val_rows)
    n = len(data[0]) if _is_xy(data) else len(data)
    if n < 2:
        raise DataError(f"cannot split {n} item(s): pass at least 2")
    is_class = _is_xy(data) or (
        not isinstance(data, np.ndarray)
        and all(is_document(d) for d in data)
        and detect_kind(list(data)) == "class"
    )
    if stratify and is_class:
        labels = class_labels(data)
        val = []
        for label in dict.fromkeys(labels.tolist()):
            members = rng.permutation(np.flatnonzero(labels == label))
            val.extend(members[: round(val_fraction * len(members))].tolist())
        val_rows = np.asarray(val, dtype=np.int64)
    else:
        val_rows = rng.permutation(n)[: max(1, min(n - 1, round(val_fraction * n)))]
    in_val = np.zeros(n, dtype=bool)
    in_val[val_rows] = True
    return _take(data, np.flatnonzero(~in_val)), _take(data, np.flatnonzero(in_val))
