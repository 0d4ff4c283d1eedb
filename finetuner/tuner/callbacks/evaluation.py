"""Retrieval metrics on held-out data at the end of every epoch (via ``finetuner.evaluation``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from finetuner.tuner.callbacks.base import Callback
from finetuner.tuner.loading import make_loader

if TYPE_CHECKING:
    from finetuner.tuner.base import BaseTuner

EvaluateFn = Callable[..., dict[str, float]]


class EvaluationCallback(Callback):
    """Embeds ``query_data`` (and ``index_data``) with the model being tuned and computes retrieval metrics.

    Without ``index_data`` the evaluation is closed-set: every item is a query against all the others.
    ``evaluate_fn(query_emb, query_labels, index_emb, index_labels, **metric_options) -> dict`` defaults to
    ``finetuner.evaluation.evaluate_embeddings``. Metric names get ``prefix``. ``fit(eval_data=...)`` adds
    one of these for you; the tuner calls :meth:`evaluate` between ``on_val_begin`` and ``on_val_end``.
    ``data_options`` (``preprocess_fn``, ``collate_fn``, ``num_workers``) go to the evaluation loader, so text
    is tokenised exactly as in training.
    """

    def __init__(
        self,
        query_data: Any,
        index_data: Any = None,
        batch_size: int = 256,
        prefix: str = "",
        evaluate_fn: EvaluateFn | None = None,
        data_options: dict[str, Any] | None = None,
        **metric_options: Any,
    ):
        self.query_data = query_data
        self.index_data = index_data
        self.batch_size = batch_size
        self.prefix = prefix
        self.evaluate_fn = evaluate_fn
        self.metric_options = metric_options
        self.data_options = dict(data_options or {})

    def _embed(self, tuner: BaseTuner, data: Any) -> tuple[np.ndarray, np.ndarray]:
        loader = make_loader(data, self.batch_size, shuffle=False, seed=0, **self.data_options)
        embeddings, labels = [], []
        for batch in loader:
            embeddings.append(tuner._embed_batch(batch.contents))
            labels.append(np.asarray(batch.labels))
        return np.concatenate(embeddings), np.concatenate(labels)

    def evaluate(self, tuner: BaseTuner) -> dict[str, float]:
        """Metrics of the model as it is now."""
        query_emb, query_labels = self._embed(tuner, self.query_data)
        if self.index_data is None:
            index_emb, index_labels, options = query_emb, query_labels, {"exclude_self": True}
        else:
            index_emb, index_labels = self._embed(tuner, self.index_data)
            options = {}
        evaluate_fn = self.evaluate_fn
        if evaluate_fn is None:
            from finetuner.evaluation import evaluate_embeddings as evaluate_fn
        metrics = evaluate_fn(
            query_emb, query_labels, index_emb, index_labels, **options, **self.metric_options
        )
        return {f"{self.prefix}{name}": float(value) for name, value in metrics.items()}
