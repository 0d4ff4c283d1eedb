"""The layer table: what a user needs to pick a cut (name, ops, output shape, parameters, trainable, cut)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from .errors import TailorError
from .graph import Graph
from .passes.cut import default_cut
from .passes.truncate import layer_outputs


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One row of the layer table."""

    name: str
    depth: int
    op_types: tuple[str, ...]
    output: str | None
    output_shape: tuple | None
    params: int
    trainable: str  # 'yes', 'no', 'partly' or '' (no weights)
    cut_candidate: bool
    default_cut: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def layer_table(graph: Graph) -> list[LayerRow]:
    """One row per layer (ancestors first, in the order layers first compute something)."""
    weights = graph.weights or frozenset()
    sizes = {name: int(np.prod(graph.initializers[name].dims, dtype=np.int64)) for name in weights}
    try:
        default = default_cut(graph)
    except TailorError:
        default = None
    rows = []
    for layer in graph.layer_names:
        nodes = graph.nodes_of_layer(layer)
        ops = Counter(_op_label(n) for n in nodes)
        layer_w = {name for n in nodes for name in n.input if name in weights}
        params = sum(sizes[w] for w in layer_w)
        frozen = layer_w & graph.frozen
        trainable = "" if not layer_w else "no" if frozen == layer_w else "partly" if frozen else "yes"
        outputs = layer_outputs(graph, layer)
        output = outputs[-1] if outputs else None
        shape = graph.shape_of(output) if output else None
        rows.append(
            LayerRow(
                name=layer,
                depth=layer.count("."),
                op_types=tuple(op for op, _ in ops.most_common()),
                output=output,
                output_shape=shape,
                params=params,
                trainable=trainable,
                cut_candidate=len(outputs) == 1 and shape is not None and len(shape) >= 2,
                default_cut=output is not None and output == default,
            )
        )
    return rows


def _op_label(node: object) -> str:
    """The op type, or what a train-mode random draw (``frontends.train_random``) does in each mode."""
    from .frontends.train_random import MARK

    if any(p.key == MARK for p in node.metadata_props):  # type: ignore[attr-defined]
        return "RandomDraw(train: random, eval/check: its mean)"
    return node.op_type  # type: ignore[attr-defined]


def format_shape(shape: tuple | None) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ")"
