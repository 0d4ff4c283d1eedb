"""Retrieval metrics in numpy, one value per query.

Every function takes ``relevance``: a (Q, K) boolean matrix, row q = query q's ranked results (column 0 is the
nearest), True where the result is relevant; the ones that divide by it also take ``num_relevant`` (Q,): how
many relevant items query q has in the whole index (relevant items ranked beyond K count as missed). A query
without relevant items gets NaN where the metric divides by that number; average with ``np.nanmean`` or drop
such queries, as :func:`finetuner.evaluation.evaluate_embeddings` does.
"""

from __future__ import annotations

import numpy as np


def _rel(relevance: np.ndarray) -> np.ndarray:
    rel = np.asarray(relevance, dtype=bool)
    if rel.ndim != 2:
        raise ValueError(f"relevance must be a (queries, ranks) matrix, got shape {rel.shape}")
    return rel


def _num(num_relevant: np.ndarray, rel: np.ndarray) -> np.ndarray:
    num = np.asarray(num_relevant, dtype=np.float64)
    if num.shape != (rel.shape[0],):
        raise ValueError(f"num_relevant must have shape ({rel.shape[0]},), got {num.shape}")
    return num


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _precisions(rel: np.ndarray) -> np.ndarray:
    """(Q, K): precision at each rank 1..K."""
    return np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)


def precision_at_k(relevance: np.ndarray, k: int) -> np.ndarray:
    """Relevant results among the top ``k``, divided by ``k`` (missing ranks count as not relevant)."""
    rel = _rel(relevance)
    return rel[:, :k].sum(axis=1) / float(k)


def recall_at_k(relevance: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    """Relevant results among the top ``k``, divided by the number of relevant items."""
    rel = _rel(relevance)
    return _divide(rel[:, :k].sum(axis=1).astype(np.float64), _num(num_relevant, rel))


def hit_at_k(relevance: np.ndarray, k: int) -> np.ndarray:
    """1 if any of the top ``k`` results is relevant, else 0."""
    return _rel(relevance)[:, :k].any(axis=1).astype(np.float64)


def average_precision(relevance: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """Mean of the precision at the rank of each relevant item (0 for relevant items not retrieved); its mean
    over queries is mAP."""
    rel = _rel(relevance)
    return _divide((_precisions(rel) * rel).sum(axis=1), _num(num_relevant, rel))


def map_at_r(relevance: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """Average precision over the top R results only, R = the query's number of relevant items (Musgrave et
    al., "A Metric Learning Reality Check"): precision at each relevant rank <= R, summed, divided by R."""
    rel = _rel(relevance)
    num = _num(num_relevant, rel)
    within_r = np.arange(1, rel.shape[1] + 1)[None, :] <= num[:, None]
    return _divide((_precisions(rel) * (rel & within_r)).sum(axis=1), num)


def reciprocal_rank(relevance: np.ndarray) -> np.ndarray:
    """1 / rank of the first relevant result (0 if none is retrieved); its mean over queries is MRR."""
    rel = _rel(relevance)
    first = np.argmax(rel, axis=1)
    return np.where(rel.any(axis=1), 1.0 / (first + 1), 0.0)


def ndcg_at_k(relevance: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    """Normalised discounted cumulative gain of the top ``k`` with binary gains:
    ``sum(rel_i / log2(i + 1)) / sum_{i <= min(R, k)} 1 / log2(i + 1)`` for ranks i = 1..k."""
    rel = _rel(relevance)[:, :k]
    num = _num(num_relevant, rel)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (rel * discounts[: rel.shape[1]]).sum(axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(num, k).astype(np.int64)]
    return _divide(dcg, ideal)


def r_precision(relevance: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """Relevant results among the top R, divided by R (R = the query's number of relevant items)."""
    rel = _rel(relevance)
    num = _num(num_relevant, rel)
    within_r = np.arange(1, rel.shape[1] + 1)[None, :] <= num[:, None]
    return _divide((rel & within_r).sum(axis=1).astype(np.float64), num)
