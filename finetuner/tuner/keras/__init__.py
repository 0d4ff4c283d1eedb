"""The Keras (TensorFlow) backend of the tuner: losses and :class:`KerasTuner`."""

from finetuner.tuner.keras.losses import (
    ArcFaceLoss,
    CosFaceLoss,
    MultipleNegativesRankingLoss,
    NTXentLoss,
    SiameseLoss,
    TripletLoss,
)
from finetuner.tuner.keras.tuner import KerasTuner

__all__ = [
    "ArcFaceLoss",
    "CosFaceLoss",
    "KerasTuner",
    "MultipleNegativesRankingLoss",
    "NTXentLoss",
    "SiameseLoss",
    "TripletLoss",
]
