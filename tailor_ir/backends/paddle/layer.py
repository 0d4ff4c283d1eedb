"""``rehydrate``: build the trainable paddle Layer and check it against onnxruntime."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import onnx

from ...errors import UnknownLayerError, UnsupportedDtypeError, UnsupportedOpError
from ...graph import Graph
from ...imports import import_paddle
from . import dtypes
from .context import BuildContext, Converted, value_info
from .prepass import prepare
from .registry import find

paddle = import_paddle()
from . import converters as _converters  # noqa: E402,F401  (registers the converters)

BACKEND = "paddle"


class WeightTree(paddle.nn.Layer):
    """Holds the graph's weights as parameters under their own dotted names (``layer1.0.conv1.weight``)."""

    def forward(self) -> None:  # pragma: no cover - a container
        raise RuntimeError("WeightTree is a parameter container")


class RehydratedLayer(paddle.nn.Layer):
    """A Graph run as a paddle Layer: ``forward`` takes the graph inputs positionally or by name.

    ``weights`` holds one parameter per weight initializer (real sublayers such as Conv2D / Linear / BatchNorm
    / Embedding / LSTM in ``nodes`` share them); ``weight_names`` maps initializer name -> parameter. The ONNX
    nodes run in graph order, each as a real layer or a paddle function.
    """

    def __init__(self, steps: list[tuple[Any, tuple[str, ...], tuple[str, ...]]], nodes: paddle.nn.Layer,
                 tree: WeightTree, params: dict[str, Any], consts: dict[str, np.ndarray],
                 input_names: list[str], output_names: list[str]) -> None:
        super().__init__()
        self.weights = tree
        self.nodes = nodes
        self.constants = paddle.nn.Layer()
        self._const_keys: dict[str, str] = {}
        for index, (name, value) in enumerate(consts.items()):
            key = f"c{index}"
            self.constants.register_buffer(key, paddle.to_tensor(value), persistable=False)
            self._const_keys[name] = key
        self._steps = steps
        self._params = params
        self.input_names = list(input_names)
        self.output_names = list(output_names)

    _statistics: dict[str, tuple[Any, str]] = {}
    _step_info: dict[str, tuple[str, int, str, str | None]] = {}  # first output -> (op, opset, node, layer)

    @property
    def weight_names(self) -> dict[str, Any]:
        """Initializer (ONNX / user) name -> its parameter."""
        return dict(self._params)

    def weight(self, name: str) -> Any:
        """The parameter of one initializer."""
        try:
            return self._params[name]
        except KeyError:
            raise UnknownLayerError(name, self._params, what="weight") from None

    def freeze(self, names: Iterable[str], frozen: bool = True) -> None:
        """Set ``stop_gradient`` of the named weights (``frozen=False`` unfreezes)."""
        for name in names:
            self.weight(name).stop_gradient = frozen

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            args = _bind(self.input_names, args, kwargs)
        elif len(args) != len(self.input_names):
            raise TypeError(f"the model takes {len(self.input_names)} inputs {self.input_names}, got {len(args)}")
        buffers = self.constants._buffers
        env: dict[str, Any] = {name: buffers[key] for name, key in self._const_keys.items()}
        env.update(self._params)
        for name, value in zip(self.input_names, args):
            env[name] = value if isinstance(value, paddle.Tensor) else _to_tensor(name, value)
        for fn, inputs, outputs in self._steps:
            try:
                result = fn(*[env[i] if i else None for i in inputs])
            except NotImplementedError as exc:  # a case a converter can only recognise at run time
                op_type, opset, node, layer = self._step_info.get(outputs[0], ("?", 0, outputs[0], None))
                raise UnsupportedOpError(op_type, opset, node, layer, BACKEND, reason=str(exc)) from exc
            except RuntimeError as exc:  # paddle lacks a CPU kernel for this dtype (e.g. float16 conv2d)
                missing = re.search(r"kernel with key \([^,]*, [^,]*, (\w+)\) of kernel `(\w+)` is not registered",
                                    str(exc))
                if missing is None:
                    raise
                dtype, kernel = missing.group(1), missing.group(2)
                err = UnsupportedDtypeError(dtype, f"at the node computing {outputs[0]!r}", BACKEND)
                err.args = (
                    f"Paddle has no CPU {kernel} kernel for dtype {dtype} (at the node computing {outputs[0]!r}). "
                    f"Cast the model to float32, or cut it before this point (layer_name=...).",
                )
                raise err from exc
            if len(outputs) == 1:
                env[outputs[0]] = result
            else:
                for name, value in zip(outputs, result):
                    if name:
                        env[name] = value
        if len(self.output_names) == 1:
            return env[self.output_names[0]]
        return tuple(env[n] for n in self.output_names)


