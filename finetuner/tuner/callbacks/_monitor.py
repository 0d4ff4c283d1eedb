"""Shared by callbacks that watch one value: resolve it from the tuner state and compare improvements."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from finetuner.tuner.base import BaseTuner

Mode = Literal["auto", "min", "max"]


def resolve_mode(monitor: str, mode: str) -> str:
    """``auto`` means ``min`` for names containing 'loss' and ``max`` otherwise."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "min" if "loss" in monitor else "max"
    return mode


def monitored_value(tuner: BaseTuner, monitor: str, owner: str) -> float:
    """The value of ``monitor`` in the latest epoch record; raises naming the values that exist."""
    record = tuner.state.records[-1]
    if monitor not in record:
        raise KeyError(
            f"{owner} monitors {monitor!r}, but this epoch recorded only {sorted(record)}: pass one of those "
            "as monitor= (metrics need eval_data)"
        )
    return float(record[monitor])


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta
