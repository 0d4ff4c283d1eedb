"""The embedding head: pooling, projection to ``output_dim`` and L2 normalisation, each a small pass."""

from __future__ import annotations

import math

import numpy as np

from ..errors import NoCutError
from ..graph import Graph
from .base import Pass, PassResult, rename_value, unique_name, writable_model
from .builder import HeadBuilder

HEAD = "embedding_head"
OUTPUT = "embedding"
POOLING_MODES = ("auto", "mean", "masked_mean", "cls", "flatten", "none")
MASK_INPUTS = ("attention_mask", "input_mask", "mask")


TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)
RANK_CHANGING = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Gather", "ReduceMean", "GlobalAveragePool"}


def channels_last(graph: Graph, value: str | None = None) -> bool:
    """Whether the 4-D feature map ``value`` (default: the output) is NHWC rather than NCHW.

    Keras graphs take NHWC images, but tf2onnx computes convolutions in NCHW between Transposes: the layout of
    a tensor is the one the nearest Transpose upstream produced (following data inputs), or, with none, the
    layout of the graph's input (``extra['layout']``, else NHWC for Keras and NCHW for the others).
    """
    layout = graph.extra.get("layout")
    default = layout == "NHWC" if layout else graph.framework == "keras"
    value = value or graph.output_names[0]
    producers = graph.producers
    for _ in range(len(graph.model.graph.node)):
        node = producers.get(value)
        if node is not None and node.op_type == "Reshape":  # tf2onnx writes a Transpose of 1x1 maps as one
            moved = _reshape_as_transpose(graph, node)
            if moved == ():  # the same 4-D shape: layout unchanged
                value = node.input[0]
                continue
            if moved is not None:
                return moved == TO_NHWC
        if node is None or node.op_type in RANK_CHANGING or not node.input:
            return default
        if node.op_type == "Transpose":
            perm = tuple(next((list(a.ints) for a in node.attribute if a.name == "perm"), ()))
            if perm == TO_NCHW:
                return False
            if perm == TO_NHWC:
                return True
            return default
        value = node.input[0]
    return default


def _reshape_as_transpose(graph: Graph, node: object) -> tuple[int, ...] | None:
    """The NCHW/NHWC permutation a 4-D -> 4-D Reshape amounts to (static shapes): ``()`` for no change,
    None when it is neither."""
    before, after = graph.shape_of(node.input[0]), graph.shape_of(node.output[0])
    if not before or not after or len(before) != 4 or len(after) != 4:
        return None
    if before[1:] == after[1:] and all(isinstance(d, int) for d in after[1:]):
        return ()
    for perm in (TO_NCHW, TO_NHWC):
        if all(isinstance(after[i], int) and after[i] == before[perm[i]] for i in range(1, 4)):
            return perm
    return None


def mask_input(graph: Graph) -> str | None:
    return next((name for name in MASK_INPUTS if name in graph.input_names), None)


def _shape(graph: Graph) -> tuple:
    out = graph.output_names[0]
    shape = graph.shape_of(out)
    if shape is None:
        raise NoCutError(
            f"the rank of tensor {out!r} is unknown, so pooling cannot be chosen automatically; "
            "pass pooling='mean' | 'cls' | 'flatten' | 'none' explicitly."
        )
    return shape


class Pool(Pass):
    """Reduce the cut tensor to (batch, features).

    ``auto``: global average pooling for 4-D feature maps, masked mean over tokens for 3-D sequences when the
    model has an attention-mask input (plain mean otherwise), nothing for 2-D. ``cls`` takes the first token,
    ``flatten`` flattens everything after the batch axis, ``none`` leaves the tensor as it is.
    """

    def __init__(self, mode: str = "auto") -> None:
        if mode not in POOLING_MODES:
            raise ValueError(f"pooling={mode!r} is not one of {', '.join(POOLING_MODES)}.")
        self.mode = mode

    def resolve(self, graph: Graph) -> str:
        """The concrete pooling this pass applies to ``graph`` (``auto`` resolved)."""
        if self.mode != "auto":
            return self.mode
        rank = len(_shape(graph))
        if rank <= 2:
            return "none"
        if rank == 3:
            return "masked_mean" if mask_input(graph) else "mean"
        return "mean"

    def call(self, graph: Graph) -> PassResult:
        mode = self.resolve(graph)
        if mode == "none":
            return PassResult(graph, False)
        shape = _shape(graph)
        rank = len(shape)
        b = HeadBuilder(graph, f"{HEAD}.pool")
        x = b.current
        if mode == "flatten":
            b.node("Flatten", [x], axis=1)
            feat = _prod(shape[1:])
        elif mode == "cls":
            if rank != 3:
                raise ValueError(f"pooling='cls' needs a (batch, tokens, features) tensor, got rank {rank}.")
            b.node("Gather", [x, b.const("index", np.array(0, dtype=np.int64))], axis=1)
            feat = shape[2]
        elif mode == "masked_mean":
            mask = mask_input(graph)
            if rank != 3 or mask is None:
                raise ValueError(
                    "pooling='masked_mean' needs a (batch, tokens, features) tensor and an attention-mask input "
                    f"(one of {MASK_INPUTS}); this graph has inputs {graph.input_names}."
                )
            m = b.unsqueeze(b.node("Cast", [mask], to=b.elem_type), [-1])
            total = b.reduce("ReduceSum", b.node("Mul", [x, m]), [1], keepdims=0)
            count = b.reduce("ReduceSum", m, [1], keepdims=0)
            count = b.node("Max", [count, b.const("eps", np.array(1e-9, dtype=b.float_dtype()))])
            b.node("Div", [total, count])
            feat = shape[2]
        else:  # mean
            if rank == 3:
                b.reduce("ReduceMean", x, [1], keepdims=0)
                feat = shape[2]
            elif rank == 4 and channels_last(graph):
                b.reduce("ReduceMean", x, [1, 2], keepdims=0)
                feat = shape[3]
            elif rank >= 3:
                b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
                feat = shape[1]
            else:
                return PassResult(graph, False)
        return PassResult(b.finish(f"{HEAD}.pooled", [shape[0], feat]), True)


