"""The PyTorch backend of the tuner: losses and :class:`PytorchTuner`."""

from finetuner.tuner.pytorch.losses import (
    ArcFaceLoss,
    CosFaceLoss,
    MultipleNegativesRankingLoss,
    NTXentLoss,
    SiameseLoss,
    TripletLoss,
)
from finetuner.tuner.pytorch.tuner import PytorchTuner

__all__ = [
    "ArcFaceLoss",
    "CosFaceLoss",
    "MultipleNegativesRankingLoss",
    "NTXentLoss",
    "PytorchTuner",
    "SiameseLoss",
    "TripletLoss",
]
