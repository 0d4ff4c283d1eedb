"""``rehydrate``: build the Keras model around one graph layer and check it against onnxruntime."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ...errors import UnknownLayerError, UnsupportedOpError
from ...graph import FLOAT_TYPES, Graph
from ...imports import import_keras, import_tensorflow
from .context import BuildContext, RunState
from .dtypes import check_dtypes
from .precision import in_float32
from .registry import find
from .values import Value

tf = import_tensorflow()
keras = import_keras()
from . import ops as _ops  # noqa: E402,F401  (registers the converters)

BACKEND = "keras"
LAYER_NAME = "onnx_graph"
_RANDOM_OPS = {"Dropout", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
               "BatchNormalization"}


def variable_initializers(graph: Graph) -> dict[str, bool]:
    """Initializers that become Keras variables -> trainable: the weights, and BatchNormalization statistics."""
    inits = graph.initializers
    result = {name: name not in graph.frozen for name in inits if name in (graph.weights or ())}
    for node in graph.model.graph.node:
        if node.op_type == "BatchNormalization":
            for name in node.input[3:5]:
                if name in inits and name not in result and inits[name].data_type in FLOAT_TYPES:
                    result[name] = False
    return result


def _sanitize(name: str, taken: set[str]) -> str:
    """A Keras variable name for an initializer: Keras forbids '/', so anything but [A-Za-z0-9_.-] becomes '_'."""
    base = re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "w"
    candidate, k = base, 1
    while candidate in taken:
        candidate, k = f"{base}_{k}", k + 1
    taken.add(candidate)
    return candidate


@keras.saving.register_keras_serializable(package="tailor_ir")
class OnnxGraphLayer(keras.layers.Layer):
    """Runs an ONNX graph with TensorFlow ops; holds one Keras variable per weight / BN statistic initializer.

    ``onnx_model`` is the base64 of the graph (``Graph.to_model_proto``) whose variable initializers may be
    stripped of data (their values then come from ``set_initial_values`` or from a saved ``.keras`` file).
    ``weight_names`` maps each initializer name to its variable.
    """

    def __init__(self, onnx_model: str, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)  # the graph's own dtypes (float64, float16 ...) are kept as given
        super().__init__(**kwargs)
        self.onnx_model = onnx_model
        graph = Graph.from_model_proto(onnx.load_from_string(base64.b64decode(onnx_model)))
        self.input_names = list(graph.input_names)
        self.output_names = list(graph.output_names)
        self._declared = _declared_outputs(graph)
        taken: set[str] = set()
        self._vars: dict[str, Any] = {}
        inits = graph.initializers
        for name, trainable in variable_initializers(graph).items():
            init = inits[name]
            self._vars[name] = self.add_weight(
                name=_sanitize(name, taken), shape=tuple(init.dims),
                dtype=onnx.helper.tensor_dtype_to_np_dtype(init.data_type).name,
                initializer="zeros", trainable=trainable,
            )
        consts = {n: numpy_helper.to_array(i) for n, i in inits.items() if n not in self._vars}
        self._opset = graph.opset
        self._steps, self._consts = _build(graph, self._vars, consts)
        self.built = True

    @property
    def weight_names(self) -> dict[str, Any]:
        """Initializer (ONNX / user) name -> its Keras variable."""
        return dict(self._vars)

    def weight(self, name: str) -> Any:
        try:
            return self._vars[name]
        except KeyError:
            raise UnknownLayerError(name, self._vars, what="weight") from None

    def freeze(self, names: Iterable[str], frozen: bool = True) -> None:
        """Make the named weights non-trainable (``frozen=False`` makes them trainable again)."""
        for name in names:
            self.weight(name).trainable = not frozen

    def set_initial_values(self, graph: Graph) -> None:
        for name, var in self._vars.items():
            var.assign(graph.initializer_array(name))

    def call(self, *inputs: Any, training: bool | None = None) -> Any:
        state = RunState(training=bool(training))
        env: dict[str, Value] = {n: Value(x) for n, x in zip(self.input_names, inputs)}
        env.update((n, Value(v.value)) for n, v in self._vars.items())
        env.update((n, Value(tf.constant(c))) for n, c in self._consts.items())
        for run, ins, outs, node in self._steps:
            try:
                result = run(state, *[env[i] if i else None for i in ins])
            except NotImplementedError as exc:  # a converter met a run-time case it does not compute
                raise _unsupported(node, self._opset, exc) from exc
            results = result if isinstance(result, tuple) else (result,)
            for name, value in zip(outs, results):
                if name:
                    env[name] = value
        outputs = [env[n].logical() for n in self.output_names]
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_output_spec(self, *inputs: Any, training: bool | None = None) -> Any:
        """Traced from ``call`` when possible; else (shapes that only exist at run time, e.g. a Reshape whose
        target shape is an input) the graph's declared output types, with unknown dims as None."""
        try:
            return super().compute_output_spec(*inputs, training=training)
        except Exception:
            if any(spec is None for spec in self._declared):
                raise
            specs = [keras.KerasTensor(shape, dtype=dtype) for shape, dtype in self._declared]
            return specs[0] if len(specs) == 1 else specs

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("autocast", None)
        return {**config, "onnx_model": self.onnx_model}


def _declared_outputs(graph: Graph) -> list[tuple[tuple[int | None, ...], str] | None]:
    """(shape, dtype) of each graph output as declared (None where the rank or type is not declared)."""
    by_name = {v.name: v for v in graph.model.graph.output}
    result: list[tuple[tuple[int | None, ...], str] | None] = []
    for name in graph.output_names:
        tt = by_name[name].type.tensor_type if name in by_name else None
        if tt is None or not tt.elem_type or not tt.HasField("shape"):
            result.append(None)
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        result.append((dims, onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name))
    return result


