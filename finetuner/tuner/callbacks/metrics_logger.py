"""Write the per-epoch loss and metrics as CSV and JSON after every epoch."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from finetuner.tuner.callbacks.base import Callback

if TYPE_CHECKING:
    from finetuner.tuner.base import BaseTuner


class MetricsLogger(Callback):
    """Rewrites ``<path>.csv`` and ``<path>.json`` (one row/object per epoch) atomically after each epoch.

    ``path`` is a file stem (``runs/metrics`` or ``runs/metrics.csv``) or an existing directory
    (then ``<dir>/metrics.csv`` and ``<dir>/metrics.json``).
    """

    main_rank_only = True

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if path.is_dir():
            path = path / "metrics"
        self.stem = path.with_suffix("") if path.suffix in (".csv", ".json") else path

    @property
    def csv_path(self) -> Path:
        return self.stem.with_name(self.stem.name + ".csv")

    @property
    def json_path(self) -> Path:
        return self.stem.with_name(self.stem.name + ".json")

    def on_epoch_end(self, tuner: BaseTuner) -> None:
        from tailor_ir.files import atomic_write

        records = tuner.state.records
        columns = list(dict.fromkeys(name for record in records for name in record))

        def write_csv(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(records)

        atomic_write(self.csv_path, write_csv)
        atomic_write(self.json_path, lambda tmp: Path(tmp).write_text(json.dumps(records, indent=2)))
