"""Pair and triplet data, as sentence-transformers users have it: ``(anchor, positive[, negative])`` examples.

Accepted forms (each example is one session: the anchor is the query, the positive a +1 match, the negative a -1
match, so the session losses, the evaluator and the validation split apply unchanged):

- a list of tuples ``[(anchor, positive), ...]`` or ``[(anchor, positive, negative), ...]``;
- parallel columns ``{'anchor': [...], 'positive': [...], 'negative': [...]}`` (``negative`` optional), or a
  Hugging Face ``datasets.Dataset`` with those columns;
- Documents whose ``.matches`` are their positives, without ``finetuner_label`` tags (a tagged match is session
  data with explicit +1/-1 relevance).

A batch of pair data holds ``batch_size`` examples (not rows) and never the same text twice
(:class:`~finetuner.data.samplers.NoDuplicatesSampler`): a duplicate would be a false in-batch negative.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from finetuner.data.content import LABEL_TAG, content_kind, is_document
from finetuner.data.datasets import Dataset, PreprocessFn, Row, _matches, _tags
from finetuner.data.errors import DataError

COLUMNS = ("anchor", "positive", "negative")
_ROLE_NAMES = {0: "anchor", 1: "positive", -1: "negative"}

__all__ = ["COLUMNS", "PairDataset", "is_pair_data", "pair_examples"]


def _is_example(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) in (2, 3) and not any(is_document(x) for x in item)


def _columns_of(data: Any) -> Mapping[str, Any] | None:
    """``data`` as columns when it is a mapping or a Hugging Face dataset with anchor/positive columns."""
    if isinstance(data, Mapping):
        return data if "anchor" in data or "positive" in data else None
    names = getattr(data, "column_names", None)
    if isinstance(names, list) and "anchor" in names and "positive" in names:
        return {name: data[name] for name in COLUMNS if name in names}
    return None


def _unlabelled_matches(data: Any) -> bool:
    """Documents that all carry matches and no ``finetuner_label`` tag anywhere: the matches are positives."""
    if not (isinstance(data, Sequence) or type(data).__module__.startswith("docarray")) or isinstance(data, str):
        return False
    docs = list(data)
    if not docs or not all(is_document(d) for d in docs):
        return False
    return all(
        _matches(d) and LABEL_TAG not in _tags(d) and not any(LABEL_TAG in _tags(m) for m in _matches(d))
        for d in docs
    )


def is_pair_data(data: Any) -> bool:
    """Whether ``data`` is pair/triplet data in one of the forms this module accepts."""
    if isinstance(data, PairDataset):
        return True
    if _columns_of(data) is not None:
        return True
    if isinstance(data, list) and data and _is_example(data[0]):
        return True
    return _unlabelled_matches(data)


def pair_examples(data: Any) -> list[tuple[Any, ...]]:
    """The examples of ``data`` as tuples ``(anchor, positive[, negative])``; raises naming a bad example."""
    columns = _columns_of(data)
    if columns is not None:
        missing = [name for name in ("anchor", "positive") if name not in columns]
        unknown = sorted(set(columns) - set(COLUMNS))
        if missing or unknown:
            raise DataError(
                f"pair columns must be {COLUMNS[:2]} (and optionally 'negative'); missing {missing}, unknown "
                f"{unknown}"
            )
        lists = [list(columns[name]) for name in COLUMNS if name in columns]
        lengths = {name: len(col) for name, col in zip(COLUMNS, lists)}
        if len(set(lengths.values())) != 1:
            raise DataError(f"pair columns have different lengths {lengths}: give one value per example")
        return list(zip(*lists))
    if isinstance(data, list) and data and _is_example(data[0]):
        width = len(data[0])
        for i, example in enumerate(data):
            if not _is_example(example) or len(example) != width:
                raise DataError(
                    f"example {i} is {example!r:.80} but example 0 is a {width}-tuple: give every example as "
                    "(anchor, positive) or every one as (anchor, positive, negative)"
                )
        return [tuple(example) for example in data]
    if _unlabelled_matches(data):
        return [(d, *_matches(d)) for d in data]
    raise DataError("not pair data: pass (anchor, positive[, negative]) tuples, columns, or Documents with matches")


def content_key(item: Any) -> str:
    """What makes two items the same text/tensor/file, for the no-duplicates sampler."""
    if isinstance(item, str):
        return "t:" + item
    if is_document(item):
        kind = content_kind(item)
        if kind == "text":
            return "t:" + item.text
        if kind == "uri":
            return "u:" + item.uri
        if kind == "blob":
            return "b:" + hashlib.sha1(item.blob).hexdigest()
        if kind == "tensor":
            item = np.asarray(item.tensor)
        else:
            return "d:" + str(item.id)
    array = np.ascontiguousarray(np.asarray(item))
    return f"a:{array.dtype}{array.shape}:" + hashlib.sha1(array.tobytes()).hexdigest()


class PairDataset(Dataset):
    """Pair/triplet examples flattened as session data: example ``s`` gives rows ``(s, 0)`` (anchor), ``(s, 1)``
    (positive) and, for Documents with several matches or triplets, ``(s, 1)``/``(s, -1)`` rows.

    ``sessions[s]`` holds example ``s``'s item indices; ``keys[s]`` the content keys of its items, so that a
    sampler can keep duplicates out of a batch.
    """

    kind = "session"

    def __init__(
        self, examples: list[tuple[Any, ...]], triplets: bool, preprocess_fn: PreprocessFn | None = None
    ):
        if not examples:
            raise DataError("the pair data is empty: pass at least one (anchor, positive) example")
        items, labels, sessions, keys = [], [], [], []
        for s, example in enumerate(examples):
            start = len(items)
            roles = (0, 1, -1) if triplets else (0, *([1] * (len(example) - 1)))
            for role, item in zip(roles, example):
                if item is None or (isinstance(item, str) and not item):
                    raise DataError(f"example {s} has an empty {_ROLE_NAMES[role]}: give it content or drop it")
                items.append(item)
                labels.append((s, role))
            sessions.append(np.arange(start, len(items)))
            keys.append(tuple(content_key(item) for item in example))
        super().__init__(items, preprocess_fn)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1, 2)
        self.sessions = sessions
        self.keys = keys
        self.examples = examples
        self.triplets = triplets

    @classmethod
    def from_data(cls, data: Any, preprocess_fn: PreprocessFn | None = None) -> PairDataset:
        """Detect the form of ``data`` (see the module docstring) and build the dataset."""
        if isinstance(data, PairDataset):
            return data
        triplets = not _unlabelled_matches(data)
        examples = pair_examples(data)
        return cls(examples, triplets and len(examples[0]) == 3, preprocess_fn)

    def name(self, index: int) -> tuple[str, Any]:
        session, role = self.labels[index]
        item = self.items[index]
        what = _ROLE_NAMES[int(role)]
        return f"example {session} ({what})", (item.id if is_document(item) else what)

    def subset(self, sessions: np.ndarray) -> PairDataset:
        """A PairDataset of the examples at ``sessions`` (for validation splits)."""
        return PairDataset([self.examples[int(s)] for s in np.sort(sessions)], self.triplets, self.preprocess_fn)

    def rows(self, index: int, rng: np.random.Generator) -> list[Row]:
        return [(self.content(index), self.labels[index])]
