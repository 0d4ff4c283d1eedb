"""Nearest-neighbour retrieval in numpy and its metrics, from embeddings or from data plus an ``embed_fn``."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import numpy as np

from finetuner.evaluation import metrics as M

DISTANCES = ("cosine", "euclidean", "sqeuclidean", "dot")
DEFAULT_METRICS = ("mAP@R", "mAP", "MRR", "R-precision", "precision@10", "recall@10", "hit@10", "NDCG@10")
_AT_K = {"precision": M.precision_at_k, "recall": M.recall_at_k, "hit": M.hit_at_k, "NDCG": M.ndcg_at_k}
_WHOLE = {
    "mAP@R": M.map_at_r,
    "mAP": M.average_precision,
    "MRR": M.reciprocal_rank,
    "R-precision": M.r_precision,
}

EmbedFn = Callable[[Any], np.ndarray]


def metric_fn(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``(relevance, num_relevant) -> per-query values`` for a metric name such as ``'mAP@R'`` or
    ``'precision@5'`` (``precision|recall|hit|NDCG @ k``, ``mAP``, ``mAP@R``, ``MRR``, ``R-precision``)."""
    if name in _WHOLE:
        fn = _WHOLE[name]
        return (lambda rel, num: fn(rel)) if fn is M.reciprocal_rank else fn
    match = re.fullmatch(r"(\w+)@(\d+)", name)
    if match and match.group(1) in _AT_K and int(match.group(2)) >= 1:
        fn, k = _AT_K[match.group(1)], int(match.group(2))
        if fn in (M.precision_at_k, M.hit_at_k):
            return lambda rel, num: fn(rel, k)
        return lambda rel, num: fn(rel, num, k)
    raise ValueError(
        f"unknown metric {name!r}: use {sorted(_WHOLE)} or precision@k, recall@k, hit@k, NDCG@k (k >= 1)"
    )


def _prepare(emb: np.ndarray, distance: str) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be a (N, D) array, got shape {emb.shape}")
    if not np.isfinite(emb).all():
        raise ValueError("the embeddings contain NaN or inf: check the model and its inputs")
    if distance == "cosine":
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        return emb / np.maximum(norms, 1e-12)
    return emb


