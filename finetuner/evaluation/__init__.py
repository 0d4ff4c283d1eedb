"""Retrieval evaluation in numpy: per-query metrics on ranked relevance, and nearest-neighbour evaluation."""

from finetuner.evaluation.evaluator import (
    DEFAULT_METRICS,
    DISTANCES,
    Evaluator,
    evaluate_embeddings,
    metric_fn,
    pairwise_distances,
)
from finetuner.evaluation.metrics import (
    average_precision,
    hit_at_k,
    map_at_r,
    ndcg_at_k,
    precision_at_k,
    r_precision,
    recall_at_k,
    reciprocal_rank,
)

__all__ = [
    "DEFAULT_METRICS",
    "DISTANCES",
    "Evaluator",
    "average_precision",
    "evaluate_embeddings",
    "hit_at_k",
    "map_at_r",
    "metric_fn",
    "ndcg_at_k",
    "pairwise_distances",
    "precision_at_k",
    "r_precision",
    "recall_at_k",
    "reciprocal_rank",
]
