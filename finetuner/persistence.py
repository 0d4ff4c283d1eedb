"""``finetuner.save`` / ``finetuner.load``: one framework-neutral file for a (tuned) model.

The file is the model's Graph (ONNX with the layer map, trainable and frozen marks, current weights and
BatchNorm statistics as metadata and initializers), so ``load`` gives back a trainable model of the same
framework (or of another one: ``framework='keras'`` loads a torch-made model into Keras). Written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tailor_ir import compiler
from tailor_ir.graph import Graph

__all__ = ["load", "save"]


def save(
    model: Any,
    path: str | os.PathLike,
    input_shape: Sequence[int] | None = None,
    input_dtype: str = "float32",
    sample_input: Any = None,
) -> Path:
    """Save ``model`` (its current weights) to ``path`` (``.onnx``); return the path.

    ``input_shape``/``input_dtype``/``sample_input`` are needed only for models that did not come from
    ``to_embedding``/``fit``/``load`` and whose input cannot be guessed.
    """
    from finetuner.exporting import current_graph

    return current_graph(model, input_shape, input_dtype, sample_input).save(path)


def load(path: str | os.PathLike, framework: str | None = None, check: bool = True) -> Any:
    """Load a model saved by :func:`save` (or any ONNX file) as a trainable model of ``framework``.

    ``framework`` defaults to the one the model was saved from; an ONNX file from elsewhere needs it.
    ``check`` compares the loaded model with onnxruntime. The result works with ``fit``/``export``/``save``.
    """
    from finetuner.tailor import remember_graph

    graph = Graph.load(path)
    framework = framework or graph.framework
    if framework not in compiler.FRAMEWORKS:
        raise ValueError(
            f"{path} does not say which framework to load it into (it says {graph.framework!r}); pass "
            f"framework= one of {', '.join(compiler.FRAMEWORKS)}."
        )
    model = compiler.backend(framework).rehydrate(graph.replace(framework=framework), check=check)
    remember_graph(model, graph.replace(framework=framework))
    return model
