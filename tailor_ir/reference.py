"""onnxruntime reference outputs for the equivalence check, shared by every cut of one export.

Trying cuts (``display``, then several ``to_embedding`` calls on one unchanged model) reuses one export, and
every embedding graph cut from it computes its cut tensor with the export's own nodes and weights (``Truncate``
keeps them; the head passes only append). So the backbone is run in onnxruntime once per export and check feed:
the first reference run of an export computes, besides the cut it is asked for, the value of every layer's cut
point that fits in ``MEMORY_BUDGET`` (top-level layers first). A cut's reference is then its head alone (the
nodes after the cut, in onnxruntime) fed with the cut's cached value, which is what a whole-graph run of the
embedding graph gives. A cut that is not cached, or a graph whose cut cannot be matched to the export, falls
back to running the whole embedding graph.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Mapping

import numpy as np
import onnx

from . import runtime
from .graph import Graph, _node_reads
from .protos import model_shell, tensor_nbytes

CUT = "cut"  # Graph.extra key of an embedding graph: the tensor of the export it was cut at
MEMORY_BUDGET = 64 << 20  # bytes of cut values kept per export (shallow layers first)

_LOCK = threading.Lock()
_VALUES: weakref.WeakKeyDictionary[Graph, tuple[str, dict[str, np.ndarray]]] = weakref.WeakKeyDictionary()
_ORIGINS: weakref.WeakKeyDictionary[Graph, weakref.ref[Graph]] = weakref.WeakKeyDictionary()


def register_cut(source: Graph, embedding: Graph) -> None:
    """Record that ``embedding`` (whose ``extra['cut']`` names the tensor) was cut from ``source`` as it is.

    Only that very Graph object is served from ``source``'s cached values; a Graph derived from it later
    (new weights, another cut) is not registered and gets a whole-graph run.
    """
    with _LOCK:
        _ORIGINS[embedding] = weakref.ref(source)


def origin_of(graph: Graph) -> Graph | None:
    """The export ``graph`` was cut from, when ``graph`` is the very object ``embedding_head`` returned."""
    with _LOCK:
        origin = _ORIGINS.get(graph)
    return origin() if origin is not None else None


def reference_outputs(graph: Graph, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's outputs of ``graph`` on ``feed``, reusing the backbone values of the export it was cut from.

    For the graph ``passes.embedding_head`` returned (registered with :func:`register_cut`) the backbone runs
    once per export and feed; for any other graph this is a plain run of ``graph``.
    """
    source = origin_of(graph)
    cut = graph.extra.get(CUT)
    if source is None or cut is None or not _same_cut(source, graph, cut):
        return runtime.run(graph, feed)
    value = _cut_value(source, cut, feed)
    if value is None:
        return runtime.run(graph, feed)
    return runtime.run(head_graph(graph, cut, value), {**feed, cut: value})


def _same_cut(source: Graph, embedding: Graph, cut: str) -> bool:
    """Whether ``cut`` is computed in ``embedding`` by the very node that computes it in ``source``."""
    if cut in source.input_names:
        return cut in embedding.input_names
    ours, theirs = embedding.producers.get(cut), source.producers.get(cut)
    return ours is not None and theirs is not None and ours == theirs


def _cut_value(source: Graph, cut: str, feed: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The value of ``cut`` in ``source`` on ``feed``: cached, or computed with every cut point that fits."""
    if cut in source.input_names:
        return np.asarray(feed[cut])
    key = _feed_key(feed)
    with _LOCK:
        entry = _VALUES.get(source)
    if entry is not None and entry[0] == key:
        return entry[1].get(cut)
    wanted = [cut, *(v for v in cut_points(source, feed) if v != cut)]
    try:
        values = runtime.run(source, feed, outputs=wanted)
    except Exception:  # noqa: BLE001 - the export has a node onnxruntime cannot run after the cut
        return None
    cached = dict(zip(wanted, values))
    with _LOCK:
        _VALUES[source] = (key, cached)
    return cached[cut]


def cut_points(graph: Graph, feed: Mapping[str, np.ndarray], budget: int = MEMORY_BUDGET) -> list[str]:
    """The cut tensors of ``graph``'s layers (``display``'s candidates) whose values on ``feed`` fit in
    ``budget`` bytes together, shallow layers first; a value of unknown size is left out."""
    sizes = _symbol_sizes(graph, feed)
    chosen: list[str] = []
    seen: set[str] = set()
    total = 0
    for layer in sorted(graph.layer_outputs, key=lambda name: name.count(".")):
        outputs = graph.layer_outputs[layer]
        if not outputs or outputs[-1] in seen:
            continue
        value = outputs[-1]
        seen.add(value)
        nbytes = _nbytes(graph, value, sizes)
        if nbytes is None or total + nbytes > budget:
            continue
        chosen.append(value)
        total += nbytes
    return chosen


def _symbol_sizes(graph: Graph, feed: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Symbolic input dims (``batch``, ``sequence``) -> their sizes in ``feed``."""
    sizes: dict[str, int] = {}
    for name in graph.input_names:
        shape = graph.shape_of(name)
        if shape is None or name not in feed:
            continue
        for dim, size in zip(shape, np.shape(feed[name])):
            if isinstance(dim, str):
                sizes[dim] = int(size)
    return sizes


def _nbytes(graph: Graph, value: str, sizes: dict[str, int]) -> int | None:
    shape, elem = graph.shape_of(value), graph.elem_type_of(value)
    if shape is None or elem is None:
        return None
    dims = [d if isinstance(d, int) else sizes.get(d) for d in shape]
    if any(d is None or d < 0 for d in dims):
        return None
    return tensor_nbytes(dims, elem)


def head_graph(embedding: Graph, cut: str, value: np.ndarray) -> onnx.ModelProto:
    """The part of ``embedding`` after ``cut``: its nodes that the outputs need once ``cut`` is an input."""
    needed = set(embedding.output_names)
    keep: list[onnx.NodeProto] = []
    for node in reversed(embedding.model.graph.node):
        if any(o in needed for o in node.output if o) and cut not in node.output:
            keep.append(node)
            needed.update(_node_reads(node))
    source = embedding.model.graph
    model = model_shell(embedding.model, skip_graph=("node", "initializer", "input", "value_info"))
    g = model.graph
    g.node.extend(reversed(keep))
    g.initializer.extend(i for i in source.initializer if i.name in needed)
    elem = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
    g.input.append(onnx.helper.make_tensor_value_info(cut, elem, list(value.shape)))
    g.input.extend(i for i in source.input if i.name in needed and i.name != cut)
    return model


def _feed_key(feed: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(feed):
        array = np.ascontiguousarray(feed[name])
        digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()