def pairwise_distances(a: np.ndarray, b: np.ndarray, distance: str = "cosine") -> np.ndarray:
    """(len(a), len(b)) distances: ``1 - cos``, euclidean, squared euclidean, or ``-a.b`` for ``'dot'``."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    a, b = _prepare(a, distance), _prepare(b, distance)
    return _distances(a, b, (b * b).sum(axis=1), distance)


def _distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray, distance: str) -> np.ndarray:
    dot = a @ b.T
    if distance == "cosine":
        return 1.0 - dot
    if distance == "dot":
        return -dot
    sq = np.maximum((a * a).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * dot, 0.0)
    return sq if distance == "sqeuclidean" else np.sqrt(sq)


def _rank(dist: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest columns of each row, nearest first (a partial sort when ``k`` is small)."""
    if k >= dist.shape[1]:
        return np.argsort(dist, axis=1)
    part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(dist, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _width(names: Sequence[str], max_relevant: int) -> int | None:
    """How many ranks the metrics look at (None: the whole ranking, for mAP and MRR)."""
    widths = []
    for name in names:
        if name in ("mAP", "MRR"):
            return None
        widths.append(max_relevant if name in ("mAP@R", "R-precision") else int(name.rsplit("@", 1)[1]))
    return max(widths)


def _relevance_setup(
    query_labels: np.ndarray, index_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Which query rows ask and which index rows answer: for session labels (N, 2) the queries (type 0) ask and
    the matches (type != 0) answer; for class/instance labels (N,) all rows do."""
    if query_labels.ndim != index_labels.ndim or query_labels.ndim not in (1, 2):
        raise ValueError(
            f"labels must both be (N,) class ids or both (N, 2) session rows, got shapes {query_labels.shape} "
            f"and {index_labels.shape}"
        )
    if query_labels.ndim == 2:
        return np.flatnonzero(query_labels[:, 1] == 0), np.flatnonzero(index_labels[:, 1] != 0), True
    return np.arange(len(query_labels)), np.arange(len(index_labels)), False


def _drop_self(ranked: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row's ranking without the query itself (found wherever it ranked, e.g. among equal distances)."""
    drop = ranked == rows[:, None]
    absent = ~drop.any(axis=1)
    drop[absent, -1] = True  # the query was ranked beyond the cut: drop the extra last column instead
    return ranked[~drop].reshape(len(rows), ranked.shape[1] - 1)


def _count(groups: np.ndarray, counts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """How many relevant items each key has: ``counts`` of the sorted ``groups``, 0 for keys not among them."""
    if len(groups) == 0:
        return np.zeros(len(keys), dtype=np.int64)
    pos = np.minimum(np.searchsorted(groups, keys), len(groups) - 1)
    return np.where(groups[pos] == keys, counts[pos], 0)


def evaluate_embeddings(
    query_emb: np.ndarray,
    query_labels: np.ndarray,
    index_emb: np.ndarray | None = None,
    index_labels: np.ndarray | None = None,
    *,
    metrics: Sequence[str] | None = None,
    distance: str = "cosine",
    limit: int | None = None,
    exclude_self: bool = False,
    chunk_size: int = 256,
) -> dict[str, float]:
    """Mean retrieval metrics of the queries against the index, by nearest-neighbour search in numpy.

    Relevant: an index item with the query's label (class ids or instance ids, (N,)); for session rows
    ``(session_id, type)`` (N, 2), the queries (type 0) search the matches (type != 0) and the positives
    (type 1) of their own session are relevant. Without ``index_emb`` (or with ``exclude_self``, when query and
    index are the same set) each query searches the others, never itself. ``limit``: results ranked per query
    (None: all, so mAP is exact). Queries without any relevant item are left out of the means. Distances are
    computed ``chunk_size`` queries at a time, so 10k x 10k stays small in memory.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    names = list(DEFAULT_METRICS if metrics is None else metrics)
    if not names:
        raise ValueError("metrics is empty: name at least one metric, or pass None for the defaults")
    fns = {name: metric_fn(name) for name in names}
    if index_emb is None:
        index_emb, index_labels, exclude_self = query_emb, query_labels, True
    elif index_labels is None:
        raise ValueError("index_emb was given without index_labels: pass both")
    query_labels, index_labels = np.asarray(query_labels), np.asarray(index_labels)
    q_emb, i_emb = _prepare(query_emb, distance), _prepare(index_emb, distance)
    if len(q_emb) != len(query_labels) or len(i_emb) != len(index_labels):
        raise ValueError("each embedding needs one label: the embeddings and labels differ in length")
    if exclude_self and len(q_emb) != len(i_emb):
        raise ValueError("exclude_self needs the query set to be the index set (same length and order)")
    q_rows, i_rows, session = _relevance_setup(query_labels, index_labels)
    exclude_self = exclude_self and not session
    if len(q_rows) == 0 or len(i_rows) == 0:
        raise ValueError("nothing to evaluate: no queries or no index items")
    candidates, cand_labels = i_emb[i_rows], index_labels[i_rows]
    cand_sq = (candidates * candidates).sum(axis=1)
    num_ranked = len(i_rows) - int(exclude_self)
    k = num_ranked if limit is None else max(1, min(int(limit), num_ranked))
    if num_ranked < 1:
        raise ValueError("the index has a single item, which is the query itself: nothing to retrieve")

    if session:
        positives = cand_labels[cand_labels[:, 1] == 1, 0]
        groups, counts = np.unique(positives, return_counts=True)
    else:
        groups, counts = np.unique(cand_labels, return_counts=True)
    per_query: dict[str, list[np.ndarray]] = {name: [] for name in names}
    answered = 0
    for start in range(0, len(q_rows), chunk_size):
        rows = q_rows[start : start + chunk_size]
        dist = _distances(q_emb[rows], candidates, cand_sq, distance)
        if exclude_self:
            dist[np.arange(len(rows)), rows] = np.inf
        keys = query_labels[rows, 0] if session else query_labels[rows]
        num = _count(groups, counts, keys) - int(exclude_self)
        width = _width(names, int(num.max(initial=0)))
        ranked = _rank(dist, (k if width is None else min(k, max(1, width))) + int(exclude_self))
        if exclude_self:
            ranked = _drop_self(ranked, rows)
        if session:
            rel = (cand_labels[ranked, 0] == keys[:, None]) & (cand_labels[ranked, 1] == 1)
        else:
            rel = cand_labels[ranked] == keys[:, None]
        keep = num > 0
        answered += int(keep.sum())
        rel, num = rel[keep], num[keep]
        for name, fn in fns.items():
            per_query[name].append(fn(rel[:, : _width([name], int(num.max(initial=0)))], num))
    if not answered:
        raise ValueError("no query has a relevant item in the index: check the labels of the evaluation data")
    return {name: float(np.mean(np.concatenate(values))) for name, values in per_query.items()}


class Evaluator:
    """Retrieval metrics of an embedding function on labelled data (class data or session data).

    ``embed_fn(contents) -> (B, D) array`` gets the collated contents of each batch (a numpy array for tensor
    data, a list of strings for text unless ``collate_fn`` tokenises); without it the documents' own
    ``.embedding`` s are used. ``index_data=None``: every query searches the rest of ``query_data`` (session
    data: the queries search all matches). See :func:`evaluate_embeddings` for ``metrics``, ``distance`` and
    ``limit``.
    """

    def __init__(
        self,
        query_data: Any,
        index_data: Any = None,
        embed_fn: EmbedFn | None = None,
        metrics: Sequence[str] | None = None,
        distance: str = "cosine",
        limit: int | None = None,
        *,
        preprocess_fn: Callable[[Any], Any] | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        batch_size: int = 256,
    ):
        from finetuner.data import as_dataset

        self.query = as_dataset(query_data, preprocess_fn=preprocess_fn)
        self.index = None if index_data is None else as_dataset(index_data, preprocess_fn=preprocess_fn)
        for dataset in (self.query, self.index):
            if dataset is not None and dataset.kind == "instance":
                raise ValueError(
                    "evaluation needs labels: pass class data or session data, not unlabelled data"
                )
        self.embed_fn = embed_fn
        self.metrics = list(DEFAULT_METRICS if metrics is None else metrics)
        for name in self.metrics:
            metric_fn(name)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        self.distance, self.limit = distance, limit
        self.collate_fn, self.batch_size = collate_fn, batch_size

    def _embed(self, dataset: Any, embed_fn: EmbedFn | None) -> np.ndarray:
        if embed_fn is None:
            missing = next(
                (i for i, d in enumerate(dataset.items) if getattr(d, "embedding", None) is None), None
            )
            if missing is not None:
                position, doc_id = dataset.name(missing)
                raise ValueError(f"document {position} (id {doc_id!r}) has no .embedding: pass embed_fn")
            return np.stack([np.asarray(d.embedding, dtype=np.float32) for d in dataset.items])
        return np.concatenate([np.asarray(embed_fn(batch.contents)) for batch in self._batches(dataset)])

    def _batches(self, dataset: Any) -> Iterator[Any]:
        from finetuner.data import in_order

        return iter(in_order(dataset, self.batch_size, self.collate_fn))

    def _labels(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Class ids that agree between query and index data (mapped through the user's labels)."""
        if self.index is None or self.query.kind != "class" or self.index.kind != "class":
            return self.query.labels, None if self.index is None else self.index.labels
        ids: dict[Hashable, int] = {}
        joint = [
            np.asarray([ids.setdefault(ds.label_names[int(i)], len(ids)) for i in ds.labels], dtype=np.int64)
            for ds in (self.query, self.index)
        ]
        return joint[0], joint[1]

    def evaluate(self, embed_fn: EmbedFn | None = None) -> dict[str, float]:
        """Metric name -> mean over the queries, with ``embed_fn`` (default: the one given at construction)."""
        embed_fn = embed_fn or self.embed_fn
        query_labels, index_labels = self._labels()
        query_emb = self._embed(self.query, embed_fn)
        index_emb = None if self.index is None else self._embed(self.index, embed_fn)
        return evaluate_embeddings(
            query_emb,
            query_labels,
            index_emb,
            index_labels,
            metrics=self.metrics,
            distance=self.distance,
            limit=self.limit,
        )
