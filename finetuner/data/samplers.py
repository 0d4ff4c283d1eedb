"""Batch samplers: which items form each batch of an epoch, reproducible from ``(seed, epoch)`` alone.

A sampler's ``state_dict()`` is ``{seed, epoch, position}`` plus a fingerprint of its configuration; after
``load_state_dict`` the same epoch order is regenerated and the ``position`` batches already done are skipped.
Iterating an epoch to its end moves the sampler to the next epoch (``set_epoch`` also does).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from finetuner.data.errors import DataError


class Sampler(ABC):
    """Base: subclasses define ``__len__`` (batches per epoch) and ``_plan(rng)`` (the batches of an epoch)."""

    def __init__(self, batch_size: int, seed: int = 0, shuffle: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self.position = 0
        self._cached: tuple[int, list[np.ndarray]] | None = None

    @abstractmethod
    def __len__(self) -> int:
        """Batches per epoch (the same for every epoch)."""

    @abstractmethod
    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        """The item indices of each batch of one epoch, drawn with ``rng`` only."""

    def _fingerprint(self) -> dict[str, Any]:
        return {"sampler": type(self).__name__, "batch_size": self.batch_size, "shuffle": self.shuffle}

    def plan(self, epoch: int | None = None) -> list[np.ndarray]:
        """The batches of ``epoch`` (default: the current one); the same for the same seed and epoch."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, self._plan(np.random.default_rng([self.seed, epoch])))
        return self._cached[1]

    def set_epoch(self, epoch: int) -> None:
        """Go to the start of ``epoch``."""
        self.epoch, self.position = int(epoch), 0

    def __iter__(self) -> Iterator[np.ndarray]:
        """The remaining batches of the current epoch, from ``position`` on; then moves to the next epoch."""
        batches = self.plan()
        for index in range(self.position, len(batches)):
            self.position = index + 1
            yield batches[index]
        self.set_epoch(self.epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        """Where the sampler is: enough to regenerate this epoch and skip the batches already done."""
        return {**self._fingerprint(), "seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` of a sampler with the same configuration and data."""
        expected = self._fingerprint()
        saved = {key: state.get(key) for key in expected}
        if saved != expected:
            raise ValueError(
                f"the sampler state was saved for {saved}, but this sampler is {expected}: resume with the same "
                "data, batch_size and sampler options"
            )
        if not 0 <= int(state["position"]) <= len(self):
            raise ValueError(f"position {state['position']} is outside the epoch's {len(self)} batches")
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), int(state["position"])
        self._cached = None


class ItemSampler(Sampler):
    """Batches of ``items_per_batch`` items, shuffled each epoch (or in order with ``shuffle=False``)."""

    def __init__(self, num_items: int, items_per_batch: int, seed: int = 0, shuffle: bool = True):
        super().__init__(items_per_batch, seed, shuffle)
        self.num_items = int(num_items)
        self.items_per_batch = int(items_per_batch)

    def __len__(self) -> int:
        return math.ceil(self.num_items / self.items_per_batch)

    def _fingerprint(self) -> dict[str, Any]:
        return {**super()._fingerprint(), "num_items": self.num_items}

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(self.num_items) if self.shuffle else np.arange(self.num_items)
        step = self.items_per_batch
        return [order[i : i + step] for i in range(0, self.num_items, step)]


class InstanceSampler(ItemSampler):
    """Instance data: ``batch_size // 2`` items per batch, each giving two views (``batch_size`` rows)."""

    def __init__(self, num_items: int, batch_size: int, seed: int = 0, shuffle: bool = True):
        if batch_size < 2:
            raise ValueError(f"instance data needs batch_size >= 2 (two views per item), got {batch_size}")
        super().__init__(num_items, batch_size // 2, seed, shuffle)
        self.batch_size = int(batch_size)


class ClassSampler(Sampler):
    """Class data: each batch holds ``m`` items of each of ``batch_size // m`` distinct classes.

    Each epoch every class is shuffled and cut into groups of ``m`` (the last one topped up from the same class);
    each batch draws its classes in proportion to the groups they have left, so an epoch covers the data about
    once. A class that has run out (or has fewer than ``m`` items) gives a fresh random group.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, m: int, seed: int = 0):
        super().__init__(batch_size, seed, shuffle=True)
        labels = np.asarray(labels)
        if m < 1 or batch_size % m:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of m ({m}), the items per class")
        self.m = int(m)
        self.classes_per_batch = batch_size // m
        classes, inverse = np.unique(labels, return_inverse=True)
        self.members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
        if self.classes_per_batch > len(classes):
            fits = next(
                d for d in range(math.ceil(batch_size / len(classes)), batch_size + 1) if batch_size % d == 0
            )
            raise DataError(
                f"a batch of {batch_size} with m={m} items per class needs {self.classes_per_batch} classes, but "
                f"the data has {len(classes)}: raise m to {fits} (or another divisor of batch_size), or lower "
                "batch_size"
            )
        self.num_items = len(labels)

    def __len__(self) -> int:
        groups = sum(math.ceil(len(members) / self.m) for members in self.members)
        return max(1, math.ceil(groups / self.classes_per_batch))

    def _fingerprint(self) -> dict[str, Any]:
        return {
            **super()._fingerprint(),
            "m": self.m,
            "num_items": self.num_items,
            "num_classes": len(self.members),
        }

    def _fresh_group(self, c: int, rng: np.random.Generator) -> np.ndarray:
        members = self.members[c]
        return rng.choice(members, self.m, replace=len(members) < self.m)

    def _groups(self, c: int, rng: np.random.Generator) -> list[np.ndarray]:
        members = rng.permutation(self.members[c])
        groups = [members[i : i + self.m] for i in range(0, len(members), self.m)]
        short = self.m - len(groups[-1])
        if short:
            rest = members[: len(members) - len(groups[-1])]
            pool = rest if len(rest) >= short else members
            groups[-1] = np.concatenate([groups[-1], rng.choice(pool, short, replace=len(pool) < short)])
        return groups

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        left = [self._groups(c, rng) for c in range(len(self.members))]
        batches = []
        for _ in range(len(self)):
            counts = np.array([len(groups) for groups in left], dtype=np.float64)
            full = np.flatnonzero(counts)
            k = self.classes_per_batch
            if len(full) >= k:
                chosen = rng.choice(full, k, replace=False, p=counts[full] / counts[full].sum())
            else:
                empty = np.flatnonzero(counts == 0)
                chosen = np.concatenate([full, rng.choice(empty, k - len(full), replace=False)])
            batch = [left[c].pop() if left[c] else self._fresh_group(c, rng) for c in chosen]
            batches.append(np.concatenate(batch))
        return batches


class SessionSampler(Sampler):
    """Session data: whole sessions (a query and all its matches) per batch, about ``batch_size`` rows each.

    A batch takes ``round(batch_size / mean session size)`` sessions (at least one), so the number of batches
    per epoch does not depend on the order.
    """

    def __init__(self, sessions: Sequence[np.ndarray], batch_size: int, seed: int = 0, shuffle: bool = True):
        super().__init__(batch_size, seed, shuffle)
        self.sessions = list(sessions)
        if not self.sessions:
            raise DataError("session data without sessions: pass at least one query with matches")
        mean_size = float(np.mean([len(s) for s in self.sessions]))
        self.sessions_per_batch = max(1, round(batch_size / mean_size))

    def __len__(self) -> int:
        return math.ceil(len(self.sessions) / self.sessions_per_batch)

    def _fingerprint(self) -> dict[str, Any]:
        return {
            **super()._fingerprint(),
            "num_sessions": len(self.sessions),
            "num_items": int(sum(len(s) for s in self.sessions)),
        }

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        n = len(self.sessions)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        step = self.sessions_per_batch
        return [np.concatenate([self.sessions[s] for s in order[i : i + step]]) for i in range(0, n, step)]


class NoDuplicatesSampler(Sampler):
    """Pair data: ``batch_size`` examples per batch, no content twice in a batch (sentence-transformers'
    ``NoDuplicatesBatchSampler``): a repeated positive would be a false in-batch negative of the other anchor.

    Each epoch has ``ceil(n / batch_size)`` batches. The examples are placed most-repeated content first (the
    hardest to place), each into a random batch with room that holds none of its contents (``keys[s]``): a few
    random tries, then a scan. Only an example whose content is already in every batch with room is placed
    with a repeat. The batches come out in random order with random members.
    """

    TRIES = 16

    def __init__(
        self, sessions: Sequence[np.ndarray], keys: Sequence[tuple[str, ...]], batch_size: int, seed: int = 0,
        shuffle: bool = True,
    ):
        super().__init__(batch_size, seed, shuffle)
        if len(sessions) != len(keys) or not sessions:
            raise DataError("pair data without examples: pass at least one (anchor, positive) example")
        self.sessions = list(sessions)
        self.keys = list(keys)
        counts: dict[str, int] = {}
        for example in self.keys:
            for key in example:
                counts[key] = counts.get(key, 0) + 1
        self._repeats = np.array([max(counts[key] for key in example) for example in self.keys])

    def __len__(self) -> int:
        return math.ceil(len(self.sessions) / self.batch_size)

    def _fingerprint(self) -> dict[str, Any]:
        return {**super()._fingerprint(), "num_sessions": len(self.sessions)}

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        n = len(self.sessions)
        if not self.shuffle:
            return [np.concatenate(self.sessions[i : i + self.batch_size]) for i in range(0, n, self.batch_size)]
        order = rng.permutation(n)
        order = order[np.argsort(-self._repeats[order], kind="stable")]
        members: list[list[int]] = [[] for _ in range(len(self))]
        seen: list[set[str]] = [set() for _ in range(len(self))]
        open_batches = list(range(len(self)))
        for s in order.tolist():
            keys = self.keys[s]
            target = self._place(keys, open_batches, seen, rng)
            members[target].append(s)
            seen[target].update(keys)
            if len(members[target]) >= self.batch_size:
                open_batches.remove(target)
        return [np.concatenate([self.sessions[s] for s in batch]) for batch in members]

    def _place(
        self, keys: tuple[str, ...], open_batches: list[int], seen: list[set[str]], rng: np.random.Generator
    ) -> int:
        """A random open batch without any of ``keys``; if none has room, the first open batch tried."""
        count = len(open_batches)
        for _ in range(min(self.TRIES, count)):
            b = open_batches[int(rng.integers(count))]
            if seen[b].isdisjoint(keys):
                return b
        start = int(rng.integers(count))
        for j in range(count):
            b = open_batches[(start + j) % count]
            if seen[b].isdisjoint(keys):
                return b
        return open_batches[start]
