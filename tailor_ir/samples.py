"""Sample inputs: guessed from a model's first layer when the user gives none, and converted to numpy.

``to_embedding(resnet18(), output_dim=128)`` must just work, so when neither ``sample_input`` nor
``input_shape`` is given we look at the model's first weighted layer (without running it) to choose a shape:
a convolution with C input channels -> a (C, 224, 224) image, a linear layer with F inputs -> (F,) vectors, an
embedding table of V rows -> 16 int64 token ids below V, a Hugging Face model -> ``input_ids`` and
``attention_mask``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tailor_ir.graph import Graph

SAMPLE_BATCH = 2
SAMPLE_TOKENS = 16
IMAGE_SIDE = {1: 224, 2: 224, 3: 32}  # spatial size per conv dimensionality (1-D: length)
# ops between an integer input and the Gather it indexes (reshaping, casting, negative-index wrapping)
INDEX_PATH_OPS = frozenset(
    {"Cast", "Unsqueeze", "Reshape", "Identity", "Squeeze", "Flatten", "Less", "Not", "Where", "Add", "Mul"}
)


def _random(shape: Sequence[int], dtype: str, high: int | None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(0, high or 2, size=tuple(shape)).astype(dtype)
    return rng.standard_normal(tuple(shape)).astype(dtype)


def from_shape(input_shape: Sequence[int], input_dtype: str = "float32", batch: int = SAMPLE_BATCH) -> np.ndarray:
    """A random sample of ``input_shape`` (without the batch axis)."""
    if not isinstance(input_shape, (tuple, list)) or not all(
        isinstance(d, (int, np.integer)) and d > 0 for d in input_shape
    ):
        raise ValueError(f"input_shape must be a tuple of positive ints without the batch axis, got {input_shape!r}.")
    return _random((batch, *input_shape), input_dtype, high=2)


def guess_torch(model: object, batch: int = SAMPLE_BATCH) -> np.ndarray | dict[str, np.ndarray] | None:
    """A sample for a torch module from its first conv / linear / embedding layer, or None."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "vocab_size", None):
        ids = _random((batch, SAMPLE_TOKENS), "int64", high=config.vocab_size)
        mask = np.ones_like(ids)
        mask[1:, SAMPLE_TOKENS // 2 :] = 0  # a padded row, so masked pooling is exercised
        return {"input_ids": ids, "attention_mask": mask}
    for module in model.modules():  # type: ignore[attr-defined]
        kind = type(module).__name__
        if kind in ("Conv1d", "Conv2d", "Conv3d"):
            dims = int(kind[4])
            return _random((batch, module.in_channels, *[IMAGE_SIDE[dims]] * dims), "float32", None)
        if kind == "Linear":
            return _random((batch, module.in_features), "float32", None)
        if kind == "Embedding":
            return _random((batch, SAMPLE_TOKENS), "int64", high=module.num_embeddings)
    return None


def guess_paddle(model: object, batch: int = SAMPLE_BATCH) -> np.ndarray | None:
    """A sample for a paddle Layer from its first conv / linear / embedding layer, or None."""
    for layer in model.sublayers(include_self=True):  # type: ignore[attr-defined]
        kind = type(layer).__name__
        if kind in ("Conv1D", "Conv2D", "Conv3D"):
            dims = int(kind[4])
            return _random((batch, layer._in_channels, *[IMAGE_SIDE[dims]] * dims), "float32", None)
        if kind == "Linear":
            return _random((batch, layer.weight.shape[0]), "float32", None)
        if kind == "Embedding":
            return _random((batch, SAMPLE_TOKENS), "int64", high=layer._num_embeddings)
    return None


def guess_keras(model: object, batch: int = SAMPLE_BATCH) -> np.ndarray | list[np.ndarray] | None:
    """A sample for a built Keras model from its declared inputs, or None."""
    try:
        inputs = model.inputs  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        return _guess_built_keras(model, batch)
    samples = []
    for tensor in inputs:
        shape = [d if d is not None else SAMPLE_TOKENS for d in tuple(tensor.shape)[1:]]
        dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
        samples.append(_random((batch, *shape), dtype, high=2))
    return samples[0] if len(samples) == 1 else samples


def _guess_built_keras(model: object, batch: int) -> np.ndarray | None:
    """A float sample for a subclassed Keras model that has been built (called once): the input shape
    Keras recorded when it built the model (``_build_shapes_dict``), batch axis replaced; else None."""
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if len(shapes) != 1:
        return None
    shape = next(iter(shapes.values()))
    if not isinstance(shape, (tuple, list)) or not shape or not all(isinstance(d, int) or d is None for d in shape):
        return None
    dims = [d if d is not None else SAMPLE_TOKENS for d in tuple(shape)[1:]]
    return _random((batch, *dims), "float32", high=2)


def to_numpy(value: object) -> np.ndarray:
    """A torch/tf/paddle tensor or array-like as numpy."""
    if isinstance(value, np.ndarray):
        return value
    for attr in ("detach",):
        if hasattr(value, attr):
            value = value.detach().cpu()
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


def as_feed(sample: object, input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Map a sample (array, tuple/list of arrays, or dict by name) onto the graph's input names."""
    if isinstance(sample, Mapping):
        missing = [n for n in input_names if n not in sample]
        if missing:
            raise ValueError(f"sample_input lacks the model inputs {missing}; it has {list(sample)}.")
        return {n: to_numpy(sample[n]) for n in input_names}
    items = list(sample) if isinstance(sample, (tuple, list)) else [sample]
    if len(items) != len(input_names):
        raise ValueError(f"the model takes {len(input_names)} inputs {input_names}, the sample has {len(items)}.")
    return {n: to_numpy(v) for n, v in zip(input_names, items)}


def random_inputs(graph: Graph, batch: int = 2, seq: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs from a graph's input types (the backends' equivalence checks use them).

    Dynamic axes get ``batch`` (axis 0) or ``seq``; floats are standard normal, booleans all true, ``*mask*``
    inputs ones with the second half of every row after the first masked out (so masked pooling is exercised),
    other integers (token ids) stay below the smallest table each one indexes through Gather.
    """
    import onnx

    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for value in graph.model.graph.input:
        if value.name not in graph.input_names:
            continue
        tt = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (batch if axis == 0 else seq)
                 for axis, d in enumerate(tt.shape.dim)]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[value.name] = np.ones(shape, dtype=bool)
        elif "mask" in value.name.lower():
            mask = np.ones(shape, dtype=dtype)
            if len(shape) >= 2 and shape[0] > 1:
                mask[1:, shape[1] // 2 :] = 0
            feeds[value.name] = mask
        else:
            feeds[value.name] = rng.integers(0, _index_bound(graph, value.name), size=shape).astype(dtype)
    return feeds


def _index_bound(graph: Graph, name: str) -> int:
    """The smallest first dimension of a table this input indexes through Gather (token ids), else 2.

    The path may reshape and cast the ids, and wrap negative ones (tf2onnx: ``Where(Less(i, 0), i + V, i)``).
    """
    bounds = []
    frontier, seen = [name], set()
    while frontier:
        value = frontier.pop()
        if value in seen:
            continue
        seen.add(value)
        for node in graph.consumers.get(value, []):
            if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == value:
                shape = graph.shape_of(node.input[0])
                if shape and isinstance(shape[0], int) and shape[0] > 0:
                    bounds.append(shape[0])
            elif node.op_type in INDEX_PATH_OPS:
                frontier.extend(o for o in node.output if o)
    return min(bounds) if bounds else 2
