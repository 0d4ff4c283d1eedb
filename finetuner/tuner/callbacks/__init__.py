"""Callbacks for the tuner: one small module each, all over :class:`Callback`."""

from finetuner.tuner.callbacks.base import Callback
from finetuner.tuner.callbacks.best_model_checkpoint import BestModelCheckpoint
from finetuner.tuner.callbacks.early_stopping import EarlyStopping
from finetuner.tuner.callbacks.evaluation import EvaluationCallback
from finetuner.tuner.callbacks.metrics_logger import MetricsLogger
from finetuner.tuner.callbacks.progress_bar import ProgressBar
from finetuner.tuner.callbacks.training_checkpoint import TrainingCheckpoint
from finetuner.tuner.callbacks.training_plot import TrainingPlot

__all__ = [
    "BestModelCheckpoint",
    "Callback",
    "EarlyStopping",
    "EvaluationCallback",
    "MetricsLogger",
    "ProgressBar",
    "TrainingCheckpoint",
    "TrainingPlot",
]
