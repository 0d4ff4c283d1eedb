"""Keras 3 frontend: ``keras.Model`` -> ``Graph`` through tf2onnx's ``from_function``.

Exported as-is, tf2onnx freezes the variables into constants and then folds BatchNormalization into the
convolution weights, drops Dropout and drops all-zero biases (an untrained Dense/Conv bias disappears), so the
rehydrated model could neither train batch statistics nor every weight. This frontend avoids all three:
- the model runs through ``stateless_call`` with every variable passed as a function *input*, so nothing can
  be folded into a weight; after conversion those inputs become initializers named by the variable's path
  (``conv1/kernel``, ``bn1/moving_mean``), which makes ``Graph.weights`` exactly the model's trainable weights;
- while exporting, ``BatchNormalization`` layers compute with ``fused_batch_norm`` (inference) so tf2onnx emits
  real ONNX ``BatchNormalization`` nodes (the layer's momentum is written on the node), and ``Dropout`` layers
  emit a marker op that becomes an ONNX ``Dropout`` node with the layer's rate.
Node names carry Keras name scopes with a uniquifying suffix (``conv1_1/BiasAdd``); the layer map strips it and
follows nested layers (``mha_1/query_1/...`` -> ``mha.query``). ``extra['batchnorm']`` is ``'kept'`` (or
``'none'``; ``'frozen'`` if a BN layer with an unusual axis had to export as plain arithmetic).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ExportError, ModelTypeError, UnsupportedOpError
from ..graph import FLOAT_TYPES, Graph
from ..imports import framework_of, import_keras, import_tensorflow, import_tf2onnx
from .common import input_kind, name_dynamic_dims

OPSET = 17
_DROPOUT_MARK = "tailor_ir.dropout:"
_SUFFIX = re.compile(r"_\d+$")
_ORIGINAL_CALLS: dict[str, Any] = {}


def export(
    model: Any,
    sample_input: Any = None,
    input_shape: Sequence[int] | None = None,
    input_dtype: str = "float32",
) -> Graph:
    """Export a built Keras model (Sequential, functional or subclassed) to a Graph, dynamic in the batch axis.

    ``sample_input`` is an array (or a list of arrays for several inputs); without it ``input_shape`` (no batch
    axis) and ``input_dtype`` build one; without both, the model's declared inputs are used.
    """
    if framework_of(model) != "keras" or not hasattr(model, "stateless_call"):
        raise ModelTypeError(
            f"expected a keras.Model, got {type(model).__module__}.{type(model).__qualname__}."
        )
    tf = import_tensorflow()
    tf2onnx = import_tf2onnx()
    keys, samples = _samples(model, sample_input, input_shape, input_dtype)
    keys = keys or _dict_keys(model, len(samples))
    if not model.built:
        model(_structure(keys, samples))
    names = _input_names(model, keys, len(samples))
    specs = [
        tf.TensorSpec(_dynamic_shape(model, keys, i, s), tf.as_dtype(s.dtype), name=n)
        for i, (n, s) in enumerate(zip(names, samples))
    ]
    trainable = list(model.trainable_variables)
    fixed = list(model.non_trainable_variables)
    variables = [*trainable, *fixed]
    paths = _unique_paths(variables)
    var_specs = [tf.TensorSpec(v.shape, v.dtype, name=f"tailor_ir_var_{i}") for i, v in enumerate(variables)]
    n_in, n_tr = len(specs), len(trainable)
    recurrent = _recurrent_variables(model)
    fed = [i for i, v in enumerate(variables) if id(v) not in recurrent]
    baked = {i: v.numpy() for i, v in enumerate(variables) if id(v) in recurrent}
    # Keras passes ``training`` to call() only when call() takes it (a subclassed call(self, x) does not)
    flags = {"training": False} if getattr(model, "_call_has_training_arg", True) else {}

    def forward(*args: Any) -> Any:
        xs, given = args[:n_in], iter(args[n_in:])
        values = [tf.constant(baked[i]) if i in baked else next(given) for i in range(len(variables))]
        out, _ = model.stateless_call(values[:n_tr], values[n_tr:], _structure(keys, list(xs)), **flags)
        return out

    var_specs = [var_specs[i] for i in fed]
    signature = [*specs, *var_specs]
    function = tf.function(forward, input_signature=signature)
    handlers = {"CheckNumerics": (_dropout_handler, []), "Erfc": (_erfc_handler, [])}
    with _export_patches(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            captured = _captured_constants(function, signature)
            proto, _ = tf2onnx.convert.from_function(
                function, input_signature=signature, opset=OPSET, custom_op_handlers=handlers
            )
        except Exception as exc:  # tf2onnx raises many types; keep its reason
            if "Cannot unroll a RNN if the time dimension is undefined" in str(exc):
                raise _unknown_length_rnn(model) from exc
            reason = " ".join(str(exc).strip().splitlines()[:6])[:1500]
            raise ExportError(
                f"tf2onnx failed to export {type(model).__qualname__}: {type(exc).__name__}: {reason}. Try: pass "
                "a representative sample_input (or input_shape=... without the batch axis); make call() "
                "traceable by tf.function (no Python control flow on tensor values, no numpy calls); custom "
                "layers must use keras.ops / tf ops that tf2onnx supports."
            ) from exc
    _captured_to_initializers(proto, captured)
    unsupported = [n for n in proto.graph.node if n.domain in ("", "ai.onnx") and not _known_op(n.op_type)]
    if unsupported:
        node = unsupported[0]
        layer = _layer_map(proto, _layer_tree(model)).get(node.name)
        where = f"layer {layer!r}" if layer else f"node {node.name!r}"
        raise ExportError(
            f"tf2onnx could not convert TensorFlow op {node.op_type!r} ({where}, node {node.name!r}) of "
            f"{type(model).__qualname__}. Try: replace that layer, or cut the model before it (layer_name=...)."
        )
    var_paths = {f"tailor_ir_var_{i}": path for i, path in enumerate(paths)}
    values = {f"tailor_ir_var_{i}": v for i, v in enumerate(variables)}
    _inputs_to_initializers(proto, var_paths, values)
    _name_outputs(proto, model)
    _sink_weight_nodes(proto)
    name_dynamic_dims(proto)
    layers = _layer_tree(model)
    layer_map = _layer_map(proto, layers)
    _set_bn_momentum(proto, layer_map, layers)
    used = {i.name for i in proto.graph.initializer}
    natural = _natural_weights(model, layers)
    all_trainable = {p for p, v in zip(paths, variables) if id(v) in natural or v.trainable}
    weights = {p for p in all_trainable if p in used}
    active = set(paths[:n_tr])
    frozen = {p for p in weights if p not in active}
    for name, layer in _recurrent_weights(proto, layer_map, layers):
        weights.add(name)
        if not layer.trainable:
            frozen.add(name)
    first = proto.graph.input[0]
    extra = {
        "input_kind": input_kind(first),
        "source_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "batchnorm": _batchnorm_status(proto, layers),
        "layout": "NHWC" if input_kind(first) == "image" else "",
    }
    return Graph(
        proto, layer_map=layer_map, framework="keras", weights=frozenset(weights), frozen=frozenset(frozen),
        extra=extra,
    )


# --------------------------------------------------------------------------- samples and inputs
def _samples(
    model: Any, sample_input: Any, input_shape: Sequence[int] | None, input_dtype: str
) -> tuple[list[str] | None, list[np.ndarray]]:
    """(the input names of a dict sample or None, the sample arrays in order)."""
    from ..samples import from_shape, guess_keras, to_numpy

    if sample_input is None and input_shape is not None:
        sample_input = from_shape(tuple(input_shape), input_dtype)
    if sample_input is None:
        sample_input = guess_keras(model)
    if sample_input is None:
        raise ExportError(
            f"cannot guess an input for {type(model).__qualname__} (a subclassed model has no declared inputs): "
            "pass sample_input=... (an array) or input_shape=(...) without the batch axis."
        )
    if isinstance(sample_input, dict):
        return [str(k) for k in sample_input], [to_numpy(v) for v in sample_input.values()]
    items = list(sample_input) if isinstance(sample_input, (tuple, list)) else [sample_input]
    return None, [to_numpy(item) for item in items]


def _inputs_struct(model: Any) -> Any:
    return getattr(model, "_inputs_struct", None)


def _dict_keys(model: Any, count: int) -> list[str] | None:
    """The keys of a model that takes a dict when it was given a list (Keras flattens a dict in key order)."""
    struct = _inputs_struct(model)
    if isinstance(struct, dict) and len(struct) == count:
        return sorted(struct)
    return None


def _structure(keys: list[str] | None, xs: list[Any]) -> Any:
    """The inputs as the model's call takes them: one tensor, a list, or a dict by input name."""
    if keys is not None:
        return dict(zip(keys, xs))
    return xs[0] if len(xs) == 1 else list(xs)


