"""Surgery passes on ``Graph``s. Each pass is small and pure; ``embedding_head`` composes them."""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Graph
from ..reference import CUT, register_cut
from .base import Pass, PassResult, Sequential
from .cut import classifier_input, default_cut
from .freeze import Freeze, layer_weights
from .head import HEAD, OUTPUT, POOLING_MODES, Normalize, Pool, Project, Rename, validate_output_dim
from .truncate import Truncate, extract, layer_output, layer_outputs
from .weights import set_initializers

__all__ = [
    "CUT",
    "HEAD",
    "OUTPUT",
    "POOLING_MODES",
    "Freeze",
    "Normalize",
    "Pass",
    "PassResult",
    "Pool",
    "Project",
    "Rename",
    "Sequential",
    "Truncate",
    "classifier_input",
    "default_cut",
    "embedding_head",
    "extract",
    "layer_output",
    "layer_outputs",
    "layer_weights",
    "set_initializers",
]


def embedding_head(
    graph: Graph,
    *,
    layer_name: str | None = None,
    tensor: str | None = None,
    pooling: str = "auto",
    output_dim: int | None = 128,
    normalize: bool = True,
    freeze: bool | Sequence[str] = False,
    seed: int = 0,
) -> Graph:
    """Turn a general model's graph into an embedding graph with one output named ``embedding``.

    Cut at ``layer_name`` (a layer's output), ``tensor`` (a value name) or, with neither, at the input of the
    final classifier (or the final output when there is none); then pool, project to ``output_dim`` (None keeps
    the cut's width), L2-normalise, and mark ``freeze`` (True = all but the new head, or a list of layers).
    ``extra['cut']`` of the result names the tensor of ``graph`` it was cut at.
    """
    if output_dim is not None:
        validate_output_dim(output_dim)
    if layer_name is not None:
        tensor = layer_output(graph, layer_name)
    elif tensor is None:
        tensor = default_cut(graph)
    steps = Sequential(
        Truncate(tensor=tensor),
        Pool(pooling),
        Project(output_dim, seed=seed) if output_dim is not None else None,
        Normalize() if normalize else None,
        Rename(OUTPUT),
        Freeze(freeze),
    )
    embedding = steps.call(graph).graph
    embedding = embedding.replace(extra={**embedding.extra, CUT: tensor})
    register_cut(graph, embedding)  # its equivalence check may reuse the backbone values of ``graph``
    return embedding
