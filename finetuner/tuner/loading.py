"""Turning training or evaluation data into a batch loader: shared by the loop and the evaluation callback,
so neither imports the other for it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["BatchLoader", "make_loader"]


@runtime_checkable
class BatchLoader(Protocol):
    """What the loop needs from a train/eval loader (``finetuner.data`` provides them).

    Iterating yields ``Batch(contents, labels, kind)`` objects; ``len`` is the number of batches per epoch.
    For exact resumption the order of an epoch must depend only on the loader's seed and ``set_epoch(epoch)``,
    never on global random state.
    """

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


def _is_loader(data: Any) -> bool:
    """A ready loader: iterable with a length, but not raw data (arrays, sequences, mappings, DocumentArrays)."""
    raw = isinstance(data, (np.ndarray, Sequence, Mapping)) or type(data).__module__.startswith("docarray")
    return isinstance(data, BatchLoader) and not raw


def make_loader(data: Any, batch_size: int, shuffle: bool, seed: int, **options: Any) -> Any:
    """A loader from ``data``: a ready loader passes through; anything else goes to ``finetuner.data``."""
    if _is_loader(data):
        return data
    from finetuner import data as fdata

    return fdata.build_loader(data, batch_size=batch_size, shuffle=shuffle, seed=seed, **options)