def _declared_inputs(model: Any) -> list[Any]:
    try:
        return list(model.inputs or [])
    except (AttributeError, ValueError):
        return []


def _declared(model: Any, keys: list[str] | None, index: int) -> Any:
    """The Keras input tensor declared for input ``index`` (by key for a dict input), or None."""
    struct = _inputs_struct(model)
    if keys is not None and isinstance(struct, dict):
        return struct.get(keys[index])
    declared = _declared_inputs(model)
    return declared[index] if index < len(declared) else None


def _input_names(model: Any, keys: list[str] | None, count: int) -> list[str]:
    names = []
    for i in range(count):
        name = keys[i] if keys is not None else ""
        declared = _declared(model, keys, i) if not name else None
        if declared is not None:
            history = getattr(declared, "_keras_history", None)
            layer = getattr(history, "operation", None) if history is not None else None
            name = getattr(layer, "name", "") or ""
        names.append(re.sub(r"[^A-Za-z0-9_.]", "_", name) or ("input" if count == 1 else f"input_{i}"))
    return names


def _dynamic_shape(model: Any, keys: list[str] | None, index: int, sample: np.ndarray) -> list[int | None]:
    """Batch axis dynamic; other axes as the model declares them (None stays dynamic), else the sample's."""
    declared = _declared(model, keys, index)
    if declared is not None and len(declared.shape) == sample.ndim:
        return [None, *declared.shape[1:]]
    return [None, *sample.shape[1:]]


