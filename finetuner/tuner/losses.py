"""The framework-free half of every loss: names, defaults, argument checks and formulas in words.

Each backend's ``losses.py`` subclasses these specs together with its framework's module class
(``class TripletLoss(TripletSpec, torch.nn.Module)``) and writes only the tensor math, so that the
names, arguments, defaults and validation are the same in every backend. Distances, for embeddings x, y:

- ``cosine``: ``1 - <x, y> / (|x| |y|)`` (in [0, 2]);
- ``euclidean``: ``sqrt(max(|x - y|^2, 1e-12))`` (the floor keeps the gradient finite at 0);
- ``sqeuclidean``: ``|x - y|^2``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np

from finetuner.tuner.miners import Miner, PairMiner, TripletMiner

Distance = Literal["cosine", "euclidean", "sqeuclidean"]
DISTANCES: tuple[str, ...] = ("cosine", "euclidean", "sqeuclidean")
EUCLIDEAN_EPS = 1e-12
NORM_EPS = 1e-12

__all__ = [
    "DISTANCES",
    "LOSS_NAMES",
    "ArcFaceSpec",
    "CosFaceSpec",
    "LossSpec",
    "MultipleNegativesRankingSpec",
    "NTXentSpec",
    "SiameseSpec",
    "TripletSpec",
    "check_class_labels",
    "initial_class_weight",
]


def _check_distance(distance: str) -> str:
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    return distance


def _check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    if not (value >= 0 if allow_zero else value > 0) or not math.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return float(value)


def initial_class_weight(num_classes: int, embedding_dim: int, seed: int = 0) -> np.ndarray:
    """The starting (num_classes, embedding_dim) float32 class-centre matrix: Xavier-normal from ``seed``.

    Every backend starts ArcFace/CosFace from this array, so the same seed gives the same loss everywhere.
    """
    std = math.sqrt(2.0 / (num_classes + embedding_dim))
    return (np.random.default_rng(seed).standard_normal((num_classes, embedding_dim)) * std).astype(
        np.float32
    )


def check_class_labels(labels: np.ndarray, num_classes: int, loss: str) -> np.ndarray:
    """Return labels as int64 class ids in ``[0, num_classes)``, or raise an error that says what to pass."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{loss} needs class labels of shape (N,), got {labels.shape}: use class data")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{loss} was built for num_classes={num_classes} but got labels in "
            f"[{labels.min()}, {labels.max()}]: pass num_classes > the largest class id"
        )
    return labels.astype(np.int64)


class LossSpec:
    """Base of the shared specs: cooperative ``__init__`` (calls the framework module's ``__init__`` first)."""

    name: ClassVar[str]
    needs_class_labels: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, for checkpoints and logs."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SiameseSpec(LossSpec):
    """Contrastive loss over mined pairs: mean of ``t * d^2 + (1 - t) * max(0, margin - d)^2``.

    ``t`` is 1 for a positive pair, 0 for a negative one; default miner: every pair
    (``PairMiner('all', 'all')``). A batch with no mined pair gives 0.
    """

    name = "SiameseLoss"

    def __init__(self, distance: Distance = "cosine", margin: float = 1.0, miner: PairMiner | None = None):
        super().__init__()
        self.distance = _check_distance(distance)
        self.margin = _check_positive("margin", margin, allow_zero=True)
        if miner is not None and not isinstance(miner, PairMiner):
            raise TypeError(f"SiameseLoss needs a PairMiner, got {type(miner).__name__}")
        self.miner: Miner = miner or PairMiner("all", "all")

    def get_config(self) -> dict[str, Any]:
        return {"distance": self.distance, "margin": self.margin, "miner": self.miner}


class TripletSpec(LossSpec):
    """Triplet margin loss over mined triplets: mean of ``max(0, d(a, p) - d(a, n) + margin)``.

    Default miner: all positives, semihard negatives with the loss's margin
    (``TripletMiner('all', 'semihard', margin)``). A batch with no mined triplet gives 0.
    """

    name = "TripletLoss"

    def __init__(self, distance: Distance = "cosine", margin: float = 0.2, miner: TripletMiner | None = None):
        super().__init__()
        self.distance = _check_distance(distance)
        self.margin = _check_positive("margin", margin, allow_zero=True)
        if miner is not None and not isinstance(miner, TripletMiner):
            raise TypeError(f"TripletLoss needs a TripletMiner, got {type(miner).__name__}")
        self.miner: Miner = miner or TripletMiner("all", "semihard", margin=self.margin)

    def get_config(self) -> dict[str, Any]:
        return {"distance": self.distance, "margin": self.margin, "miner": self.miner}


