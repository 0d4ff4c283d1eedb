"""PaddlePaddle losses: the tensor math of the specs in :mod:`finetuner.tuner.losses` (names, defaults, formulas).

Each class subclasses the framework-free spec and ``paddle.nn.Layer``, exactly as the PyTorch losses subclass
the spec and ``torch.nn.Module``; the miners are the shared numpy ones, so both backends pick the same pairs and
triplets for the same batch and distances. Paddle is imported through :mod:`tailor_ir.imports` (RTLD_DEEPBIND).
"""

from __future__ import annotations

import math
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
from tailor_ir.imports import import_paddle

paddle = import_paddle()
F = paddle.nn.functional

__all__ = [
    "ArcFaceLoss",
    "CosFaceLoss",
    "MultipleNegativesRankingLoss",
    "NTXentLoss",
    "SiameseLoss",
    "TripletLoss",
    "pairwise_distance",
]


def _labels_numpy(labels: Any) -> np.ndarray:
    if isinstance(labels, paddle.Tensor):
        return labels.numpy()
    return np.asarray(labels)


def _float32(x: Any) -> Any:
    return x if x.dtype == paddle.float32 else x.astype("float32")


def _unit(x: Any) -> Any:
    return F.normalize(x, p=2, axis=1, epsilon=NORM_EPS)


def _cosine_similarity(x: Any) -> Any:
    unit = _unit(x)
    return paddle.matmul(unit, unit, transpose_y=True)


def pairwise_distance(x: Any, distance: str) -> Any:
    """(N, N) distances between the rows of ``x`` (see :mod:`finetuner.tuner.losses` for the definitions)."""
    if distance == "cosine":
        return 1.0 - _cosine_similarity(x)
    # exact differences, not |x|^2 + |y|^2 - 2<x, y> (which cancels badly for close points)
    squared = (x.unsqueeze(1) - x.unsqueeze(0)).square().sum(axis=-1)
    if distance == "sqeuclidean":
        return squared
    # sqrt(max(d^2, eps)) == max(d, sqrt(eps)) in value; the gradient is 0 (not NaN) on the diagonal
    return paddle.maximum(squared, paddle.full([], EUCLIDEAN_EPS, squared.dtype)).sqrt()


def _pick(matrix: Any, rows: np.ndarray, cols: np.ndarray) -> Any:
    """``matrix[rows[k], cols[k]]`` for every k, differentiably."""
    index = paddle.to_tensor(np.stack([rows, cols], axis=1).astype(np.int64), place=matrix.place)
    return paddle.gather_nd(matrix, index)


def _zero(value: Any) -> Any:
    """A 0 loss that still has a gradient path to the embeddings."""
    return value.sum() * 0.0


class SiameseLoss(SiameseSpec, paddle.nn.Layer):
    __doc__ = SiameseSpec.__doc__

    def forward(self, embeddings: Any, labels: Any) -> Any:
        dist = pairwise_distance(_float32(embeddings), self.distance)
        i, j, target = self.miner(_labels_numpy(labels), dist.detach().numpy())
        if len(i) == 0:
            return _zero(dist)
        d = _pick(dist, i, j)
        t = paddle.to_tensor(np.asarray(target, dtype=np.float32), place=d.place)
        return (t * d.square() + (1 - t) * F.relu(self.margin - d).square()).mean()


class TripletLoss(TripletSpec, paddle.nn.Layer):
    __doc__ = TripletSpec.__doc__

    def forward(self, embeddings: Any, labels: Any) -> Any:
        dist = pairwise_distance(_float32(embeddings), self.distance)
        a, p, n = self.miner(_labels_numpy(labels), dist.detach().numpy())
        if len(a) == 0:
            return _zero(dist)
        return F.relu(_pick(dist, a, p) - _pick(dist, a, n) + self.margin).mean()