def _captured_constants(function: Any, signature: list[Any]) -> dict[str, np.ndarray]:
    """Tensors the traced function captured from Python (a Normalization layer's mean and variance, any
    constant a layer computed when it was built), by the name of their placeholder in the traced graph:
    tf2onnx makes each one a graph *input*; they are constants of the model and become initializers."""
    tf = import_tensorflow()
    concrete = function.get_concrete_function(*signature)
    found = {}
    for outer, inner in zip(concrete.captured_inputs, concrete.graph.internal_captures):
        if outer.dtype != tf.resource and hasattr(outer, "numpy"):
            found[inner.name] = np.asarray(outer.numpy())
    return found


def _captured_to_initializers(proto: onnx.ModelProto, captured: dict[str, np.ndarray]) -> None:
    keep = []
    for value in proto.graph.input:
        if value.name in captured:
            proto.graph.initializer.append(numpy_helper.from_array(captured[value.name], value.name))
        else:
            keep.append(value)
    del proto.graph.input[:]
    proto.graph.input.extend(keep)


def _unique_paths(variables: list[Any]) -> list[str]:
    """Each variable's path (``conv1/kernel``), made unique if two variables share one."""
    result: list[str] = []
    seen: set[str] = set()
    for var in variables:
        path = str(getattr(var, "path", None) or var.name)
        base, k = path, 1
        while path in seen:
            path, k = f"{base}_{k}", k + 1
        seen.add(path)
        result.append(path)
    return result