class MultipleNegativesRankingSpec(LossSpec):
    """InfoNCE with in-batch negatives, over cosine similarity ``s``.

    For every anchor a and positive p (same label; for session data a query and its positives),
    ``-log(exp(scale * s(a, p)) / (exp(scale * s(a, p)) + sum_n exp(scale * s(a, n))))`` where n runs over
    a's in-batch negatives (different label; for session data every non-query row that is not a's positive).
    Mean over the (a, p) pairs; 0 when the batch has none.
    """

    name = "MultipleNegativesRankingLoss"

    def __init__(self, scale: float = 20.0):
        super().__init__()
        self.scale = _check_positive("scale", scale)

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale}


class NTXentSpec(LossSpec):
    """SimCLR's NT-Xent: views sharing an id are positives, cosine similarity ``s``, temperature ``tau``.

    For every ordered positive pair (i, p): ``-log(exp(s(i, p) / tau) / sum_{k != i} exp(s(i, k) / tau))``;
    mean over the pairs; 0 when the batch has none.
    """

    name = "NTXentLoss"

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = _check_positive("temperature", temperature)

    def get_config(self) -> dict[str, Any]:
        return {"temperature": self.temperature}


class _ClassCentreSpec(LossSpec):
    """Shared by ArcFace and CosFace: a learnable (num_classes, embedding_dim) class-centre matrix W.

    The backend class (later in the MRO) provides ``_create_weight(initial)``, which stores the array as its
    trainable parameter ``self.weight``.
    """

    needs_class_labels = True

    def __init__(self, num_classes: int, embedding_dim: int, margin: float, scale: float, seed: int = 0):
        super().__init__()
        if int(num_classes) < 2 or int(embedding_dim) < 1:
            raise ValueError(
                f"{self.name} needs num_classes >= 2 and embedding_dim >= 1, got {num_classes}, {embedding_dim}"
            )
        self.num_classes = int(num_classes)
        self.embedding_dim = int(embedding_dim)
        self.margin = _check_positive("margin", margin, allow_zero=True)
        self.scale = _check_positive("scale", scale)
        self.seed = int(seed)
        self._create_weight(initial_class_weight(self.num_classes, self.embedding_dim, self.seed))

    def get_config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "embedding_dim": self.embedding_dim,
            "margin": self.margin,
            "scale": self.scale,
            "seed": self.seed,
        }


class ArcFaceSpec(_ClassCentreSpec):
    """Additive angular margin (ArcFace): cross-entropy over ``scale * cos(theta_j)`` with the true class's
    logit replaced by ``scale * cos(theta_y + margin)``, where ``cos(theta_j) = <x/|x|, W_j/|W_j|>``.

    Where ``theta_y + margin > pi`` (``cos(theta_y) <= cos(pi - margin)``) the target logit is
    ``scale * (cos(theta_y) - margin * sin(margin))`` instead, which keeps it decreasing in theta.
    """

    name = "ArcFaceLoss"

    def __init__(
        self, num_classes: int, embedding_dim: int, margin: float = 0.5, scale: float = 64.0, seed: int = 0
    ):
        super().__init__(num_classes, embedding_dim, margin, scale, seed)


class CosFaceSpec(_ClassCentreSpec):
    """Large margin cosine loss (CosFace): cross-entropy over ``scale * cos(theta_j)`` with the true class's
    logit ``scale * (cos(theta_y) - margin)``."""

    name = "CosFaceLoss"

    def __init__(
        self, num_classes: int, embedding_dim: int, margin: float = 0.35, scale: float = 64.0, seed: int = 0
    ):
        super().__init__(num_classes, embedding_dim, margin, scale, seed)


LOSS_NAMES: tuple[str, ...] = (
    "SiameseLoss",
    "TripletLoss",
    "MultipleNegativesRankingLoss",
    "NTXentLoss",
    "ArcFaceLoss",
    "CosFaceLoss",
)