def _to_tensor(name: str, value: Any) -> Any:
    array = np.asarray(value)
    dtypes.check_array(name, array)
    return paddle.to_tensor(array)


def _contiguous(value: Any) -> np.ndarray:
    """A C-contiguous array of the same shape (np.ascontiguousarray would turn a scalar into shape (1,))."""
    array = np.asarray(value)
    return np.ascontiguousarray(array) if array.ndim else array


def _bind(names: list[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    values = list(args)
    for name in names[len(args):]:
        if name not in kwargs:
            raise TypeError(f"missing model input {name!r}; the model takes {names}")
        values.append(kwargs[name])
    extra = set(kwargs) - set(names[len(args):])
    if extra:
        raise TypeError(f"unexpected model inputs {sorted(extra)}; the model takes {names}")
    return tuple(values)


def current_initializers(model: RehydratedLayer) -> dict[str, np.ndarray]:
    """The current value of every graph initializer ``model`` holds as state, by ONNX initializer name.

    That is every weight (trainable or frozen; one entry per initializer, tied weights once) and the running
    mean/variance of every BatchNormalization, as numpy copies: write them into the
    Graph ``model`` was rehydrated from (``finetuner.export``) to get an ONNX model that computes what ``model``
    computes in eval mode. Constants the exporter made (shapes, int tables) never change and are not included.
    """
    if not isinstance(model, RehydratedLayer):
        raise TypeError(
            f"current_initializers needs a model built by tailor_ir.backends.paddle.rehydrate (or "
            f"finetuner.tailor.to_embedding), got {type(model).__module__}.{type(model).__qualname__}"
        )
    values = {name: np.array(param.numpy(), copy=True) for name, param in model.weight_names.items()}
    for name, (layer, buffer) in model._statistics.items():
        values[name] = np.array(getattr(layer, buffer).numpy(), copy=True)
    return values


# --------------------------------------------------------------------------- checks
def _versions(model: onnx.ModelProto) -> dict[str, int]:
    return {("" if imp.domain == "ai.onnx" else imp.domain): int(imp.version) for imp in model.opset_import}


def check_supported(graph: Graph) -> None:
    """Raise UnsupportedOpError for the first node without a converter at the graph's opset."""
    versions = _versions(graph.model)
    for node in graph.model.graph.node:
        domain = "" if node.domain == "ai.onnx" else node.domain
        opset = versions.get(domain, 0)
        if find(node.op_type, opset, domain) is None:
            raise UnsupportedOpError(node.op_type, opset, node.name or node.op_type, graph.layer_of(node), BACKEND)


# --------------------------------------------------------------------------- build
def rehydrate(graph: Graph, check: bool = True, sample_inputs: Any = None) -> RehydratedLayer:
    """Build a trainable paddle Layer computing ``graph`` (see the package docstring); eval mode on return."""
    check_supported(graph)
    shapes, types = value_info(graph)
    dtypes.check_graph(graph, types)
    graph = graph.replace(weights=frozenset(graph.weights or ()) - _batch_norm_statistics(graph))
    tree, params, slots = _weight_tree(graph)
    model, consts = prepare(graph)
    prepared = graph.replace(model=model)
    ctx = BuildContext(prepared, params, consts, graph.opset, slots, shapes=shapes, types=types)
    versions = _versions(model)
    nodes = paddle.nn.Layer()
    steps: list[tuple[Any, tuple[str, ...], tuple[str, ...]]] = []
    runtime_consts: set[str] = set()
    statistics: dict[str, tuple[Any, str]] = {}  # BN running mean/var initializer -> (layer, buffer name)
    step_info: dict[str, tuple[str, int, str, str | None]] = {}
    for node in model.graph.node:
        domain = "" if node.domain == "ai.onnx" else node.domain
        fn = find(node.op_type, versions.get(domain, 0), domain)
        layer_name = graph.layer_map.get(node.name)
        if fn is None:
            raise UnsupportedOpError(node.op_type, versions.get(domain, 0), node.name, layer_name, BACKEND)
        try:
            converted: Converted = fn(node, ctx)
        except NotImplementedError as exc:
            raise UnsupportedOpError(node.op_type, versions.get(domain, 0), node.name, layer_name, BACKEND,
                                     reason=str(exc)) from exc
        if converted.layer:
            nodes.add_sublayer(_safe(node.name, nodes), converted.fn)
            if node.op_type == "BatchNormalization" and len(node.input) >= 5:
                statistics[node.input[3]] = (converted.fn, "_mean")
                statistics[node.input[4]] = (converted.fn, "_variance")
        runtime_consts.update(i for i in converted.inputs if i in consts)
        fn = converted.fn
        if not converted.layer and dtypes.needs_widening(node.op_type, converted.inputs, types):
            fn = dtypes.widened(fn, node.output, types)
        steps.append((fn, converted.inputs, tuple(node.output)))
        step_info[node.output[0]] = (node.op_type, versions.get(domain, 0), node.name, layer_name)
    runtime_consts.update(name for name in graph.output_names if name in consts)
    used = {name: consts[name] for name in consts if name in runtime_consts}
    layer = RehydratedLayer(steps, nodes, tree, params, used, graph.input_names, graph.output_names)
    layer._statistics = {name: slot for name, slot in statistics.items() if name in graph.initializers}
    layer._step_info = step_info
    layer.eval()
    if check:
        check_equivalence(layer, graph, sample_inputs)
    return layer


def _batch_norm_statistics(graph: Graph) -> frozenset[str]:
    """The running mean/variance initializers of BatchNormalization nodes: state, never trainable weights
    (an ONNX file from another exporter has no weight list, so every float initializer looks like a weight)."""
    return frozenset(
        name for node in graph.model.graph.node if node.op_type == "BatchNormalization"
        for name in node.input[3:5] if name in graph.initializers
    )


def _safe(name: str, parent: paddle.nn.Layer) -> str:
    safe = re.sub(r"\W", "_", name) or "node"
    while safe in parent._sub_layers:
        safe += "_"
    return safe


def _weight_tree(graph: Graph) -> tuple[WeightTree, dict[str, Any], dict[str, tuple[Any, str]]]:
    tree = WeightTree()
    params: dict[str, Any] = {}
    slots: dict[str, tuple[Any, str]] = {}
    for init in graph.model.graph.initializer:
        if init.name not in (graph.weights or ()):
            continue
        array = np.ascontiguousarray(graph.initializer_array(init.name))
        param = paddle.create_parameter(
            shape=list(array.shape), dtype=str(array.dtype),
            default_initializer=paddle.nn.initializer.Constant(0.0),
        )
        param.set_value(array)  # (the Assign initializer goes through Python lists: 40x slower)
        param.stop_gradient = init.name in graph.frozen
        params[init.name] = param
        slots[init.name] = _place(tree, init.name, param)
    return tree, params, slots


def _place(tree: paddle.nn.Layer, name: str, param: Any) -> tuple[paddle.nn.Layer, str]:
    """Register ``param`` under its dotted path; fall back to a flat, escaped name on conflicts."""
    parts = name.split(".")
    if all(p.isidentifier() or p.isdigit() for p in parts):
        layer = tree
        ok = True
        for part in parts[:-1]:
            child = layer._sub_layers.get(part)
            if child is None:
                if part in layer._parameters or hasattr(layer, part):
                    ok = False
                    break
                child = WeightTree()
                layer.add_sublayer(part, child)
            layer = child
        last = parts[-1]
        if ok and last not in layer._sub_layers and last not in layer._parameters and not hasattr(type(layer), last):
            layer.add_parameter(last, param)
            return layer, last
    flat = "w_" + re.sub(r"\W", "_", name)
    while flat in tree._parameters:
        flat += "_"
    tree.add_parameter(flat, param)
    return tree, flat


# --------------------------------------------------------------------------- equivalence
def numpy_forward(model: RehydratedLayer, graph: Graph) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    """``feed -> outputs``: the layer run in eval mode without gradients, on and to numpy arrays."""

    def forward(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        was_training = model.training
        model.eval()
        try:
            with paddle.no_grad():
                out = model(*[_to_tensor(n, _contiguous(feed[n])) for n in graph.input_names])
        finally:
            model.train() if was_training else model.eval()
        return [o.numpy() for o in ([out] if len(graph.output_names) == 1 else out)]

    return forward


def check_equivalence(model: RehydratedLayer, graph: Graph, sample_inputs: Any = None, rtol: float = 1e-4) -> None:
    """Compare the layer (eval mode) with onnxruntime; raise EquivalenceError beyond ``rtol`` relative."""
    from ... import runtime

    runtime.check_against_runtime(numpy_forward(model, graph), graph, sample_inputs, rtol, framework="paddle")