def _natural_weights(model: Any, tree: dict[str, Any]) -> set[int]:
    """ids of the variables that are weights by nature (trainable unless their layer is frozen).

    Keras turns a frozen layer's variables non-trainable, which makes them look like BN statistics; each
    layer's own list of trainable variables (``_trainable_variables``) still tells them apart.
    """
    found: set[int] = set()
    for layer in [model, *tree.values()]:
        found.update(id(v) for v in getattr(layer, "_trainable_variables", []))
    return found


def _recurrent_variables(model: Any) -> set[int]:
    """ids of the variables of LSTM layers: tf2onnx only rewrites their loops into ONNX LSTM nodes when their
    weights are constants, so these are baked in and named afterwards (see ``_recurrent_weights``). (It never
    rewrites a Keras 3 GRU: those are unrolled instead, see ``_export_patches``, and keep fed weights.)"""
    keras = import_keras()
    found: set[int] = set()
    for layer in _layer_tree(model).values():
        if isinstance(layer, keras.layers.LSTM):
            found.update(id(v) for v in layer.weights)
    return found


def _unknown_length_rnn(model: Any) -> UnsupportedOpError:
    """The refusal of a GRU/SimpleRNN whose sequence length is unknown. Unrolled (see ``_export_patches``) it
    needs its time steps; left as a while-loop, tf2onnx writes an ONNX ``Loop`` whose body no backend runs (a
    Loop converter would have to rebuild a trainable recurrent layer from a subgraph). Refused by name."""
    keras = import_keras()
    names = [n for n, layer in _layer_tree(model).items()
             if isinstance(layer, (keras.layers.GRU, keras.layers.SimpleRNN))]
    err = UnsupportedOpError("Loop", OPSET, names[0] if names else "rnn", names[0] if names else None, "keras")
    err.args = (
        f"The recurrent layer(s) {names} have an unknown sequence length: a Keras GRU/SimpleRNN exports as an "
        "ONNX Loop then, which the backends do not run. Give the model a fixed sequence length (e.g. "
        "keras.Input((T,)) with T the longest sequence, shorter ones padded and masked) and pass a sample of "
        "that length; an LSTM exports at any length.",
    )
    return err


# --------------------------------------------------------------------------- export-time layer patches
@contextlib.contextmanager
def _export_patches(model: Any) -> Iterator[None]:
    """Make BatchNormalization export as ONNX BatchNormalization and Dropout as ONNX Dropout, grouped
    convolutions without XLA and GRU/SimpleRNN layers unrolled (all restored after)."""
    keras = import_keras()
    bn_cls, dropout_cls = keras.layers.BatchNormalization, keras.layers.Dropout
    bn_call, dropout_call = bn_cls.call, dropout_cls.call
    bn_cls.call, dropout_cls.call = _fused_bn_call, _marked_dropout_call
    backend_nn = importlib.import_module("keras.src.backend.tensorflow.nn")
    conv = backend_nn.conv
    backend_nn.conv = _grouped_conv_without_xla
    _ORIGINAL_CALLS.update(bn=bn_call, dropout=dropout_call, conv=conv)
    # tf2onnx turns a Keras 3 GRU's while-loop into an ONNX Loop, which no backend runs: unrolled over its
    # (static) time steps it becomes plain ops, its weights stay fed (trainable) and its layer stays mapped
    gru_unroll = [(layer, layer.unroll) for layer in _layer_tree(model).values()
                  if isinstance(layer, (keras.layers.GRU, keras.layers.SimpleRNN))]
    for layer, _ in gru_unroll:
        layer.unroll = True
    try:
        yield
    finally:
        bn_cls.call, dropout_cls.call = bn_call, dropout_call
        backend_nn.conv = conv
        for layer, unroll in gru_unroll:
            layer.unroll = unroll


