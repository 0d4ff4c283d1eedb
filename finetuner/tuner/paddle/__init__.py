"""The PaddlePaddle backend of the tuner: losses and :class:`PaddleTuner` (paddle imported with RTLD_DEEPBIND)."""

from finetuner.tuner.paddle.losses import (
    ArcFaceLoss,
    CosFaceLoss,
    MultipleNegativesRankingLoss,
    NTXentLoss,
    SiameseLoss,
    TripletLoss,
)
from finetuner.tuner.paddle.tuner import PaddleTuner

__all__ = [
    "ArcFaceLoss",
    "CosFaceLoss",
    "MultipleNegativesRankingLoss",
    "NTXentLoss",
    "PaddleTuner",
    "SiameseLoss",
    "TripletLoss",
]
