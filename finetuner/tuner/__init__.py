"""The tuner: a framework-neutral training loop (:mod:`.base`), numpy miners, shared loss specs, callbacks,
and one backend folder per framework (``pytorch/``, ``keras/``, ``paddle/``), each with the same interface.

Importing this package imports no deep-learning framework; :func:`tuner_class` imports the one asked for.
"""

from __future__ import annotations

import importlib

from finetuner.tuner.base import BaseTuner, TunerState
from finetuner.tuner.miners import PairMiner, TripletMiner

__all__ = ["BaseTuner", "PairMiner", "TripletMiner", "TunerState", "tuner_class"]

_BACKENDS = {
    "torch": ("finetuner.tuner.pytorch", "PytorchTuner"),
    "keras": ("finetuner.tuner.keras", "KerasTuner"),
    "paddle": ("finetuner.tuner.paddle", "PaddleTuner"),
}


def tuner_class(framework: str) -> type[BaseTuner]:
    """The :class:`BaseTuner` subclass for ``framework`` (``torch`` | ``keras`` | ``paddle``)."""
    if framework not in _BACKENDS:
        raise ValueError(f"no tuner for framework {framework!r}; expected one of {', '.join(_BACKENDS)}.")
    module, name = _BACKENDS[framework]
    if framework == "paddle":
        from tailor_ir.imports import import_paddle

        import_paddle()
    elif framework == "keras":
        from tailor_ir.imports import import_keras

        import_keras()
    return getattr(importlib.import_module(module), name)