def _grouped_conv_without_xla(
    inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", data_format: Any = None,
    dilation_rate: Any = 1,
) -> Any:
    """Keras runs grouped 2-D convolutions (ConvNeXt's depthwise ``Conv2D(groups=C)``) inside an XLA-compiled
    ``tf.function``, which tf2onnx sees as an opaque ``PartitionedCall``. While exporting, a channels-last
    grouped convolution is written as a depthwise convolution (one input channel per group) or as one
    convolution per group, which tf2onnx converts."""
    tf = import_tensorflow()
    keras = import_keras()
    channels_last = (data_format or keras.config.image_data_format()) == "channels_last"
    rank = len(inputs.shape)
    in_channels = inputs.shape[-1] if channels_last else None
    if rank != 4 or not channels_last or in_channels is None or in_channels == kernel.shape[-2]:
        return _ORIGINAL_CALLS["conv"](inputs, kernel, strides, padding, data_format, dilation_rate)
    groups = in_channels // kernel.shape[-2]
    strides = [strides] * 2 if isinstance(strides, int) else list(strides)
    dilations = [dilation_rate] * 2 if isinstance(dilation_rate, int) else list(dilation_rate)
    kernel = tf.convert_to_tensor(kernel)
    if kernel.shape[-2] == 1 and (strides[0] == 1 or dilations[0] == 1) and strides[0] == strides[1]:
        kh, kw, _, out = kernel.shape
        depthwise = tf.reshape(kernel, [kh, kw, in_channels, out // in_channels])
        return tf.nn.depthwise_conv2d(
            inputs, depthwise, [1, *strides, 1], padding.upper(), dilations=dilations
        )
    parts = zip(tf.split(inputs, groups, axis=-1), tf.split(kernel, groups, axis=-1))
    return tf.concat(
        [tf.nn.convolution(x, k, strides, padding.upper(), dilations=dilations) for x, k in parts], axis=-1
    )


def _fused_bn_call(self: Any, inputs: Any, training: Any = None, mask: Any = None) -> Any:
    """Inference-mode BN through ``fused_batch_norm`` (which tf2onnx maps to one BatchNormalization node)."""
    tf = import_tensorflow()
    x = tf.convert_to_tensor(inputs)
    rank = len(x.shape)
    axis = self.axis if isinstance(self.axis, int) else self.axis[0]
    axis = axis % rank
    channels = x.shape[axis]
    gamma = tf.convert_to_tensor(self.gamma) if self.scale else tf.ones([channels], x.dtype)
    beta = tf.convert_to_tensor(self.beta) if self.center else tf.zeros([channels], x.dtype)
    mean, var = tf.convert_to_tensor(self.moving_mean), tf.convert_to_tensor(self.moving_variance)
    if rank == 4 and axis in (1, 3):
        fmt = "NHWC" if axis == 3 else "NCHW"
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, mean=mean, variance=var, epsilon=self.epsilon, is_training=False, data_format=fmt
        )
        return y
    if axis == rank - 1:  # (N, ..., C): view as (N, 1, M, C) NHWC
        shape = tf.shape(x)
        x4 = tf.reshape(x, [shape[0], 1, -1, channels])
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x4, gamma, beta, mean=mean, variance=var, epsilon=self.epsilon, is_training=False
        )
        return tf.reshape(y, shape)
    return _ORIGINAL_CALLS["bn"](self, inputs, training=training, mask=mask)  # exported as plain math


def _marked_dropout_call(self: Any, inputs: Any, training: Any = None) -> Any:
    tf = import_tensorflow()
    if not self.rate or self.noise_shape is not None:
        return inputs
    return tf.raw_ops.CheckNumerics(tensor=inputs, message=f"{_DROPOUT_MARK}{float(self.rate)}")


