"""Dispatch to the frontend and backend of a model's framework (each imported only when needed)."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import ModelTypeError
from .imports import FRAMEWORKS, framework_of

MODEL_TYPES = "a torch.nn.Module, a keras.Model or a paddle.nn.Layer"


def require_framework(model: object) -> str:
    """The model's framework, or a ModelTypeError that says what is accepted."""
    framework = framework_of(model)
    if framework is None:
        raise ModelTypeError(f"expected {MODEL_TYPES}, got {type(model).__module__}.{type(model).__qualname__}.")
    return framework


def frontend(framework: str) -> ModuleType:
    """The module with ``export(model, sample_input, input_shape, input_dtype) -> Graph``."""
    _known(framework)
    return importlib.import_module(f"tailor_ir.frontends.{framework}")


def backend(framework: str) -> ModuleType:
    """The module with ``rehydrate(graph, check, sample_inputs) -> native model``."""
    _known(framework)
    return importlib.import_module(f"tailor_ir.backends.{framework}")


def _known(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}.")
