"""Serving exported embedding models: a Jina Executor, Flow builders and deployment configs.

``import finetuner.serving`` is cheap; Jina is imported when a name that needs it is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "OnnxEmbedder": "finetuner.serving.executor",
    "EmbeddingRuntime": "finetuner.serving.model",
    "ModelFileError": "finetuner.serving.model",
    "DocumentError": "finetuner.serving.model",
    "check_model_file": "finetuner.serving.model",
    "build_flow": "finetuner.serving.flow",
    "Flow": "finetuner.serving.flow",
    "serve": "finetuner.serving.flow",
    "endpoints": "finetuner.serving.flow",
    "prepare_jina": "finetuner.serving.jina_env",
    "export_kubernetes": "finetuner.serving.deploy",
    "export_docker_compose": "finetuner.serving.deploy",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'finetuner.serving' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