def _dropout_handler(ctx: Any, node: Any, name: str, args: Any) -> Any:
    """tf2onnx handler: our CheckNumerics marker -> ONNX Dropout(data, ratio)."""
    message = node.get_attr_str("message")
    if not message.startswith(_DROPOUT_MARK):
        node.type = "Identity"
        del node.attr["message"]
        return node
    rate = float(message[len(_DROPOUT_MARK):])
    ratio = ctx.make_const(f"{node.name}_ratio", np.array(rate, dtype=np.float32))
    node.type = "Dropout"
    del node.attr["message"]
    ctx.replace_inputs(node, [node.input[0], ratio.output[0]])
    return node


# --------------------------------------------------------------------------- post-processing
def _erfc_handler(ctx: Any, node: Any, name: str, args: Any) -> Any:
    """tf2onnx handler for Erfc (exact GELU in TF 2.21), which tf2onnx lacks: ``1 - Erf(x)``."""
    node.type = "Erf"
    dtype = np.float64 if ctx.get_dtype(node.input[0]) == onnx.TensorProto.DOUBLE else np.float32
    one = ctx.make_const(f"{node.name}_one", np.array(1, dtype=dtype))
    ctx.insert_new_node_on_output("Sub", node.output[0], name=f"{node.name}_erfc", inputs=[one.output[0], node.output[0]])
    return node


def _known_op(op_type: str) -> bool:
    try:
        onnx.defs.get_schema(op_type, OPSET)
        return True
    except onnx.defs.SchemaError:
        return False


def _inputs_to_initializers(proto: onnx.ModelProto, var_paths: dict[str, str], values: dict[str, Any]) -> None:
    """Replace the variable inputs by initializers named by the variable path (unused ones disappear)."""
    rename = {}
    keep = []
    for value in proto.graph.input:
        if value.name in var_paths:
            rename[value.name] = var_paths[value.name]
            array = np.asarray(values[value.name].numpy())
            proto.graph.initializer.append(numpy_helper.from_array(array, var_paths[value.name]))
        else:
            keep.append(value)
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    used = {name for node in proto.graph.node for name in node.input}
    dead = [init for init in proto.graph.initializer if init.name not in used]
    for init in dead:
        proto.graph.initializer.remove(init)


def _sink_weight_nodes(proto: onnx.ModelProto) -> None:
    """Move nodes that only reshape weights (tf2onnx puts every kernel Transpose first) next to their first use,
    so node order, and with it the layer order, follows the data flow."""
    nodes = list(proto.graph.node)
    dynamic = {i.name for i in proto.graph.input}
    static_nodes: dict[str, onnx.NodeProto] = {}
    for node in nodes:
        if any(i in dynamic for i in node.input):
            dynamic.update(node.output)
        else:
            for out in node.output:
                static_nodes[out] = node
    ordered: list[onnx.NodeProto] = []
    placed: set[int] = set()

    def place(node: onnx.NodeProto) -> None:
        if id(node) in placed:
            return
        placed.add(id(node))
        for name in node.input:
            if name in static_nodes:
                place(static_nodes[name])
        ordered.append(node)

    for node in nodes:
        if any(i in dynamic for i in node.input) or not node.input:
            if node.input:
                place(node)
    for node in nodes:  # static nodes nobody dynamic reads (graph outputs of constants)
        place(node)
    del proto.graph.node[:]
    proto.graph.node.extend(ordered)


def _name_outputs(proto: onnx.ModelProto, model: Any) -> None:
    """tf2onnx names outputs ``Identity:0``; call them ``output`` (``output_i`` for several)."""
    outputs = list(proto.graph.output)
    names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    for value, new in zip(outputs, names):
        old = value.name
        for node in proto.graph.node:
            for i, name in enumerate(node.output):
                if name == old:
                    node.output[i] = new
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
        value.name = new


def _layer_tree(model: Any) -> dict[str, Any]:
    """Dotted layer path -> layer, for every layer reachable from the model (nested ones included)."""
    tree: dict[str, Any] = {}

    def walk(layer: Any, prefix: str) -> None:
        for child in _children(layer):
            path = f"{prefix}.{child.name}" if prefix else child.name
            if path in tree:
                continue
            tree[path] = child
            walk(child, path)

    walk(model, "")
    return tree


