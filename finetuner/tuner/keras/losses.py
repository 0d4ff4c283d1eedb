"""Keras/TensorFlow losses: the tensor math of the specs in :mod:`finetuner.tuner.losses` (names, defaults,
formulas), written in TensorFlow ops.

Each loss is a ``keras.layers.Layer`` (so ArcFace/CosFace class centres are Keras variables the optimiser and
checkpoints see) called as ``loss(embeddings, labels) -> scalar``. Labels may be numpy or a tensor. The miners
and relation masks are the shared numpy ones: called directly in eager mode and through ``tf.numpy_function``
inside a ``tf.function``, so the same batch mines the same pairs/triplets as in every other backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from finetuner.tuner.losses import (
    EUCLIDEAN_EPS,
    NORM_EPS,
    ArcFaceSpec,
    CosFaceSpec,
    MultipleNegativesRankingSpec,
    NTXentSpec,
    SiameseSpec,
    TripletSpec,
    check_class_labels,
)
from finetuner.tuner.miners import relation_masks
from tailor_ir.imports import import_keras, import_tensorflow

tf = import_tensorflow()
keras = import_keras()

__all__ = [
    "ArcFaceLoss",
    "CosFaceLoss",
    "KerasLoss",
    "MultipleNegativesRankingLoss",
    "NTXentLoss",
    "SiameseLoss",
    "TripletLoss",
    "pairwise_distance",
]


def _host(fn: Callable[..., Sequence[np.ndarray]], inputs: Sequence[Any], dtypes: Sequence[Any]) -> list[Any]:
    """Run numpy ``fn`` on ``inputs``: directly when eager, through ``tf.numpy_function`` inside a graph."""
    if tf.executing_eagerly():
        arrays = [np.asarray(x.numpy() if hasattr(x, "numpy") else x) for x in inputs]
        return [tf.convert_to_tensor(np.asarray(out), dtype=d) for out, d in zip(fn(*arrays), dtypes)]
    outputs = tf.numpy_function(lambda *a: tuple(np.asarray(o) for o in fn(*a)), list(inputs), list(dtypes))
    return list(outputs)


def _as_int64(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a, dtype=np.int64) for a in arrays)


def _normalize(x: Any) -> Any:
    """``x / max(|x|, NORM_EPS)`` row-wise (as ``torch.nn.functional.normalize``), finite gradient at 0."""
    norm = tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(x), axis=1, keepdims=True), NORM_EPS**2))
    return x / norm


def _cosine_similarity(x: Any) -> Any:
    unit = _normalize(x)
    return tf.matmul(unit, unit, transpose_b=True)


def pairwise_distance(x: Any, distance: str) -> Any:
    """(N, N) distances between the rows of ``x`` (see :mod:`finetuner.tuner.losses` for the definitions)."""
    if distance == "cosine":
        return 1.0 - _cosine_similarity(x)
    # exact differences, not |x|^2 + |y|^2 - 2<x, y> (which cancels badly for close points)
    squared = tf.reduce_sum(tf.square(x[:, None, :] - x[None, :, :]), axis=-1)
    if distance == "sqeuclidean":
        return squared
    return tf.sqrt(tf.maximum(squared, EUCLIDEAN_EPS))


def _mean(terms: Any, anchor: Any) -> Any:
    """Mean of ``terms``; 0 (still connected to ``anchor`` for a zero gradient) when nothing was mined."""
    count = tf.maximum(tf.cast(tf.size(terms), terms.dtype), 1.0)
    return tf.reduce_sum(terms) / count + 0.0 * tf.reduce_sum(anchor)


def _pairs(a: Any, b: Any) -> Any:
    return tf.stack([a, b], axis=1)


class KerasLoss(keras.layers.Layer):
    """Keras half of every loss: a Layer called directly as ``loss(embeddings, labels)``.

    ``__call__`` bypasses Keras's input conversion and autocasting (labels stay what they are: numpy labels
    go to the numpy miners untouched). ``validate_labels`` checks labels eagerly (the tuner calls it before a
    compiled step, so a bad label raises a plain ``ValueError`` even inside ``tf.function``).
    """

    def __init__(self) -> None:
        super().__init__(name=type(self).__name__)
        self.built = True

    def __call__(self, embeddings: Any, labels: Any) -> Any:
        return self.call(tf.cast(embeddings, tf.float32), labels)

    def call(self, embeddings: Any, labels: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def validate_labels(self, labels: np.ndarray) -> None:
        """Raise ``ValueError`` for labels this loss cannot use (class-centre losses check the range)."""


class SiameseLoss(SiameseSpec, KerasLoss):
    __doc__ = SiameseSpec.__doc__

    def call(self, embeddings: Any, labels: Any) -> Any:
        dist = pairwise_distance(embeddings, self.distance)
        i, j, target = _host(
            lambda y, d: _as_int64(self.miner(y, d)), [labels, tf.stop_gradient(dist)], [tf.int64] * 3
        )
        d = tf.gather_nd(dist, _pairs(i, j))
        t = tf.cast(target, d.dtype)
        return _mean(t * tf.square(d) + (1.0 - t) * tf.square(tf.nn.relu(self.margin - d)), dist)


class TripletLoss(TripletSpec, KerasLoss):
    __doc__ = TripletSpec.__doc__

    def call(self, embeddings: Any, labels: Any) -> Any:
        dist = pairwise_distance(embeddings, self.distance)
        a, p, n = _host(
            lambda y, d: _as_int64(self.miner(y, d)), [labels, tf.stop_gradient(dist)], [tf.int64] * 3
        )
        terms = tf.nn.relu(tf.gather_nd(dist, _pairs(a, p)) - tf.gather_nd(dist, _pairs(a, n)) + self.margin)
        return _mean(terms, dist)


def _info_nce_plan(positive: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positive pairs ``(a, p)`` and, per pair, which logits of row a enter its softmax (candidates + p)."""
    a, p = np.nonzero(positive)
    allowed = candidates[a].copy()
    allowed[np.arange(len(a)), p] = True
    return a.astype(np.int64), p.astype(np.int64), allowed.astype(bool).reshape(len(a), positive.shape[1])


