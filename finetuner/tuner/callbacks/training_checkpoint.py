"""Periodic checkpoints of the whole training state, so that a killed run resumes exactly where it stopped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from finetuner.tuner.callbacks.base import Callback

CHECKPOINT_STEM = "training_checkpoint"

if TYPE_CHECKING:
    from finetuner.tuner.base import BaseTuner


class TrainingCheckpoint(Callback):
    """Writes ``<dir>/training_checkpoint<suffix>`` every ``every_n_batches`` optimiser steps and/or every
    ``every_n_epochs`` epochs (default: each epoch). It holds model, optimiser, scheduler, loss parameters,
    loader (sampler) state, epoch, batch index, callback states and RNG states; resume with
    ``tuner.fit(..., resume_from=dir)``. Runs after every other callback, so their state is included.
    """

    order = 100
    main_rank_only = True

    def __init__(
        self, dir: str | os.PathLike, every_n_batches: int | None = None, every_n_epochs: int | None = 1
    ):
        if every_n_batches is None and every_n_epochs is None:
            raise ValueError("TrainingCheckpoint needs every_n_batches or every_n_epochs")
        for name, value in (("every_n_batches", every_n_batches), ("every_n_epochs", every_n_epochs)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        self.dir = Path(dir)
        self.every_n_batches = every_n_batches
        self.every_n_epochs = every_n_epochs

    def path(self, tuner: BaseTuner) -> Path:
        return self.dir / f"{CHECKPOINT_STEM}{tuner.checkpoint_suffix}"

    def on_train_batch_end(self, tuner: BaseTuner) -> None:
        if self.every_n_batches and tuner.state.global_step % self.every_n_batches == 0:
            tuner.save_checkpoint(self.path(tuner))

    def on_epoch_end(self, tuner: BaseTuner) -> None:
        if self.every_n_epochs and (tuner.state.epoch + 1) % self.every_n_epochs == 0:
            tuner.save_checkpoint(self.path(tuner))
