"""PyTorch losses: the tensor math of the specs in :mod:`finetuner.tuner.losses` (names, defaults, formulas)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy()
    return np.asarray(labels)


def _cosine_similarity(x: torch.Tensor) -> torch.Tensor:
    unit = F.normalize(x, dim=1, eps=NORM_EPS)
    return unit @ unit.T


def pairwise_distance(x: torch.Tensor, distance: str) -> torch.Tensor:
    """(N, N) distances between the rows of ``x`` (see :mod:`finetuner.tuner.losses` for the definitions)."""
    if distance == "cosine":
        return 1.0 - _cosine_similarity(x)
    # exact differences, not |x|^2 + |y|^2 - 2<x, y> (which cancels badly for close points)
    exact = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
    if distance == "sqeuclidean":
        return exact.pow(2)
    return exact.clamp_min(math.sqrt(EUCLIDEAN_EPS))


def _index(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.long, device=device)


class SiameseLoss(SiameseSpec, nn.Module):
    __doc__ = SiameseSpec.__doc__

    def forward(self, embeddings: torch.Tensor, labels: Any) -> torch.Tensor:
        dist = pairwise_distance(embeddings.float(), self.distance)
        i, j, target = self.miner(_labels_numpy(labels), dist.detach().cpu().numpy())
        if len(i) == 0:
            return dist.sum() * 0.0
        device = dist.device
        d = dist[_index(i, device), _index(j, device)]
        t = torch.as_tensor(target, dtype=d.dtype, device=device)
        return (t * d.pow(2) + (1 - t) * F.relu(self.margin - d).pow(2)).mean()


class TripletLoss(TripletSpec, nn.Module):
    __doc__ = TripletSpec.__doc__

    def forward(self, embeddings: torch.Tensor, labels: Any) -> torch.Tensor:
        dist = pairwise_distance(embeddings.float(), self.distance)
        a, p, n = self.miner(_labels_numpy(labels), dist.detach().cpu().numpy())
        if len(a) == 0:
            return dist.sum() * 0.0
        device = dist.device
        a, p, n = _index(a, device), _index(p, device), _index(n, device)
        return F.relu(dist[a, p] - dist[a, n] + self.margin).mean()


def _info_nce(logits: torch.Tensor, positive: np.ndarray, candidates: np.ndarray) -> torch.Tensor:
    """Mean over positive pairs (a, p) of ``-log softmax`` of logit (a, p) among a's ``candidates`` plus p."""
    a, p = np.nonzero(positive)
    if len(a) == 0:
        return logits.sum() * 0.0
    device = logits.device
    allowed = torch.as_tensor(candidates, device=device)[_index(a, device)]  # (P, N)
    allowed[torch.arange(len(a), device=device), _index(p, device)] = True
    rows = logits[_index(a, device)].masked_fill(~allowed, -math.inf)
    return (torch.logsumexp(rows, dim=1) - logits[_index(a, device), _index(p, device)]).mean()


class MultipleNegativesRankingLoss(MultipleNegativesRankingSpec, nn.Module):
    __doc__ = MultipleNegativesRankingSpec.__doc__

    def forward(self, embeddings: torch.Tensor, labels: Any) -> torch.Tensor:
        positive, negative = relation_masks(_labels_numpy(labels), in_batch_negatives=True)
        return _info_nce(self.scale * _cosine_similarity(embeddings.float()), positive, negative)


class NTXentLoss(NTXentSpec, nn.Module):
    __doc__ = NTXentSpec.__doc__

    def forward(self, embeddings: torch.Tensor, labels: Any) -> torch.Tensor:
        positive, _ = relation_masks(_labels_numpy(labels))
        others = ~np.eye(len(positive), dtype=bool)
        return _info_nce(_cosine_similarity(embeddings.float()) / self.temperature, positive, others)


class _ClassCentreLoss(nn.Module):
    """Torch half of ArcFace/CosFace: holds W as an ``nn.Parameter`` and applies the target-logit margin."""

    num_classes: int
    scale: float
    name: str

    def _create_weight(self, initial: np.ndarray) -> None:
        self.weight = nn.Parameter(torch.from_numpy(initial.copy()))

    def _target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: Any) -> torch.Tensor:
        y = check_class_labels(_labels_numpy(labels), self.num_classes, self.name)
        target = torch.as_tensor(y, device=embeddings.device)
        cos = (
            F.normalize(embeddings.float(), dim=1, eps=NORM_EPS)
            @ F.normalize(self.weight, dim=1, eps=NORM_EPS).T
        )
        rows = torch.arange(len(y), device=embeddings.device)
        logits = cos.clone()
        logits[rows, target] = self._target_logit(cos[rows, target])
        return F.cross_entropy(self.scale * logits, target)


class ArcFaceLoss(ArcFaceSpec, _ClassCentreLoss):
    __doc__ = ArcFaceSpec.__doc__

    def _target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        m = self.margin
        sin_target = (1.0 - cos_target.pow(2)).clamp_min(0.0).sqrt()
        shifted = cos_target * math.cos(m) - sin_target * math.sin(m)  # cos(theta + m)
        return torch.where(cos_target > math.cos(math.pi - m), shifted, cos_target - m * math.sin(m))


class CosFaceLoss(CosFaceSpec, _ClassCentreLoss):
    __doc__ = CosFaceSpec.__doc__

    def _target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        return cos_target - self.margin