def _info_nce(logits: Any, a: Any, p: Any, allowed: Any) -> Any:
    """Mean over positive pairs (a, p) of ``-log softmax`` of logit (a, p) among the allowed logits of row a."""
    rows = tf.where(allowed, tf.gather(logits, a), tf.cast(-math.inf, logits.dtype))
    terms = tf.reduce_logsumexp(rows, axis=1) - tf.gather_nd(logits, _pairs(a, p))
    return _mean(terms, logits)


class MultipleNegativesRankingLoss(MultipleNegativesRankingSpec, KerasLoss):
    __doc__ = MultipleNegativesRankingSpec.__doc__

    def call(self, embeddings: Any, labels: Any) -> Any:
        def plan(y: np.ndarray) -> tuple[np.ndarray, ...]:
            return _info_nce_plan(*relation_masks(y, in_batch_negatives=True))

        a, p, allowed = _host(plan, [labels], [tf.int64, tf.int64, tf.bool])
        return _info_nce(self.scale * _cosine_similarity(embeddings), a, p, allowed)


class NTXentLoss(NTXentSpec, KerasLoss):
    __doc__ = NTXentSpec.__doc__

    def call(self, embeddings: Any, labels: Any) -> Any:
        def plan(y: np.ndarray) -> tuple[np.ndarray, ...]:
            positive, _ = relation_masks(y)
            return _info_nce_plan(positive, ~np.eye(len(positive), dtype=bool))

        a, p, allowed = _host(plan, [labels], [tf.int64, tf.int64, tf.bool])
        return _info_nce(_cosine_similarity(embeddings) / self.temperature, a, p, allowed)


class _ClassCentreLoss(KerasLoss):
    """Keras half of ArcFace/CosFace: holds W as a trainable Keras variable and applies the target-logit margin."""

    num_classes: int
    scale: float

    def _create_weight(self, initial: np.ndarray) -> None:
        self.weight = self.add_weight(
            name="weight", shape=initial.shape, dtype="float32",
            initializer=keras.initializers.Constant(initial.copy()), trainable=True,
        )
        self.weight.assign(initial)

    def _target_logit(self, cos_target: Any) -> Any:
        raise NotImplementedError

    def validate_labels(self, labels: np.ndarray) -> None:
        check_class_labels(labels, self.num_classes, self.name)

    def call(self, embeddings: Any, labels: Any) -> Any:
        (y,) = _host(lambda lab: (check_class_labels(lab, self.num_classes, self.name),), [labels], [tf.int64])
        cos = tf.matmul(_normalize(embeddings), _normalize(tf.convert_to_tensor(self.weight)), transpose_b=True)
        index = _pairs(tf.range(tf.shape(y, out_type=tf.int64)[0], dtype=tf.int64), y)
        logits = tf.tensor_scatter_nd_update(cos, index, self._target_logit(tf.gather_nd(cos, index)))
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=self.scale * logits)
        )


class ArcFaceLoss(ArcFaceSpec, _ClassCentreLoss):
    __doc__ = ArcFaceSpec.__doc__

    def _target_logit(self, cos_target: Any) -> Any:
        m = self.margin
        squared = 1.0 - tf.square(cos_target)
        positive = squared > 0
        # sqrt(max(0, 1 - cos^2)) with a 0 (not NaN) gradient where cos is exactly +-1
        sin_target = tf.where(positive, tf.sqrt(tf.where(positive, squared, tf.ones_like(squared))),
                              tf.zeros_like(squared))
        shifted = cos_target * math.cos(m) - sin_target * math.sin(m)  # cos(theta + m)
        return tf.where(cos_target > math.cos(math.pi - m), shifted, cos_target - m * math.sin(m))


class CosFaceLoss(CosFaceSpec, _ClassCentreLoss):
    __doc__ = CosFaceSpec.__doc__

    def _target_logit(self, cos_target: Any) -> Any:
        return cos_target - self.margin
