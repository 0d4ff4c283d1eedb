"""Batches for the Tuner: ``prepare`` turns training data into a dataset and a resumable :class:`BatchLoader`."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from finetuner.data.augment import AugmentFn
from finetuner.data.content import CollateFn, default_collate
from finetuner.data.datasets import (
    ClassDataset,
    Dataset,
    PreprocessFn,
    Row,
    SessionDataset,
    as_dataset,
)
from finetuner.data.errors import doc_error
from finetuner.data.pairs import PairDataset
from finetuner.data.samplers import (
    ClassSampler,
    InstanceSampler,
    ItemSampler,
    NoDuplicatesSampler,
    Sampler,
    SessionSampler,
)


@dataclass
class Batch:
    """One batch for a Tuner backend.

    ``contents``: the collated model input (an (N, ...) array, a dict of arrays, a list of strings);
    ``labels``: int64 class ids (N,) | session rows (N, 2) ``(session_id, type)`` | instance item ids (N,);
    ``kind``: ``'class'`` | ``'session'`` | ``'instance'``.
    """

    contents: Any
    labels: np.ndarray
    kind: str


class _LazyGenerator:
    """A ``numpy.random.Generator`` seeded by ``key``, built on first use (most items never augment)."""

    __slots__ = ("_generator", "_key")

    def __init__(self, key: tuple[int, ...]) -> None:
        self._key = key
        self._generator: np.random.Generator | None = None

    def __getattr__(self, name: str) -> Any:
        if self._generator is None:
            self._generator = np.random.default_rng(list(self._key))
        return getattr(self._generator, name)


class BatchLoader:
    """Iterates the :class:`Batch` es of the sampler's current epoch; ``len`` is batches per epoch.

    With ``num_workers > 0`` a thread pool loads and preprocesses the items of the next batches ahead; the
    order and the random augmentations (seeded by seed, epoch, batch and position) do not depend on it.
    ``state_dict``/``load_state_dict``/``set_epoch`` are the sampler's, so a resumed run continues exactly.
    """

    def __init__(
        self,
        dataset: Dataset,
        sampler: Sampler,
        collate_fn: CollateFn | None = None,
        num_workers: int = 0,
        prefetch_batches: int = 2,
    ):
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.dataset = dataset
        self.sampler = sampler
        self.collate_fn = collate_fn
        self.num_workers = int(num_workers)
        self.prefetch_batches = max(1, int(prefetch_batches))

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        """Go to the start of ``epoch``."""
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)

    def iter_from(self, start_batch: int) -> Iterator[Batch]:
        """The batches of the current epoch from ``start_batch`` on, without loading the ones before."""
        self.sampler.position = int(start_batch)
        return iter(self)

    def __iter__(self) -> Iterator[Batch]:
        sampler = self.sampler
        epoch, batches = sampler.epoch, sampler.plan()
        todo = range(sampler.position, len(batches))
        if self.num_workers == 0:
            for b in todo:
                rows = [self._rows(epoch, b, pos, int(i)) for pos, i in enumerate(batches[b])]
                sampler.position = b + 1
                yield self._collate(batches[b], rows)
        else:
            pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="finetuner-data")
            pending: deque[tuple[int, list[Future]]] = deque()
            try:
                for b in todo:
                    pending.append((b, self._submit(pool, epoch, b, batches[b])))
                    if len(pending) > self.prefetch_batches:
                        yield self._finish(pending.popleft(), batches)
                while pending:
                    yield self._finish(pending.popleft(), batches)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        sampler.set_epoch(epoch + 1)

    # ---- internals -------------------------------------------------------------------------------------------
    def _rows(self, epoch: int, batch: int, pos: int, index: int) -> list[Row]:
        return self.dataset.rows(index, _LazyGenerator((self.sampler.seed, epoch, batch, pos)))

    def _submit(self, pool: ThreadPoolExecutor, epoch: int, b: int, indices: np.ndarray) -> list[Future]:
        return [pool.submit(self._rows, epoch, b, pos, int(i)) for pos, i in enumerate(indices)]

    def _finish(self, job: tuple[int, list[Future]], batches: list[np.ndarray]) -> Batch:
        b, futures = job
        rows = [future.result() for future in futures]
        self.sampler.position = b + 1
        return self._collate(batches[b], rows)

    def _collate(self, indices: np.ndarray, rows: list[list[Row]]) -> Batch:
        owners = [int(i) for i, item_rows in zip(indices, rows) for _ in item_rows]
        contents = [content for item_rows in rows for content, _ in item_rows]
        labels = np.asarray([label for item_rows in rows for _, label in item_rows], dtype=np.int64)
        if self.collate_fn is None:
            self._check_shapes(owners, contents)
            collated = default_collate(contents)
        else:
            collated = self.collate_fn(contents)
        return Batch(collated, labels, self.dataset.kind)

    def _check_shapes(self, owners: list[int], contents: list[Any]) -> None:
        """Loaded arrays of different shapes cannot be stacked: name the first item that differs."""
        if not isinstance(contents[0], np.ndarray):
            return
        shape = contents[0].shape
        for owner, content in zip(owners, contents):
            if not isinstance(content, np.ndarray) or content.shape != shape:
                got = getattr(content, "shape", type(content).__name__)
                raise doc_error(
                    *self.dataset.name(owner),
                    f"its content has shape {got} but item {owners[0]}'s has {shape}",
                    "pass a preprocess_fn that gives every item one shape (e.g. resizes images), or a collate_fn",
                )


def in_order(dataset: Any, batch_size: int, collate_fn: CollateFn | None = None) -> BatchLoader:
    """A loader that gives every item of ``dataset`` once, in order (embedding and evaluation)."""
    return BatchLoader(dataset, ItemSampler(len(dataset), batch_size, shuffle=False), collate_fn)


def default_m(batch_size: int, num_classes: int) -> int:
    """Items per class: the smallest divisor of ``batch_size`` from 4 up that needs at most ``num_classes``."""
    for m in range(min(4, batch_size), batch_size + 1):
        if batch_size % m == 0 and batch_size // m <= num_classes:
            return m
    return batch_size


def prepare(
    train_data: Any,
    *,
    batch_size: int,
    m: int | None = None,
    preprocess_fn: PreprocessFn | None = None,
    collate_fn: CollateFn | None = None,
    num_workers: int = 0,
    seed: int = 0,
    augment_fn: AugmentFn | None = None,
    shuffle: bool = True,
    label_map: Mapping[Hashable, int] | None = None,
) -> tuple[Dataset, BatchLoader]:
    """Detect and validate ``train_data`` and build its ``(dataset, loader)``.

    Class data get a :class:`ClassSampler` with ``m`` items per class per batch (default: :func:`default_m`),
    session data a :class:`SessionSampler`, pair data a :class:`NoDuplicatesSampler` (``batch_size`` examples,
    no content twice in a batch), instance data an :class:`InstanceSampler` (``batch_size`` rows =
    ``batch_size // 2`` items x 2 views). ``shuffle=False`` (evaluation) gives every item once, in order.
    ``preprocess_fn(doc) -> content`` runs lazily per item; ``collate_fn(contents) -> model input`` per batch
    (default :func:`~finetuner.data.content.default_collate`; for text see ``tokenizer_collate``).
    """
    dataset = as_dataset(train_data, preprocess_fn=preprocess_fn, augment_fn=augment_fn, label_map=label_map)
    if m is not None and not isinstance(dataset, ClassDataset):
        raise ValueError(
            f"m (items per class) applies to class data, but this is {dataset.kind} data: drop it"
        )
    sampler: Sampler
    if isinstance(dataset, ClassDataset):
        if shuffle:
            m = default_m(batch_size, dataset.num_classes) if m is None else m
            sampler = ClassSampler(dataset.labels, batch_size, m, seed=seed)
        else:
            sampler = ItemSampler(len(dataset), batch_size, seed=seed, shuffle=False)
    elif isinstance(dataset, PairDataset):
        sampler = NoDuplicatesSampler(dataset.sessions, dataset.keys, batch_size, seed=seed, shuffle=shuffle)
    elif isinstance(dataset, SessionDataset):
        sampler = SessionSampler(dataset.sessions, batch_size, seed=seed, shuffle=shuffle)
    else:
        sampler = InstanceSampler(len(dataset), batch_size, seed=seed, shuffle=shuffle)
    return dataset, BatchLoader(dataset, sampler, collate_fn, num_workers)


def build_loader(
    data: Any, batch_size: int, shuffle: bool = True, seed: int = 0, **options: Any
) -> BatchLoader:
    """The loader the Tuner asks for: :func:`prepare`'s loader; ``num_items_per_class`` is an alias of ``m``."""
    if "num_items_per_class" in options:
        if options.get("m") is not None:
            raise TypeError("pass either m or num_items_per_class, not both")
        options["m"] = options.pop("num_items_per_class")
    known = {"m", "preprocess_fn", "collate_fn", "num_workers", "augment_fn", "label_map"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"unknown data options {unknown}: the data options are {sorted(known)} and num_items_per_class"
        )
    return prepare(data, batch_size=batch_size, shuffle=shuffle, seed=seed, **options)[1]