def _unsupported(node: onnx.NodeProto, opset: int, exc: Exception) -> UnsupportedOpError:
    err = UnsupportedOpError(node.op_type, opset, node.name or node.op_type, None, BACKEND, reason=_reason(exc))
    err._keras_call_info_injected = True  # type: ignore[attr-defined]  # Keras re-raises it unchanged
    return err


def _reason(exc: Exception) -> str:
    """A converter's refusal as the reason of an UnsupportedOpError (its own words for NotImplementedError)."""
    return str(exc) if isinstance(exc, NotImplementedError) and str(exc) else f"{type(exc).__name__}: {exc}"


def _build(
    graph: Graph, variables: dict[str, Any], consts: dict[str, np.ndarray]
) -> tuple[list[tuple[Any, list[str], list[str], onnx.NodeProto]], dict[str, np.ndarray]]:
    """Convert every node; nodes whose inputs are all constants run once now (folding never touches weights)."""
    ctx = BuildContext(graph=graph, variables=variables, consts=consts, opset=graph.opset)
    versions = _versions(graph)
    steps = []
    for node in graph.model.graph.node:
        version = versions.get(_domain(node.domain), 0)
        fn = find(node.op_type, version, node.domain)
        try:
            run = in_float32(node.op_type, fn(node, ctx))
            inputs = list(node.input)
            if node.op_type not in _RANDOM_OPS and all(not i or i in consts for i in inputs):
                result = run(RunState(False), *[Value(tf.constant(consts[i])) if i else None for i in inputs])
                results = result if isinstance(result, tuple) else (result,)
                for name, value in zip(node.output, results):
                    if name:
                        consts[name] = np.asarray(value.logical())
                continue
        except (NotImplementedError, KeyError, ValueError, TypeError) as exc:
            raise UnsupportedOpError(node.op_type, version, node.name or node.op_type, graph.layer_of(node), BACKEND,
                                     reason=_reason(exc)) from exc
        steps.append((run, inputs, list(node.output), node))
    needed = {i for _, ins, _, _ in steps for i in ins} | set(graph.output_names)
    return steps, {n: c for n, c in consts.items() if n in needed}


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def _versions(graph: Graph) -> dict[str, int]:
    return {_domain(imp.domain): int(imp.version) for imp in graph.model.opset_import}


def check_supported(graph: Graph) -> None:
    """Raise UnsupportedOpError for the first node without a converter at the graph's opset."""
    versions = _versions(graph)
    for node in graph.model.graph.node:
        opset = versions.get(_domain(node.domain), 0)
        if find(node.op_type, opset, node.domain) is None:
            raise UnsupportedOpError(node.op_type, opset, node.name or node.op_type, graph.layer_of(node), BACKEND)


def _stripped(graph: Graph, names: Iterable[str]) -> str:
    """The graph as base64 with the data of variable initializers removed (Keras saves those itself)."""
    model = graph.to_model_proto()
    strip = set(names)
    for init in model.graph.initializer:
        if init.name in strip:
            for field in ("raw_data", "float_data", "double_data", "int32_data", "int64_data"):
                init.ClearField(field)
    return base64.b64encode(model.SerializeToString()).decode("ascii")


def _keras_name(name: str, index: int) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or f"input_{index}"


def rehydrate(graph: Graph, check: bool = True, sample_inputs: Any = None) -> Any:
    """Build a trainable ``keras.Model`` computing ``graph`` (see the package docstring)."""
    check_supported(graph)
    check_dtypes(graph)
    if not graph.input_names:
        node = graph.model.graph.node[0] if graph.model.graph.node else onnx.helper.make_node("Identity", [], [])
        raise _unsupported(node, graph.opset, ValueError("a graph without inputs has no Keras functional model"))
    layer = OnnxGraphLayer(_stripped(graph, variable_initializers(graph)), name=LAYER_NAME)
    layer.set_initial_values(graph)
    inputs = []
    for index, value in enumerate(v for v in graph.model.graph.input if v.name in graph.input_names):
        tt = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        name = _keras_name(value.name, index)
        if dims:  # axis 0 is Keras's batch axis
            inputs.append(keras.Input(shape=tuple(dims[1:]), dtype=dtype, name=name))
        else:  # a scalar input has no batch axis
            inputs.append(keras.Input(batch_shape=(), dtype=dtype, name=name))
    outputs = layer(*inputs)
    model = keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name="rehydrated")
    if check:
        check_equivalence(model, graph, sample_inputs)
    return model


def graph_layer(model: Any) -> OnnxGraphLayer:
    """The graph layer of a rehydrated model (``weight_names``, ``freeze``)."""
    return model.get_layer(LAYER_NAME)


# --------------------------------------------------------------------------- equivalence
def numpy_forward(model: Any, graph: Graph) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    """``feed -> outputs``: the model called in inference mode, on and to numpy arrays."""

    def forward(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = graph.input_names
        out = model([feed[n] for n in names] if len(names) > 1 else feed[names[0]], training=False)
        return [np.asarray(o) for o in ([out] if len(graph.output_names) == 1 else out)]

    return forward


def check_equivalence(model: Any, graph: Graph, sample_inputs: Any = None, rtol: float = 1e-4) -> None:
    """Compare the model (inference mode) with onnxruntime; raise EquivalenceError beyond ``rtol`` relative."""
    from ... import runtime

    runtime.check_against_runtime(numpy_forward(model, graph), graph, sample_inputs, rtol, framework="Keras")
