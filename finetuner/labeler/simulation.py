"""Simulated labelling: answer the Labeler's questions from true class labels, to compare strategies offline.

No Flow and no browser: the strategy functions pick queries, the top-k neighbours under the current model are
"labelled" relevant iff they share the query's class, the model is fine-tuned with the same ``train_fn`` the
Labeler uses, and after every round two mAP@R are recorded: on a held-out set of other classes (does the tuning
generalise?) and on the pool itself (is the user's own collection searched better? what a Labeler user labels
for). Used by the tests and ``benchmarks/labeler.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from finetuner.labeler.strategies import knn, l2_normalize, pair_similarities, select_queries
from finetuner.labeler.training import (
    LABEL_TAG,
    EmbedFn,
    TrainFn,
    get_weights,
    refits_from_start,
    set_weights,
)


def map_at_r(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Held-out mAP@R (cosine; each item searches all the others) by :func:`finetuner.evaluation.evaluate_embeddings`."""
    from finetuner.evaluation import evaluate_embeddings

    return evaluate_embeddings(embeddings, labels, metrics=["mAP@R"])["mAP@R"]


def labels_to_reach(labels: Sequence[int], curve: Sequence[float], target: float) -> int | None:
    """The first of ``labels`` whose value on ``curve`` (the same rounds) is at least ``target``; None if none is."""
    for count, value in zip(labels, curve):
        if value >= target:
            return int(count)
    return None


@dataclass
class SimulationResult:
    """One strategy's learning curves: labels given so far, and held-out and pool mAP@R after each round."""

    strategy: str
    labels: list[int] = field(default_factory=list)
    map_at_r: list[float] = field(default_factory=list)
    pool_map_at_r: list[float] = field(default_factory=list)
    select_ms: list[float] = field(default_factory=list)

    def labels_to_reach(self, target: float) -> int | None:
        """The fewest labels after which mAP@R reached ``target`` (None if it never did)."""
        return labels_to_reach(self.labels, self.map_at_r, target)

    def value_at(self, labels: int) -> float:
        """mAP@R after the last round that used at most ``labels`` labels."""
        best = self.map_at_r[0]
        for count, value in zip(self.labels, self.map_at_r):
            if count <= labels:
                best = value
        return best


def session_docs_from_indices(
    contents: np.ndarray, queries: list[int], matches: list[list[int]], labels: list[list[int]]
) -> Any:
    """Build session-shaped Documents (query + labelled matches) from pool indices; ``contents`` holds arrays
    (put in ``.tensor``) or strings (put in ``.text``)."""
    from docarray import Document, DocumentArray

    def document(i: int, **tags: int) -> Any:
        content = contents[i]
        field = {"text": str(content)} if isinstance(content, str) else {"tensor": content}
        return Document(id=f"{'q' if not tags else 'm'}{i}", tags=tags, **field)

    docs = DocumentArray()
    for q, ms, ls in zip(queries, matches, labels):
        query = document(q)
        for m, label in zip(ms, ls):
            query.matches.append(document(m, **{LABEL_TAG: int(label)}))
        docs.append(query)
    return docs


def simulate(
    model_factory: Callable[[], Any],
    pool_x: np.ndarray,
    pool_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    strategy: str,
    embed_fn: EmbedFn,
    train_fn: TrainFn,
    rounds: int,
    questions: int = 5,
    top_k: int = 10,
    epochs: int = 3,
    seed: int = 0,
    refit: bool | None = None,
    select: Callable[..., np.ndarray] = select_queries,
) -> SimulationResult:
    """Label ``rounds`` rounds of ``questions`` queries x ``top_k`` matches, training after each round.

    ``refit``: each fit starts from the model's starting weights (on all the labels so far) instead of from the
    previous fit; None decides as the Labeler does (:func:`~finetuner.labeler.training.refits_from_start`).
    ``select``: what picks the queries, called as :func:`~finetuner.labeler.strategies.select_queries` is (the
    Labeler's strategies by default; a benchmark passes its own, e.g. an oracle that knows the classes).
    """
    rng = np.random.default_rng(seed)
    model = model_factory()
    if refit is None:
        refit = refits_from_start(model)
    start_weights = get_weights(model) if refit else None  # read only when each fit starts from them
    result = SimulationResult(strategy)
    result.labels.append(0)
    result.map_at_r.append(map_at_r(embed_fn(model, test_x), test_y))
    asked = np.zeros(len(pool_x), dtype=bool)
    queries: list[int] = []
    matches: list[list[int]] = []
    answers: list[list[int]] = []
    for _ in range(rounds):
        emb = l2_normalize(embed_fn(model, pool_x))
        result.pool_map_at_r.append(map_at_r(emb, pool_y))
        flat_q = np.repeat(queries, [len(m) for m in matches]) if queries else np.empty(0, np.int64)
        flat_m = np.concatenate(matches) if matches else np.empty(0, np.int64)
        flat_l = np.concatenate(answers) if answers else np.empty(0, np.int64)
        pos, neg = pair_similarities(emb, flat_q, flat_m, flat_l)
        start = time.perf_counter()
        picked = select(
            emb, questions, strategy, k=top_k, exclude=asked, seeds=np.asarray(queries, np.int64),
            pos_sims=pos, neg_sims=neg, rng=rng,
        )
        neighbours, _ = knn(emb, picked, top_k)
        result.select_ms.append((time.perf_counter() - start) * 1000)
        for q, ms in zip(picked, neighbours):
            asked[q] = True
            queries.append(int(q))
            matches.append(ms)
            answers.append(np.where(pool_y[ms] == pool_y[q], 1, -1))
        if refit:
            set_weights(model, start_weights)
        train_fn(model, session_docs_from_indices(pool_x, queries, matches, answers), epochs)
        result.labels.append(int(sum(len(m) for m in matches)))
        result.map_at_r.append(map_at_r(embed_fn(model, test_x), test_y))
    result.pool_map_at_r.append(map_at_r(embed_fn(model, pool_x), pool_y))
    return result
