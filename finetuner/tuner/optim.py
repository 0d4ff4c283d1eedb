"""Optimiser and learning-rate schedule choices shared by every backend (plain Python, no framework)."""

from __future__ import annotations

import math
from typing import Any

OPTIMIZERS: dict[str, dict[str, Any]] = {
    "adam": {"weight_decay": 0.0},
    "adamw": {"weight_decay": 0.01},
    "sgd": {"weight_decay": 0.0, "momentum": 0.9},
    "rmsprop": {"weight_decay": 0.0},
}
SCHEDULERS: tuple[str, ...] = ("constant", "linear", "cosine")

__all__ = ["OPTIMIZERS", "SCHEDULERS", "check_optimizer", "check_scheduler", "lr_multiplier"]


def check_optimizer(optimizer: Any) -> None:
    """Accept a name from :data:`OPTIMIZERS` or a callable ``(params, learning_rate) -> optimizer``."""
    if not callable(optimizer) and optimizer not in OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {tuple(OPTIMIZERS)} or a callable (params, learning_rate) -> optimizer, "
            f"got {optimizer!r}"
        )


def check_scheduler(scheduler: str, warmup_steps: int) -> None:
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")


def lr_multiplier(scheduler: str, step: int, warmup_steps: int, total_steps: int) -> float:
    """The factor applied to the base learning rate for optimiser step ``step`` (0-based).

    Warmup: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps. Then ``constant``: 1;
    ``linear``: decays linearly to 0 at ``total_steps``; ``cosine``: ``0.5 * (1 + cos(pi * progress))``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if scheduler == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if scheduler == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))
