"""Miners: choose which pairs or triplets of a batch a loss trains on (numpy, shared by every backend).

A miner sees the batch labels and a detached (N, N) distance matrix, so every backend selects the same
indices for the same batch. Relations come from the labels (see :func:`relation_masks`):

- class ids (N,) or instance ids (N,): items with the same id are positives of each other, all others negatives;
- session rows (N, 2) ``(session_id, type)``, type 0 = query, 1 = positive, -1 = negative: only a query is an
  anchor, and its positives/negatives are the type 1 / type -1 rows of its own session.

Strategies, for an anchor ``a`` with positives ``P(a)`` and negatives ``N(a)`` and a margin ``m``. A positive
``p`` is judged against the anchor's nearest negative ``n* = min_{n in N(a)} d(a, n)`` (``+inf`` if none):

- ``all``: every positive;
- ``hard``: ``d(a, p) >= n*`` (some negative is as close as the positive, the ranking is wrong);
- ``semihard``: ``n* - m < d(a, p) < n*`` (ranked right, but inside the margin);
- ``easy``: ``d(a, p) <= n* - m`` (ranked right by at least the margin).

A negative ``n`` is judged against a reference positive distance ``r``: ``d(a, p)`` of the triplet's positive
for triplet miners, the anchor's farthest positive ``max_{p in P(a)} d(a, p)`` (``-inf`` if none) for pair miners:

- ``all``: every negative;
- ``hard``: ``d(a, n) <= r``;
- ``semihard``: ``r < d(a, n) < r + m``;
- ``easy``: ``d(a, n) >= r + m``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Strategy = Literal["all", "easy", "semihard", "hard"]
STRATEGIES: tuple[str, ...] = ("all", "easy", "semihard", "hard")

__all__ = ["STRATEGIES", "Miner", "PairMiner", "TripletMiner", "relation_masks"]


def relation_masks(labels: np.ndarray, in_batch_negatives: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return boolean (N, N) masks ``(positive, negative)``: ``positive[a, j]`` says j is a positive of anchor a.

    ``in_batch_negatives`` (session labels only) also counts every non-query row of other sessions as a
    negative of a query, as in-batch-negative losses (MultipleNegativesRankingLoss) do.
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        same = labels[:, None] == labels[None, :]
        not_self = ~np.eye(len(labels), dtype=bool)
        return same & not_self, ~same
    if labels.ndim == 2 and labels.shape[1] == 2:
        session, kind = labels[:, 0], labels[:, 1]
        if not np.isin(kind, (-1, 0, 1)).all():
            raise ValueError("session labels must be rows (session_id, type) with type in {0, 1, -1}")
        same = session[:, None] == session[None, :]
        query = (kind == 0)[:, None]
        positive = query & same & (kind == 1)[None, :]
        if in_batch_negatives:
            negative = query & (kind != 0)[None, :] & ~positive
        else:
            negative = query & same & (kind == -1)[None, :]
        return positive, negative
    raise ValueError(
        f"labels must have shape (N,) (class or instance ids) or (N, 2) (session rows), got {labels.shape}"
    )


def _check_strategy(name: str, value: str) -> str:
    if value not in STRATEGIES:
        raise ValueError(f"{name} must be one of {STRATEGIES}, got {value!r}")
    return value


def _select_positives(
    strategy: str, d_ap: np.ndarray, nearest_negative: np.ndarray, margin: float
) -> np.ndarray:
    if strategy == "hard":
        return d_ap >= nearest_negative
    if strategy == "semihard":
        return (nearest_negative - margin < d_ap) & (d_ap < nearest_negative)
    if strategy == "easy":
        return d_ap <= nearest_negative - margin
    return np.ones_like(d_ap, dtype=bool)


def _select_negatives(strategy: str, d_an: np.ndarray, reference: np.ndarray, margin: float) -> np.ndarray:
    if strategy == "hard":
        return d_an <= reference
    if strategy == "semihard":
        return (reference < d_an) & (d_an < reference + margin)
    if strategy == "easy":
        return d_an >= reference + margin
    return np.ones_like(d_an, dtype=bool)


class Miner:
    """Shared base: strategy names, margin, and the per-anchor nearest negative / farthest positive."""

    def __init__(self, pos_strategy: Strategy = "all", neg_strategy: Strategy = "all", margin: float = 0.2):
        self.pos_strategy = _check_strategy("pos_strategy", pos_strategy)
        self.neg_strategy = _check_strategy("neg_strategy", neg_strategy)
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = float(margin)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(pos_strategy={self.pos_strategy!r}, "
            f"neg_strategy={self.neg_strategy!r}, margin={self.margin})"
        )

    @staticmethod
    def _prepare(labels: np.ndarray, distances: np.ndarray, in_batch_negatives: bool = False):
        distances = np.asarray(distances, dtype=np.float64)
        positive, negative = relation_masks(labels, in_batch_negatives)
        if distances.shape != positive.shape:
            raise ValueError(f"distances must be ({len(positive)}, {len(positive)}), got {distances.shape}")
        nearest_negative = np.where(negative, distances, np.inf).min(axis=1)
        farthest_positive = np.where(positive, distances, -np.inf).max(axis=1)
        return distances, positive, negative, nearest_negative, farthest_positive


class PairMiner(Miner):
    """Pairs ``(i, j, target)``: i is the anchor, target 1 for a positive pair and 0 for a negative pair.

    Ordered pairs: with class ids both ``(i, j)`` and ``(j, i)`` appear, each judged from its anchor's view.
    """

    def __call__(
        self, labels: np.ndarray, distances: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, positive, negative, nearest_negative, farthest_positive = self._prepare(labels, distances)
        pos = positive & _select_positives(self.pos_strategy, d, nearest_negative[:, None], self.margin)
        neg = negative & _select_negatives(self.neg_strategy, d, farthest_positive[:, None], self.margin)
        selected = pos | neg
        i, j = np.nonzero(selected)
        return i.astype(np.int64), j.astype(np.int64), pos[i, j].astype(np.int64)


class TripletMiner(Miner):
    """Triplets ``(anchor, positive, negative)`` in lexicographic order."""

    def __call__(
        self, labels: np.ndarray, distances: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, positive, negative, nearest_negative, _ = self._prepare(labels, distances)
        pos = positive & _select_positives(self.pos_strategy, d, nearest_negative[:, None], self.margin)
        a, p = np.nonzero(pos)
        if len(a) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        d_ap = d[a, p][:, None]  # (T, 1)
        d_an = d[a]  # (T, N)
        keep = negative[a] & _select_negatives(self.neg_strategy, d_an, d_ap, self.margin)
        t, n = np.nonzero(keep)
        return a[t].astype(np.int64), p[t].astype(np.int64), n.astype(np.int64)
