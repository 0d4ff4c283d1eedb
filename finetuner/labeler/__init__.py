"""The Labeler: label an unlabelled pool in the browser while the model learns, with active learning.

``finetuner.labeler.run(model, unlabeled_docs, workdir=..., port=..., open_browser=False)`` serves the page and
API on one Jina Flow (loopback by default) and returns the tuned model. The pieces: ``strategies`` (pure numpy
question selection), ``store`` (SQLite labels), ``pool`` (workdir, cards), ``executors``, ``gateway``, ``ui/``.
``import finetuner.labeler`` imports neither Jina nor a deep-learning framework.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "run": "finetuner.labeler.app",
    "Labeler": "finetuner.labeler.app",
    "STRATEGIES": "finetuner.labeler.strategies",
    "select_queries": "finetuner.labeler.strategies",
    "LabelStore": "finetuner.labeler.store",
    "LabelError": "finetuner.labeler.store",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'finetuner.labeler' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
