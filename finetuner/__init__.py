"""Finetuner: turn any deep-learning model into a fine-tuned embedding model for neural search, and serve it.

``import finetuner`` imports no deep-learning framework: each one is imported the first time a model of it is
seen. Entry points: ``finetuner.fit``, ``finetuner.tailor.to_embedding`` / ``display``, ``finetuner.export``,
``finetuner.embed``, ``finetuner.save`` / ``load``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "fit": "finetuner.api",
    "embed": "finetuner.api",
    "export": "finetuner.exporting",
    "save": "finetuner.persistence",
    "load": "finetuner.persistence",
    "history": "finetuner.api",
    "summary": "finetuner.api",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "tailor":
        return importlib.import_module("finetuner.tailor")
    raise AttributeError(f"module 'finetuner' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, "tailor"])
