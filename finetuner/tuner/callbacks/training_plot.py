"""Draw the per-epoch loss and metrics into a PNG after every epoch (matplotlib, Agg canvas)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from finetuner.tuner.callbacks.base import Callback

if TYPE_CHECKING:
    from finetuner.tuner.base import BaseTuner


class TrainingPlot(Callback):
    """Rewrites the PNG at ``path`` after each epoch: one panel for the loss, one per metric."""

    main_rank_only = True

    def __init__(self, path: str | os.PathLike, dpi: int = 100, columns: int = 4):
        self.path = Path(path)
        self.dpi = dpi
        self.columns = max(1, int(columns))

    def on_epoch_end(self, tuner: BaseTuner) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from tailor_ir.files import atomic_write

        history = tuner.state.history
        epochs = history.pop("epoch")
        columns = min(self.columns, len(history))
        rows = -(-len(history) // columns)
        figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
        FigureCanvasAgg(figure)
        for i, (name, values) in enumerate(history.items(), start=1):
            axes = figure.add_subplot(rows, columns, i)
            axes.plot(epochs, values, marker="o", markersize=3)
            axes.set_title(name)
            axes.set_xlabel("epoch")
            axes.grid(alpha=0.3)
        atomic_write(self.path, lambda tmp: figure.savefig(tmp, format="png", dpi=self.dpi))