def _prod(dims: tuple) -> int | None:
    if any(not isinstance(d, int) or d <= 0 for d in dims):
        return None
    return math.prod(dims)


class Project(Pass):
    """Append a trainable linear projection (Gemm, like ``torch.nn.Linear``) to ``output_dim`` features.

    Weights are initialised as torch initialises Linear (uniform in +-1/sqrt(fan_in)) from ``seed``, so every
    backend starts from the same numbers.
    """

    def __init__(self, output_dim: int, seed: int = 0) -> None:
        validate_output_dim(output_dim)
        self.output_dim = output_dim
        self.seed = seed

    def call(self, graph: Graph) -> PassResult:
        shape = _shape(graph)
        if len(shape) != 2:
            raise ValueError(
                f"projection needs a (batch, features) tensor, but the cut tensor has shape {shape}; "
                "choose a pooling mode other than 'none'."
            )
        fan_in = shape[1]
        if not isinstance(fan_in, int) or fan_in <= 0:
            raise NoCutError(
                f"the feature size of {graph.output_names[0]!r} is not static ({fan_in!r}); "
                "pass input_shape/sample_input so the exporter records it, or pooling='mean'."
            )
        b = HeadBuilder(graph, f"{HEAD}.projection")
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / math.sqrt(fan_in)
        dtype = b.float_dtype()
        w = rng.uniform(-bound, bound, size=(self.output_dim, fan_in)).astype(dtype)
        bias = rng.uniform(-bound, bound, size=(self.output_dim,)).astype(dtype)
        b.node("Gemm", [b.current, b.const("weight", w, weight=True), b.const("bias", bias, weight=True)], transB=1)
        return PassResult(b.finish(f"{HEAD}.projected", [shape[0], self.output_dim]), True)


class Normalize(Pass):
    """L2-normalise each embedding: x / max(||x||, eps)."""

    def __init__(self, eps: float = 1e-12) -> None:
        self.eps = eps

    def call(self, graph: Graph) -> PassResult:
        shape = _shape(graph)
        b = HeadBuilder(graph, f"{HEAD}.normalize")
        x = b.current
        norm = b.reduce("ReduceL2", x, [-1], keepdims=1)
        norm = b.node("Max", [norm, b.const("eps", np.array(self.eps, dtype=b.float_dtype()))])
        b.node("Div", [x, norm])
        return PassResult(b.finish(f"{HEAD}.normalized", list(shape)), True)


class Rename(Pass):
    """Give the single output a fixed name (``embedding``)."""

    def __init__(self, name: str = OUTPUT) -> None:
        self.name = name

    def call(self, graph: Graph) -> PassResult:
        if graph.output_names == [self.name]:
            return PassResult(graph, False)
        shape = graph.shape_of(graph.output_names[0])
        graph = _free_name(graph, self.name)
        b = HeadBuilder(graph, HEAD)
        return PassResult(b.finish(self.name, list(shape) if shape else None), True)


def _free_name(graph: Graph, name: str) -> Graph:
    """``graph`` with an internal value called ``name`` (e.g. an ``embedding`` layer's output) renamed."""
    g = graph.model.graph
    if name in {i.name for i in g.input}:
        raise ValueError(f"the model has an input named {name!r}, the name reserved for the embedding output.")
    if not any(name in node.output for node in g.node):
        return graph
    model = writable_model(graph)
    rename_value(model.graph, name, unique_name(model.graph, f"{name}_value"))
    return graph.replace(model=model)


def validate_output_dim(output_dim: object) -> None:
    if isinstance(output_dim, bool) or not isinstance(output_dim, (int, np.integer)):
        raise TypeError(f"output_dim must be a positive int or None, got {type(output_dim).__name__}.")
    if output_dim <= 0:
        raise ValueError(f"output_dim must be a positive int or None, got {output_dim}.")
