"""Read the current values of a rehydrated model's graph initializers (to write trained values back to ONNX)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ModelTypeError
from .layer import LAYER_NAME, OnnxGraphLayer


def _graph_layers(model: Any) -> list[OnnxGraphLayer]:
    if isinstance(model, OnnxGraphLayer):
        return [model]
    try:
        layer = model.get_layer(LAYER_NAME)
        if isinstance(layer, OnnxGraphLayer):
            return [layer]
    except (ValueError, AttributeError):
        pass
    flatten = getattr(model, "_flatten_layers", None)
    return [lyr for lyr in flatten(include_self=False)] if flatten is not None else []


def current_initializers(model: Any) -> dict[str, np.ndarray]:
    """ONNX initializer name -> current value of every initializer the model holds as state.

    That is every trainable and frozen weight and every BatchNormalization moving mean/variance of the
    model's :class:`OnnxGraphLayer` (a model from ``rehydrate`` / ``finetuner.tailor.to_embedding``, or one
    that wraps such a model), as numpy arrays of the initializer's dtype and shape. Constants the graph
    layer folded are not state and are not returned: the graph's own values still hold for them.
    """
    layers = [lyr for lyr in _graph_layers(model) if isinstance(lyr, OnnxGraphLayer)]
    if len(layers) != 1:
        what = "no" if not layers else f"{len(layers)}"
        raise ModelTypeError(
            f"{type(model).__qualname__} holds {what} rehydrated ONNX graph layer(s); current_initializers "
            "needs a model from tailor_ir.backends.keras.rehydrate or finetuner.tailor.to_embedding."
        )
    return {name: np.array(var.numpy()) for name, var in layers[0].weight_names.items()}