def _info_nce(logits: Any, positive: np.ndarray, candidates: np.ndarray) -> Any:
    """Mean over positive pairs (a, p) of ``-log softmax`` of logit (a, p) among a's ``candidates`` plus p."""
    a, p = np.nonzero(positive)
    if len(a) == 0:
        return _zero(logits)
    allowed = candidates[a].copy()  # (P, N)
    allowed[np.arange(len(a)), p] = True
    rows = paddle.gather(logits, paddle.to_tensor(a.astype(np.int64), place=logits.place), axis=0)
    mask = paddle.to_tensor(allowed, place=logits.place)
    rows = paddle.where(mask, rows, paddle.full_like(rows, -math.inf))
    return (paddle.logsumexp(rows, axis=1) - _pick(logits, a, p)).mean()


class MultipleNegativesRankingLoss(MultipleNegativesRankingSpec, paddle.nn.Layer):
    __doc__ = MultipleNegativesRankingSpec.__doc__

    def forward(self, embeddings: Any, labels: Any) -> Any:
        positive, negative = relation_masks(_labels_numpy(labels), in_batch_negatives=True)
        return _info_nce(self.scale * _cosine_similarity(_float32(embeddings)), positive, negative)


class NTXentLoss(NTXentSpec, paddle.nn.Layer):
    __doc__ = NTXentSpec.__doc__

    def forward(self, embeddings: Any, labels: Any) -> Any:
        positive, _ = relation_masks(_labels_numpy(labels))
        others = ~np.eye(len(positive), dtype=bool)
        return _info_nce(_cosine_similarity(_float32(embeddings)) / self.temperature, positive, others)


class _ClassCentreLoss(paddle.nn.Layer):
    """Paddle half of ArcFace/CosFace: holds W as a trainable parameter and applies the target-logit margin."""

    num_classes: int
    scale: float
    name: str

    def _create_weight(self, initial: np.ndarray) -> None:
        weight = self.create_parameter(
            shape=list(initial.shape), dtype="float32",
            default_initializer=paddle.nn.initializer.Constant(0.0),
        )
        weight.set_value(initial)
        self.weight = weight

    def _target_logit(self, cos_target: Any) -> Any:
        raise NotImplementedError

    def forward(self, embeddings: Any, labels: Any) -> Any:
        y = check_class_labels(_labels_numpy(labels), self.num_classes, self.name)
        cos = paddle.matmul(_unit(_float32(embeddings)), _unit(self.weight), transpose_y=True)
        rows = np.arange(len(y))
        target = self._target_logit(_pick(cos, rows, y))
        onehot = np.zeros(cos.shape, dtype=bool)
        onehot[rows, y] = True
        logits = paddle.where(
            paddle.to_tensor(onehot, place=cos.place), target.unsqueeze(1).expand_as(cos), cos
        )
        label = paddle.to_tensor(y, place=cos.place)
        return F.cross_entropy(self.scale * logits, label)


class ArcFaceLoss(ArcFaceSpec, _ClassCentreLoss):
    __doc__ = ArcFaceSpec.__doc__

    def _target_logit(self, cos_target: Any) -> Any:
        m = self.margin
        squared = 1.0 - cos_target.square()
        positive = squared > 0
        # sqrt(max(0, 1 - cos^2)) with a 0 (not NaN) gradient where cos is exactly +-1
        sin_target = paddle.where(positive, paddle.where(positive, squared, paddle.ones_like(squared)).sqrt(),
                                  paddle.zeros_like(squared))
        shifted = cos_target * math.cos(m) - sin_target * math.sin(m)  # cos(theta + m)
        return paddle.where(cos_target > math.cos(math.pi - m), shifted, cos_target - m * math.sin(m))


class CosFaceLoss(CosFaceSpec, _ClassCentreLoss):
    __doc__ = CosFaceSpec.__doc__

    def _target_logit(self, cos_target: Any) -> Any:
        return cos_target - self.margin
