"""``fit``'s defaults: the optimisation recipe by what the model is, the schedule by steps and data size.

Two recipes, chosen from evidence (``benchmarks/fit_quality.py`` for the from-scratch net on digits,
``benchmarks/fit_text.py`` for the pretrained all-MiniLM-L6-v2 on WordNet pairs):

- a **pretrained encoder** (a model with at least :data:`PRETRAINED_MIN_PARAMETERS` trainable parameters —
  nobody trains a million-parameter network from random weights with two arguments): AdamW at 5e-5, weight
  decay 0.01, linear warm-up over the first 10% of the steps then linear decay to 0 (the BERT /
  sentence-transformers recipe); one epoch, or as many as give at least 100 steps, at most 10;
- a **small network from random weights**: Adam at 3e-3, cosine decay, no warm-up; as many epochs as give at
  least 2,000 steps, at most 20 (on digits' closed split with 20% of the items held out for selection and every
  epoch run, 3e-3 reaches mAP@R 0.943 over 10 seeds where 1e-3, pytorch-metric-learning's rate, reaches 0.935,
  higher on 6 seeds of 10; benchmarks/results/fit_quality.md has the 3e-3 row).

Every value can be overridden by passing it to ``fit``; :func:`resolve` fills only what was left as None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

PRETRAINED_MIN_PARAMETERS = 1_000_000

__all__ = [
    "PRETRAINED",
    "PRETRAINED_MIN_PARAMETERS",
    "SCRATCH",
    "Recipe",
    "count_parameters",
    "is_pretrained",
    "resolve",
]


@dataclass(frozen=True)
class Recipe:
    """An optimisation recipe: optimiser, learning rate, schedule and how many steps/epochs."""

    name: str
    optimizer: str
    learning_rate: float
    weight_decay: float
    scheduler: str
    warmup_fraction: float
    min_steps: int
    max_epochs: int
    epochs: int | None = None
    warmup_steps: int = 0

    def epochs_for(self, steps_per_epoch: int) -> int:
        """At least one epoch and ``min_steps`` steps, at most ``max_epochs`` epochs."""
        return int(min(self.max_epochs, max(1, math.ceil(self.min_steps / max(1, steps_per_epoch)))))

    def describe(self) -> str:
        return (
            f"{self.name} recipe: {self.optimizer} lr={self.learning_rate:g}, {self.scheduler} schedule, "
            f"{self.warmup_steps} warm-up steps, {self.epochs} epoch(s)"
        )


PRETRAINED = Recipe("pretrained", "adamw", 5e-5, 0.01, "linear", 0.1, min_steps=100, max_epochs=10)
SCRATCH = Recipe("from-scratch", "adam", 3e-3, 0.0, "cosine", 0.0, min_steps=2000, max_epochs=20)


def count_parameters(model: Any) -> int:
    """Trainable parameters of a torch module, paddle layer or keras model."""
    if hasattr(model, "trainable_weights") and not hasattr(model, "parameters"):  # keras
        return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    total = 0
    for p in model.parameters():
        if getattr(p, "requires_grad", not getattr(p, "stop_gradient", False)):
            total += int(p.numel()) if callable(getattr(p, "numel", None)) else int(np.prod(p.shape))
    return total


def is_pretrained(model: Any) -> bool:
    """Whether ``model`` counts as a pretrained encoder (at least :data:`PRETRAINED_MIN_PARAMETERS` trainable
    parameters; frozen ones do not count): the one rule behind ``fit``'s recipe and the Labeler's fits."""
    return count_parameters(model) >= PRETRAINED_MIN_PARAMETERS


def resolve(
    model: Any,
    steps_per_epoch: int,
    *,
    optimizer: str | None,
    learning_rate: float | None,
    weight_decay: float | None,
    scheduler: str | None,
    warmup_steps: int | None,
    epochs: int | None,
) -> Recipe:
    """The recipe for ``model`` with the user's values (non-None) kept and the rest from the default recipe."""
    base = PRETRAINED if is_pretrained(model) else SCRATCH
    epochs = base.epochs_for(steps_per_epoch) if epochs is None else int(epochs)
    total = epochs * steps_per_epoch
    return replace(
        base,
        optimizer=base.optimizer if optimizer is None else optimizer,
        learning_rate=base.learning_rate if learning_rate is None else learning_rate,
        weight_decay=base.weight_decay if weight_decay is None else weight_decay,
        scheduler=base.scheduler if scheduler is None else scheduler,
        epochs=epochs,
        warmup_steps=int(base.warmup_fraction * total) if warmup_steps is None else int(warmup_steps),
    )
