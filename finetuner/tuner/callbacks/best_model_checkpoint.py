"""Save the model whenever a monitored value improves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuner.tuner.callbacks._monitor import Mode, improved, monitored_value, resolve_mode
from finetuner.tuner.callbacks.base import Callback

if TYPE_CHECKING:
    from finetuner.tuner.base import BaseTuner


class BestModelCheckpoint(Callback):
    """Writes ``<dir>/best_model<suffix>`` (the framework's weights file) and ``best_model.json``
    (epoch and value) each time ``monitor`` improves; files are written atomically."""

    order = 90
    main_rank_only = True

    def __init__(self, dir: str | os.PathLike, monitor: str = "loss", mode: Mode = "auto"):
        self.dir = Path(dir)
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.best: float | None = None

    def on_fit_begin(self, tuner: BaseTuner) -> None:
        self.best = None

    def on_epoch_end(self, tuner: BaseTuner) -> None:
        from tailor_ir.files import atomic_write

        value = monitored_value(tuner, self.monitor, "BestModelCheckpoint")
        if not improved(value, self.best, self.mode):
            return
        self.best = value
        atomic_write(self.model_path(tuner), tuner.save_model)
        info = {"epoch": tuner.state.epoch + 1, "monitor": self.monitor, "value": value}
        atomic_write(
            self.dir / "best_model.json", lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2))
        )

    def model_path(self, tuner: BaseTuner) -> Path:
        return self.dir / f"best_model{tuner.model_suffix}"

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
