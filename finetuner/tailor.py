"""Tailor: turn a general model into an embedding model in the same framework.

``to_embedding`` exports the model to ONNX, cuts it (at a named layer, or where the classifier starts), adds
pooling, a projection to ``output_dim`` and L2 normalisation, marks frozen weights, and rehydrates the graph
into a trainable model of the user's framework, checked against onnxruntime. ``display`` prints the layer
table that tells which layers can be cut at.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from tailor_ir import compiler, samples
from tailor_ir.graph import Graph
from tailor_ir.inspection import LayerRow, format_shape, layer_table
from tailor_ir.passes import POOLING_MODES, embedding_head, validate_output_dim

_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
CHECK_ROWS = 2


def to_embedding(
    model: Any,
    output_dim: int | None = 128,
    layer_name: str | None = None,
    freeze: bool | Sequence[str] = False,
    pooling: str = "auto",
    normalize: bool = True,
    input_shape: Sequence[int] | None = None,
    input_dtype: str = "float32",
    sample_input: Any = None,
) -> Any:
    """Convert ``model`` into a trainable embedding model of the same framework.

    Args:
        model: a ``torch.nn.Module``, ``keras.Model`` or ``paddle.nn.Layer``.
        output_dim: width of a new linear projection; ``None`` keeps the cut's width (no projection).
        layer_name: the layer whose output becomes the embedding (see ``display``); by default the input of
            the final classifier, or the final output for models without one.
        freeze: ``True`` freezes every weight before the new head; a list freezes those layers.
        pooling: ``auto`` | ``mean`` | ``masked_mean`` | ``cls`` | ``flatten`` | ``none``.
        normalize: L2-normalise the embeddings.
        input_shape / input_dtype: one input's shape without the batch axis, when no ``sample_input`` is given.
        sample_input: an example input (tensor, tuple of tensors, or dict of keyword tensors).
    Returns:
        the embedding model, whose output is ``(batch, output_dim)``.
    """
    framework = compiler.require_framework(model)
    if output_dim is not None:
        validate_output_dim(output_dim)
    if pooling not in POOLING_MODES:
        raise ValueError(f"pooling={pooling!r} is not one of {', '.join(POOLING_MODES)}.")
    sample = _sample(model, framework, input_shape, input_dtype, sample_input)
    graph = _export(model, framework, sample)
    embedding = embedding_head(
        graph, layer_name=layer_name, pooling=pooling, output_dim=output_dim, normalize=normalize, freeze=freeze
    )
    feed = None
    if sample is not None:  # the equivalence check needs a couple of rows, not the caller's whole batch
        feed = {k: v[:CHECK_ROWS] if v.ndim else v
                for k, v in samples.as_feed(_numpy_sample(sample), embedding.input_names).items()}
    native = compiler.backend(framework).rehydrate(embedding, check=True, sample_inputs=feed)
    _GRAPHS[native] = embedding
    return native


def graph_of(model: Any) -> Graph | None:
    """The embedding Graph a model was rehydrated from by ``to_embedding`` (None for other models)."""
    try:
        return _GRAPHS.get(model)
    except TypeError:
        return None


def remember_graph(model: Any, graph: Graph) -> None:
    """Record the Graph a native model came from (used by export and the Tuner)."""
    _GRAPHS[model] = graph


def display(
    model: Any,
    input_shape: Sequence[int] | None = None,
    input_dtype: str = "float32",
    sample_input: Any = None,
    show: bool = True,
) -> list[LayerRow]:
    """Print the layer table of a model (or a Graph, or an ``.onnx`` path) and return its rows.

    Columns: layer name (indented by depth), op types, output shape, parameters, trainable, and whether the
    layer's output can be a cut (``layer_name=`` of ``to_embedding``); the default cut is marked.
    """
    graph = _graph_for_display(model, input_shape, input_dtype, sample_input)
    rows = layer_table(graph)
    if show:
        _print_table(graph, rows)
    return rows


def _graph_for_display(model: Any, input_shape, input_dtype, sample_input) -> Graph:
    if isinstance(model, Graph):
        return model
    if isinstance(model, (str, os.PathLike)):
        return Graph.load(model)
    known = graph_of(model)
    if known is not None:
        return known
    return export_graph(model, input_shape, input_dtype, sample_input)


def export_graph(
    model: Any, input_shape: Sequence[int] | None = None, input_dtype: str = "float32", sample_input: Any = None
) -> Graph:
    """Export ``model`` as it is (no surgery) to a Graph with its framework's frontend."""
    framework = compiler.require_framework(model)
    return _export(model, framework, _sample(model, framework, input_shape, input_dtype, sample_input))


def _print_table(graph: Graph, rows: list[LayerRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{graph.framework} model: {len(rows)} layers", show_lines=False)
    for column, justify in (("layer", "left"), ("ops", "left"), ("output shape", "left"), ("params", "right"),
                            ("trainable", "center"), ("cut", "center")):
        table.add_column(column, justify=justify)
    for row in rows:
        ops = ", ".join(row.op_types[:4]) + (", ..." if len(row.op_types) > 4 else "")
        cut = "default" if row.default_cut else ("yes" if row.cut_candidate else "")
        table.add_row("  " * row.depth + row.name, ops, format_shape(row.output_shape), f"{row.params:,}",
                      row.trainable, cut)
    console = Console()
    console.print(table)
    total = sum(int(np.prod(graph.initializers[w].dims)) for w in (graph.weights or ()))
    console.print(f"{total:,} trainable parameters in {len(graph.weights or ())} weights.")
    if graph.extra.get("batchnorm") == "folded":
        console.print(
            "[yellow]Note:[/] the exporter folded BatchNorm into the convolutions: batch statistics stay fixed "
            "when this model is fine-tuned."
        )


def _sample(model: Any, framework: str, input_shape, input_dtype: str, sample_input: Any) -> Any:
    if sample_input is not None:
        return sample_input
    if input_shape is not None:
        return samples.from_shape(tuple(input_shape), input_dtype)
    guess = {"torch": samples.guess_torch, "paddle": samples.guess_paddle, "keras": samples.guess_keras}[framework]
    sample = guess(model)
    if sample is None:
        raise ValueError(
            f"cannot tell what input {type(model).__name__} takes; pass input_shape=(...) (without the batch "
            "axis) or sample_input=<an example batch>."
        )
    return sample


def _numpy_sample(sample: Any) -> Any:
    if isinstance(sample, dict):
        return {k: samples.to_numpy(v) for k, v in sample.items()}
    if isinstance(sample, (tuple, list)):
        return [samples.to_numpy(v) for v in sample]
    return samples.to_numpy(sample)


def _export(model: Any, framework: str, sample: Any) -> Graph:
    return compiler.frontend(framework).export(model, sample_input=_native_sample(sample, framework))


def _native_sample(sample: Any, framework: str) -> Any:
    """Numpy parts of a sample as the framework's tensors (frontends trace with real tensors)."""
    if isinstance(sample, dict):
        return {k: _native_sample(v, framework) for k, v in sample.items()}
    if isinstance(sample, (tuple, list)):
        return tuple(_native_sample(v, framework) for v in sample)
    if not isinstance(sample, np.ndarray):
        return sample
    if framework == "torch":
        from tailor_ir.imports import import_torch

        return import_torch().from_numpy(np.ascontiguousarray(sample))
    if framework == "paddle":
        from tailor_ir.imports import import_paddle

        return import_paddle().to_tensor(sample)
    return sample