def _children(layer: Any) -> list[Any]:
    keras = import_keras()
    kids = list(getattr(layer, "layers", []) or [])
    seen = {id(k) for k in kids}
    for value in vars(layer).values():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, keras.layers.Layer) and id(item) not in seen and item is not layer:
                kids.append(item)
                seen.add(id(item))
    return [k for k in kids if not isinstance(k, keras.layers.InputLayer)]


def _layer_map(proto: onnx.ModelProto, tree: dict[str, Any]) -> dict[str, str]:
    """ONNX node -> deepest layer path matched by its name scopes (suffix ``_N`` stripped where it must be)."""
    layer_map: dict[str, str] = {}
    for node in proto.graph.node:
        scopes = node.name.split("/")[:-1]
        path = ""
        for scope in scopes:
            candidates = [_SUFFIX.sub("", scope), scope] if _SUFFIX.search(scope) else [scope]
            step = next((c for c in candidates if (f"{path}.{c}" if path else c) in tree), None)
            if step is None:
                if path:
                    break
                continue  # a scope above the layers (the model's own name)
            path = f"{path}.{step}" if path else step
        if path:
            layer_map[node.name] = path
    return layer_map


def _recurrent_weights(
    proto: onnx.ModelProto, layer_map: dict[str, str], tree: dict[str, Any]
) -> list[tuple[str, Any]]:
    """Name the W/R/B initializers of tf2onnx's LSTM/GRU nodes ``<layer>/W`` ... and map the nodes to the layer.

    tf2onnx builds them from the layer's kernel, recurrent kernel and bias in ONNX gate order; ONNX keeps a
    second (recurrent) bias that Keras has not, so an LSTM has ``4 * units`` more weights here than in Keras.
    """
    producers = {out: node for node in proto.graph.node for out in node.output}
    inits = {init.name: init for init in proto.graph.initializer}
    found = []
    for node in proto.graph.node:
        if node.op_type not in ("LSTM", "GRU", "RNN"):
            continue
        source = producers.get(node.input[0])
        layer_path = layer_map.get(source.name) if source is not None else None
        if layer_path is None or layer_path not in tree:
            continue
        layer_map[node.name] = layer_path
        for slot, label in zip(node.input[1:4], "WRB"):
            if slot in inits and inits[slot].data_type in FLOAT_TYPES:
                new = f"{layer_path.replace('.', '/')}/{label}"
                _rename_value(proto, slot, new)
                inits[slot].name = new
                found.append((new, tree[layer_path]))
    return found


def _rename_value(proto: onnx.ModelProto, old: str, new: str) -> None:
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _batchnorm_status(proto: onnx.ModelProto, tree: dict[str, Any]) -> str:
    """``kept`` when every BatchNormalization layer became a BatchNormalization node (``none`` without BN);
    ``frozen`` when some exported as plain arithmetic (an unusual axis): their statistics cannot train."""
    keras = import_keras()
    layers = {id(x) for x in tree.values() if isinstance(x, keras.layers.BatchNormalization)}
    nodes = sum(1 for n in proto.graph.node if n.op_type == "BatchNormalization")
    return "none" if not layers else "kept" if nodes >= len(layers) else "frozen"


def _set_bn_momentum(proto: onnx.ModelProto, layer_map: dict[str, str], tree: dict[str, Any]) -> None:
    """Write each Keras BatchNormalization layer's momentum on its ONNX node (ONNX's default is 0.9)."""
    for node in proto.graph.node:
        layer = tree.get(layer_map.get(node.name, ""))
        if node.op_type == "BatchNormalization" and layer is not None and hasattr(layer, "momentum"):
            del node.attribute[:]
            node.attribute.extend([
                helper.make_attribute("epsilon", float(layer.epsilon)),
                helper.make_attribute("momentum", float(layer.momentum)),
            ])
