"""Stop when a monitored value has not improved for ``patience`` epochs; optionally restore the best weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from finetuner.tuner.callbacks._monitor import Mode, improved, monitored_value, resolve_mode
from finetuner.tuner.callbacks.base import Callback

if TYPE_CHECKING:
    from finetuner.tuner.base import BaseTuner


class EarlyStopping(Callback):
    """Sets ``tuner.state.stop_training`` after ``patience`` epochs without an improvement of ``monitor``.

    ``mode='auto'``: lower is better for names containing 'loss', higher otherwise. With ``restore_best``
    the model gets the weights of its best epoch back when fitting ends. ``patience=None`` never stops: every
    epoch runs and the callback only keeps (and restores) the best one.
    """

    def __init__(
        self,
        monitor: str = "loss",
        patience: int | None = 2,
        mode: Mode = "auto",
        min_delta: float = 0.0,
        restore_best: bool = True,
    ):
        if patience is not None and patience < 0:
            raise ValueError(f"patience must be >= 0 or None, got {patience}")
        self.monitor = monitor
        self.patience = None if patience is None else int(patience)
        self.mode = resolve_mode(monitor, mode)
        self.min_delta = float(min_delta)
        self.restore_best = restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: dict[str, np.ndarray] | None = None
        self.stopped_epoch: int | None = None

    def on_fit_begin(self, tuner: BaseTuner) -> None:
        self.best, self.best_epoch, self.wait, self.best_weights, self.stopped_epoch = (
            None,
            None,
            0,
            None,
            None,
        )

    def on_epoch_end(self, tuner: BaseTuner) -> None:
        value = monitored_value(tuner, self.monitor, "EarlyStopping")
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, tuner.state.epoch + 1, 0
            if self.restore_best:
                self.best_weights = tuner.get_weights()
            return
        self.wait += 1
        if self.patience is not None and self.wait > self.patience:
            tuner.state.stop_training = True
            self.stopped_epoch = tuner.state.epoch + 1

    def on_fit_end(self, tuner: BaseTuner) -> None:
        if self.restore_best and self.best_weights is not None:
            tuner.set_weights(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.best_weights = state["wait"], state["best_weights"]
