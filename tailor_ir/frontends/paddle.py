"""PaddlePaddle frontend: ``paddle.nn.Layer`` -> ``Graph`` through ``paddle.jit.save`` and paddle2onnx.

The model is saved as a static program (``paddle.jit.save`` with ``InputSpec``s whose batch axis, and the
sequence axis of integer token inputs, are dynamic) into a temp folder and converted by paddle2onnx's C++
exporter (opset 17) directly, so that exporter errors raise instead of being logged. The exported graph is then
normalised for the rest of the compiler:

- paddle2onnx writes weights as ``Constant`` nodes named by ``Parameter.name`` (``conv2d_0.w_0``): every
  ``Constant`` becomes an initializer, and parameter initializers are renamed to the user's
  ``named_parameters()`` paths (``conv1.weight``, BatchNorm statistics ``bn1._mean``/``bn1._variance``);
- BatchNormalization survives as an inference-mode node (paddle2onnx keeps it in eval mode too);
- paddle2onnx turns Dropout into an ``Identity`` whose output is named ``p2o.pd_op.dropout.N.0``, preceded by
  the (then unused) constant holding ``p``: such Identities become real ``Dropout`` nodes with that ratio
  (identity in onnxruntime; the backends make them random in train mode). Other Identity nodes are removed.

Graph.weights are the parameter initializers except BatchNorm running statistics; parameters with
``stop_gradient=True`` or ``trainable=False`` are ``Graph.frozen``.

Layer map (paddle2onnx node names are bare, ``Conv.0``), from a traced run:
1. before the export, the model runs once (eval mode, on at most two rows of the sample) with forward-pre/post
   hooks on every sublayer recording each call's input and output tensors; after it, onnxruntime computes every
   intermediate value of the exported graph on the same input. Each call's outputs are matched to the ONNX
   values that equal them (shape and values within 1e-3 of the tensor's scale), keeping the matches in the
   calls' execution order (paddle2onnx writes nodes in program order): the first equal value after everything
   computed before the call began, that has the call's inputs before it (and, for a container, that is not
   before its last sublayer's output). Each input is the call's latest equal value before that (the very tensor
   when it was an earlier call's output);
2. a call's span is the nodes computing its outputs from its inputs (on a path from an input to an output); every
   node belongs to the innermost sublayer whose span holds it, so a block's residual ``Add`` and ``ReLU``, a
   ``Dropout`` or pooling sublayer, and the attention reshapes/softmax all get their sublayer's path, while
   functional ops between top-level layers (a ``relu`` in ``forward`` after ``bn1``) belong to no layer;
3. nodes outside every span that read weights (directly, or through nodes that only transform weights, such as
   the bias ``Reshape`` before a conv's ``Add`` or an RNN's gate reordering) belong to the sublayer owning them;
4. should some computing nodes still be outside any layer (a call that matched nothing), each connected region of
   them joins the deepest common ancestor of the layers around it, if that is not the root model. When the
   traced run itself fails, rules 3 and 4 alone make the map.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ExportError, ModelTypeError
from ..graph import FLOAT_TYPES, Graph
from ..imports import framework_of, import_paddle, import_paddle2onnx
from .common import input_kind, name_dynamic_dims
from .paddle_pools import fix_adaptive_pools

OPSET = 17
_DROPOUT_OUTPUT = re.compile(r"^p2o\.pd_op\.dropout\.\d+\.0$")
_FULL_CONST = re.compile(r"^p2o\.pd_op\.full\.\d+\.0$")


def export(
    model: Any,
    sample_input: Any = None,
    input_shape: Sequence[int] | None = None,
    input_dtype: str = "float32",
) -> Graph:
    """Export a paddle Layer to a Graph (ONNX + layer map + weights), dynamic in batch (and sequence) axes.

    ``sample_input`` may be an array/tensor, a tuple/list of them (positional inputs) or a dict by forward
    argument name. Without it, ``input_shape`` (no batch axis) and ``input_dtype`` build a random sample;
    without both, a sample is guessed from the first conv / linear / embedding sublayer.
    """
    if framework_of(model) != "paddle":
        raise ModelTypeError(
            f"expected a paddle.nn.Layer, got {type(model).__module__}.{type(model).__qualname__}."
        )
    paddle = import_paddle()
    samples = _samples(model, sample_input, input_shape, input_dtype)
    specs = [
        paddle.static.InputSpec(_dynamic_shape(array), str(array.dtype), name) for name, array in samples.items()
    ]
    trace_input = _trace_samples(samples)
    with tempfile.TemporaryDirectory(prefix="tailor_ir_paddle_") as tmp, _preserved_mode(model):
        model.eval()
        calls = _trace_calls(model, trace_input)
        proto = _to_onnx(model, specs, os.path.join(tmp, "model"))
    fix_adaptive_pools(proto, _adaptive_pool_calls(model, calls))
    _restore_dropout(proto)
    _constants_to_initializers(proto)
    _remove_identities(proto)
    _flatten_reshapes(proto)
    _name_nodes(proto)
    name_dynamic_dims(proto, outputs_lead_with_batch=True)
    params, rename = _parameter_names(model, proto)
    _rename_values(proto, rename)
    _prune_initializers(proto)
    bn_stats = {n.input[i] for n in proto.graph.node if n.op_type == "BatchNormalization" for i in (3, 4)
                if len(n.input) > i}
    inits = {i.name: i for i in proto.graph.initializer}
    weights = frozenset(
        name for name, param in params.items()
        if name in inits and name not in bn_stats and inits[name].data_type in FLOAT_TYPES
    )
    frozen = frozenset(n for n in weights if params[n].stop_gradient or not getattr(params[n], "trainable", True))
    layer_map = _layer_map(proto, weights | bn_stats, calls, trace_input)
    first = proto.graph.input[0]
    extra = {"input_kind": input_kind(first), "source_class": f"{type(model).__module__}.{type(model).__qualname__}"}
    return Graph(proto, layer_map=layer_map, framework="paddle", weights=weights, frozen=frozen, extra=extra)


# --------------------------------------------------------------------------- samples and export
def _samples(
    model: Any, sample_input: Any, input_shape: Sequence[int] | None, input_dtype: str
) -> dict[str, np.ndarray]:
    """The sample inputs as numpy arrays keyed by the forward() argument names."""
    from ..samples import from_shape, guess_paddle, to_numpy

    if sample_input is None and input_shape is not None:
        sample_input = from_shape(tuple(input_shape), input_dtype)
    if sample_input is None:
        sample_input = guess_paddle(model)
    if sample_input is None:
        raise ExportError(
            f"cannot guess an input for {type(model).__qualname__}: pass sample_input=... (an array, a tuple of "
            "arrays or a dict by forward() argument name) or input_shape=(...) without the batch axis."
        )
    if isinstance(sample_input, Mapping):
        return {str(k): to_numpy(v) for k, v in sample_input.items()}
    items = list(sample_input) if isinstance(sample_input, (tuple, list)) else [sample_input]
    names = _input_names(model, len(items))
    return {name: to_numpy(v) for name, v in zip(names, items)}


def _input_names(model: Any, count: int) -> list[str]:
    try:
        params = [
            p.name for p in inspect.signature(model.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    return params[:count] if len(params) >= count else [f"input_{i}" for i in range(count)]


def _parameter_list(model: Any) -> set[str]:
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


def _dynamic_shape(array: np.ndarray) -> list[int | None]:
    """Batch axis dynamic; for integer inputs (token ids, masks) of rank >= 2 the sequence axis too."""
    shape: list[int | None] = list(array.shape)
    if shape:
        shape[0] = None
    if len(shape) >= 2 and np.issubdtype(array.dtype, np.integer):
        shape[1] = None
    return shape


def _to_onnx(model: Any, specs: list[Any], prefix: str) -> onnx.ModelProto:
    paddle = import_paddle()
    import_paddle2onnx()
    import paddle2onnx.paddle2onnx_cpp2py_export as c_p2o

    what = f"{type(model).__qualname__}"
    hint = (
        "Try: pass a representative sample_input (an array or a tuple of arrays); avoid Python control flow on "
        "tensor values in forward() or decorate it for paddle.jit.to_static; return tensors from forward()."
    )
    _forget_failed_traces()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _interpolate_by_size(paddle):
                paddle.jit.save(model, prefix, input_spec=specs)
    except Exception as exc:  # paddle raises many types; keep its reason
        _forget_failed_traces()
        raise ExportError(f"paddle.jit.save failed for {what}: {type(exc).__name__}: {_reason(exc)}. {hint}") from exc
    program = prefix + ".json" if os.path.isfile(prefix + ".json") else prefix + ".pdmodel"
    params = prefix + ".pdiparams" if os.path.isfile(prefix + ".pdiparams") else ""
    try:
        data = c_p2o.export(program, params, OPSET, True, False, True, True, True, {}, "onnxruntime", "", "", False)
    except Exception as exc:
        if "FloatAttribute" in str(exc):
            hint = (
                "paddle2onnx cannot export F.interpolate / nn.Upsample with a scale_factor whose output size is "
                "not a whole number of pixels for the traced input: pass size=[h, w] instead of scale_factor "
                "(or a sample_input whose spatial size times the scale is whole)."
            )
        raise ExportError(
            f"paddle2onnx failed for {what}: {type(exc).__name__}: {_reason(exc)}. {hint} An op paddle2onnx "
            "does not support must be replaced in the model, or the model cut before it."
        ) from exc
    return onnx.load_from_string(data)


@contextlib.contextmanager
def _interpolate_by_size(paddle: Any) -> Iterator[None]:
    """While the program is traced, ``F.interpolate(scale_factor=s)`` becomes ``F.interpolate(size=in * s)``
    when every scaled spatial size is whole (the same sampling grid: paddle maps output to input pixels by
    ``in / out`` = ``1 / s`` then); paddle2onnx cannot export the scale_factor form."""
    modules = [paddle.nn.functional, paddle.nn.functional.common]
    original = paddle.nn.functional.common.interpolate

    def interpolate(x: Any, size: Any = None, scale_factor: Any = None, *args: Any, **kwargs: Any) -> Any:
        if size is None and scale_factor is not None and not isinstance(scale_factor, paddle.Tensor):
            fmt = kwargs.get("data_format") or (args[3] if len(args) > 3 else None) or "NCHW"
            spatial = list(x.shape[1:-1] if str(fmt).endswith("C") else x.shape[2:])
            scales = list(scale_factor) if isinstance(scale_factor, (list, tuple)) else [scale_factor] * len(spatial)
            sizes = [d * float(s) for d, s in zip(spatial, scales)]
            if all(isinstance(d, int) and d > 0 for d in spatial) and all(v == int(v) for v in sizes):
                return original(x, [int(v) for v in sizes], None, *args, **kwargs)
        return original(x, size, scale_factor, *args, **kwargs)

    saved = [(m, m.interpolate) for m in modules]
    try:
        for m in modules:
            m.interpolate = interpolate
        yield
    finally:
        for m, fn in saved:
            m.interpolate = fn


def _forget_failed_traces() -> None:
    """Drop the parameters paddle recorded for programs whose to_static trace failed.

    paddle keeps them in a process-wide dict keyed by the program's id and pops them only when a trace succeeds;
    after a failure (a forward that raises), a later program at the same address inherits the dead model's
    parameters and ``jit.save`` fails with ``KeyError: 'linear_N.b_0'``. No trace is in flight between exports.
    """
    from paddle.jit.dy2static import parameter_recorder
    from paddle.jit.dy2static.program_translator import ProgramTranslator

    translator = ProgramTranslator()
    recorders = [getattr(translator, "_params_recorder", None), getattr(translator, "_inplace_map", None),
                 getattr(parameter_recorder, "_global_parameter_recorder", None),  # the PIR ones
                 getattr(parameter_recorder, "_global_inplace_map", None)]
    for recorder in recorders:
        for attr in ("params_dict", "tensor2value"):
            table = getattr(recorder, attr, None)
            if isinstance(table, dict):
                table.clear()


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).strip().splitlines()[:6])[:1500]


@contextlib.contextmanager
def _preserved_mode(model: Any) -> Iterator[None]:
    """Restore every sublayer's train/eval mode afterwards."""
    modes = [(layer, layer.training) for layer in model.sublayers(include_self=True)]
    try:
        yield
    finally:
        for layer, mode in modes:
            layer.training = mode


# --------------------------------------------------------------------------- graph clean-up
def _constants_to_initializers(proto: onnx.ModelProto) -> None:
    """Every Constant node (paddle2onnx writes weights this way) becomes an initializer of the same name."""
    g = proto.graph
    keep = []
    for node in g.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.attribute) == 1:
            attr = node.attribute[0]
            value = helper.get_attribute_value(attr)
            if attr.name == "value":
                tensor = value
            elif attr.name in ("value_float", "value_int", "value_floats", "value_ints"):
                dtype = np.float32 if "float" in attr.name else np.int64
                tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype))
            else:
                keep.append(node)
                continue
            tensor.name = node.output[0]
            g.initializer.append(tensor)
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)


def _restore_dropout(proto: onnx.ModelProto) -> None:
    """Identity nodes that were paddle dropouts become Dropout nodes reading the ratio paddle2onnx left behind.

    paddle2onnx emits ``p`` as an unused ``Constant`` (``p2o.pd_op.full.K.0``) just before the Identity; runs
    before ``_constants_to_initializers`` so the node order still tells which constant belongs to which dropout.
    """
    used = {i for n in proto.graph.node for i in n.input}
    recent: str | None = None
    for node in proto.graph.node:
        if node.op_type == "Constant" and _FULL_CONST.match(node.output[0]) and node.output[0] not in used:
            ratio = _dropout_ratio(node)
            recent = node.output[0] if ratio is not None else None
            if ratio is not None:  # ONNX wants a scalar ratio
                node.attribute[0].t.CopyFrom(numpy_helper.from_array(np.asarray(ratio, np.float32), node.output[0]))
        elif node.op_type == "Identity" and _DROPOUT_OUTPUT.match(node.output[0]) and recent is not None:
            node.op_type = "Dropout"
            node.name = node.name.replace("Identity", "Dropout", 1)
            node.input.append(recent)
            recent = None


def _dropout_ratio(node: onnx.NodeProto) -> float | None:
    if len(node.attribute) != 1 or node.attribute[0].name != "value":
        return None
    value = numpy_helper.to_array(node.attribute[0].t)
    if value.size != 1 or not np.issubdtype(value.dtype, np.floating):
        return None
    ratio = float(value.reshape(()))
    return ratio if 0.0 < ratio < 1.0 else None


def _remove_identities(proto: onnx.ModelProto) -> None:
    """Drop Identity nodes, rewiring readers to their input (graph outputs keep their names)."""
    g = proto.graph
    outputs = {o.name for o in g.output}
    inputs = {i.name for i in g.input} | {i.name for i in g.initializer}
    alias: dict[str, str] = {}
    keep = []
    for node in g.node:
        node.input[:] = [alias.get(i, i) for i in node.input]
        if node.op_type != "Identity":
            keep.append(node)
            continue
        source, target = node.input[0], node.output[0]
        if target in outputs:
            producer = next((n for n in keep if source in n.output), None)
            if producer is None or source in outputs or source in inputs or _read_elsewhere(g, source, node):
                keep.append(node)
                continue
            producer.output[:] = [target if o == source else o for o in producer.output]
            alias[source] = target
        else:
            alias[target] = source
    for node in keep:
        node.input[:] = [alias.get(i, i) for i in node.input]
    del g.node[:]
    g.node.extend(keep)


def _flatten_reshapes(proto: onnx.ModelProto) -> None:
    """``Reshape(x, Concat(Slice(Shape(x), [0], [k]), [-1]))`` (paddle's ``flatten(x, k)``) becomes
    ``Flatten(x, axis=k)``, whose feature size ONNX shape inference knows (the -1 beside a dynamic batch hides it,
    and a projection head needs it)."""
    g = proto.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    readers: dict[str, int] = {}
    for node in g.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    outputs = {o.name for o in g.output}

    def ints(name: str) -> list[int] | None:
        value = consts.get(name)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    dead: set[int] = set()
    for node in g.node:
        if node.op_type != "Reshape" or len(node.input) != 2 or any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        concat = producers.get(node.input[1])
        if concat is None or concat.op_type != "Concat" or len(concat.input) != 2:
            continue
        head, tail = producers.get(concat.input[0]), ints(concat.input[1])
        if head is None or head.op_type != "Slice" or tail != [-1] or len(head.input) < 3:
            continue
        shape = producers.get(head.input[0])
        starts, ends = ints(head.input[1]), ints(head.input[2])
        axes = ints(head.input[3]) if len(head.input) > 3 and head.input[3] else [0]
        steps = ints(head.input[4]) if len(head.input) > 4 and head.input[4] else [1]
        if (shape is None or shape.op_type != "Shape" or shape.input[0] != node.input[0] or shape.attribute
                or starts != [0] or axes != [0] or steps != [1] or not ends or not 0 < ends[0] < 2**31):
            continue
        node.op_type = "Flatten"
        node.name = node.name.replace("Reshape", "Flatten", 1)
        readers[node.input[1]] -= 1
        del node.input[1:]
        del node.attribute[:]  # allowzero=0 is Reshape's
        node.attribute.append(helper.make_attribute("axis", ends[0]))
        for helper_node in (concat, head, shape):  # the shape arithmetic, unless something else reads it
            if readers.get(helper_node.output[0], 0) == 0 and helper_node.output[0] not in outputs:
                dead.add(id(helper_node))
                for name in helper_node.input:
                    readers[name] = readers.get(name, 0) - 1
    if dead:
        keep = [n for n in g.node if id(n) not in dead]
        del g.node[:]
        g.node.extend(keep)


def _read_elsewhere(g: onnx.GraphProto, value: str, skip: onnx.NodeProto) -> bool:
    return any(value in n.input for n in g.node if n is not skip)


def _name_nodes(proto: onnx.ModelProto) -> None:
    """Every node gets a unique name (``Op.N``)."""
    seen: set[str] = set()
    counters: dict[str, int] = {}
    for node in proto.graph.node:
        if not node.name or node.name in seen:
            while True:
                counters[node.op_type] = counters.get(node.op_type, 0) + 1
                candidate = f"{node.op_type}.tir{counters[node.op_type]}"
                if candidate not in seen:
                    break
            node.name = candidate
        seen.add(node.name)


def _parameter_names(model: Any, proto: onnx.ModelProto) -> tuple[dict[str, Any], dict[str, str]]:
    """Parameters by their ``named_parameters()`` path, and initializer renames ``Parameter.name`` -> path."""
    inits = {i.name for i in proto.graph.initializer}
    params: dict[str, Any] = {}
    rename: dict[str, str] = {}
    for path, param in model.named_parameters():
        if param.name in inits and param.name not in rename:
            rename[param.name] = path
            params[path] = param
    taken = inits - set(rename)
    for old, new in list(rename.items()):
        if new in taken:  # an exporter constant already has that name: keep the paddle name
            rename.pop(old)
            params[old] = params.pop(new)
    return params, rename


def _rename_values(proto: onnx.ModelProto, rename: dict[str, str]) -> None:
    g = proto.graph
    for init in g.initializer:
        init.name = rename.get(init.name, init.name)
    for node in g.node:
        node.input[:] = [rename.get(i, i) for i in node.input]


def _prune_initializers(proto: onnx.ModelProto) -> None:
    """Drop initializers nothing reads (paddle2onnx leaves dropout ratios and pooling sizes behind)."""
    g = proto.graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


# --------------------------------------------------------------------------- layer map
def _layer_map(
    proto: onnx.ModelProto,
    param_inits: frozenset[str] | set[str],
    calls: list[_Call] | None = None,
    trace_input: Mapping[str, np.ndarray] | None = None,
) -> dict[str, str]:
    """ONNX node -> sublayer path (see the module docstring for the rules)."""
    g = proto.graph
    graph_inputs = {i.name for i in g.input}
    owner_of_value: dict[str, set[str]] = {n: {n.rsplit(".", 1)[0]} for n in param_inits if "." in n}
    dynamic = set(graph_inputs)
    by_weights: dict[str, str] = {}
    for node in g.node:
        reads = [i for i in node.input if i]
        owners: set[str] = set()
        for name in reads:
            owners |= owner_of_value.get(name, set())
        is_dynamic = any(i in dynamic for i in reads)
        if is_dynamic:
            dynamic.update(o for o in node.output if o)
        elif owners:  # a weight-only transformation: its outputs carry the owners on
            for o in node.output:
                owner_of_value[o] = set(owners)
        if len(owners) == 1:
            by_weights[node.name] = next(iter(owners))
    traced: dict[str, str] = {}
    if calls and trace_input is not None:
        try:
            traced = _traced_layers(proto, calls, trace_input, dynamic, by_weights)
        except Exception:  # the trace is an aid: a model onnxruntime cannot run on it keeps the static rules
            traced = {}
    layer_map = {**by_weights, **traced}
    _assign_regions(g, layer_map, dynamic)
    return layer_map


# --------------------------------------------------------------------------- traced run
_TRACE_ROWS = 2
_MATCH_RTOL = 1e-3


@dataclasses.dataclass
class _Call:
    """One sublayer call of the traced run: its path, the call it ran inside, its tensors (numpy copies with the
    ids of the paddle tensors) and how many calls had finished when it began / when it finished."""

    path: str
    parent: int | None
    started: int
    inputs: list[tuple[int, np.ndarray]]
    outputs: list[tuple[int, np.ndarray]] = dataclasses.field(default_factory=list)
    finished: int = -1


def _adaptive_pool_calls(model: Any, calls: list[_Call] | None) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """(path, input spatial shape, output spatial shape) of every AdaptiveAvgPool2D call of the traced run."""
    paddle = import_paddle()
    adaptive = {path for path, layer in model.named_sublayers() if isinstance(layer, paddle.nn.AdaptiveAvgPool2D)}
    return [
        (c.path, tuple(c.inputs[0][1].shape[2:]), tuple(c.outputs[0][1].shape[2:]))
        for c in calls or [] if c.path in adaptive and c.inputs and c.outputs
    ]


def _trace_samples(samples: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """At most two rows of the sample (when all inputs share the batch axis): enough to tell values apart."""
    sizes = {a.shape[0] if a.ndim else None for a in samples.values()}
    if len(sizes) == 1 and None not in sizes and next(iter(sizes)) > _TRACE_ROWS:
        return {k: np.ascontiguousarray(a[:_TRACE_ROWS]) for k, a in samples.items()}
    return dict(samples)


def _tensor_leaves(value: Any, paddle: Any, keep: list[Any]) -> list[tuple[int, np.ndarray]]:
    """(id, numpy copy) of every paddle tensor in a nested output; the tensors are kept alive in ``keep`` so
    their ids stay unique for the run."""
    if isinstance(value, paddle.Tensor):
        keep.append(value)
        return [(id(value), np.array(value.numpy(), copy=True))]
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _tensor_leaves(item, paddle, keep)]
    return []


def _trace_calls(model: Any, samples: Mapping[str, np.ndarray]) -> list[_Call] | None:
    """Run the model once with hooks on every sublayer; None if the run fails (the static rules remain)."""
    paddle = import_paddle()
    paths: dict[int, str] = {}
    layers: list[Any] = []
    for path, layer in model.named_sublayers():
        if id(layer) not in paths:
            paths[id(layer)] = path
            layers.append(layer)
    calls: list[_Call] = []
    stack: list[int] = []
    finished = [0]
    keep: list[Any] = []

    def pre(layer: Any, inputs: Any) -> None:
        parent = stack[-1] if stack else None
        calls.append(_Call(paths[id(layer)], parent, finished[0], _tensor_leaves(inputs, paddle, keep)))
        stack.append(len(calls) - 1)

    def post(layer: Any, inputs: Any, outputs: Any) -> None:
        if not stack or calls[stack[-1]].path != paths[id(layer)]:
            raise RuntimeError("unbalanced sublayer calls")
        call = calls[stack.pop()]
        call.outputs = _tensor_leaves(outputs, paddle, keep)
        call.finished = finished[0]
        finished[0] += 1

    handles = []
    try:
        for layer in layers:
            handles.append(layer.register_forward_pre_hook(pre))
            handles.append(layer.register_forward_post_hook(post))
        tensors = {k: paddle.to_tensor(v) for k, v in samples.items()}
        names = list(tensors)
        with paddle.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if names and set(names) <= _parameter_list(model):
                model(**tensors)
            else:
                model(*tensors.values())
    except Exception:  # a model that runs only under to_static, or an odd sublayer: fall back to static rules
        return None
    finally:
        for handle in handles:
            handle.remove()
    if stack:
        return None
    return calls


def _intermediate_values(
    proto: onnx.ModelProto, samples: Mapping[str, np.ndarray], dynamic: set[str]
) -> dict[str, np.ndarray]:
    """Every dynamic value of the graph computed by onnxruntime on ``samples``.

    ``runtime.run`` gives the session a weight-free copy, so the weights are not serialised (on resnet18 that
    halves the cost)."""
    from .. import runtime

    names = [o.name for o in proto.graph.output]
    present = set(names)
    names += [o for n in proto.graph.node for o in n.output if o and o in dynamic and o not in present]
    values = runtime.run(proto, {k: np.asarray(v) for k, v in samples.items()}, outputs=names)
    result = {k: np.asarray(v) for k, v in samples.items()}
    result.update(zip(names, values))
    return result


def _same(a: np.ndarray, b: np.ndarray, scale: float | None = None) -> bool:
    """``a`` equals ``b``: same shape, and for floats within ``_MATCH_RTOL`` of ``b``'s largest magnitude."""
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        if not a.size:
            return True
        if scale is None:
            scale = float(np.max(np.abs(b)))
        tolerance = _MATCH_RTOL * scale + 1e-7
        with np.errstate(invalid="ignore", over="ignore"):
            head = min(a.size, 64)  # most candidates differ at once: check a few elements first
            if not float(np.max(np.abs(a.reshape(-1)[:head] - b.reshape(-1)[:head]))) <= tolerance:
                return False
            return float(np.max(np.abs(a - b))) <= tolerance
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return False
    return bool(np.array_equal(a, b))


def _traced_layers(
    proto: onnx.ModelProto,
    calls: list[_Call],
    samples: Mapping[str, np.ndarray],
    dynamic: set[str],
    by_weights: Mapping[str, str],
) -> dict[str, str]:
    """Rules 1 and 2 of the module docstring: node -> innermost sublayer whose traced span holds it."""
    g = proto.graph
    nodes = list(g.node)
    position = {name: -1 for name in samples}  # graph inputs come before every node
    for index, node in enumerate(nodes):
        for o in node.output:
            if o:
                position[o] = index
    values = _intermediate_values(proto, samples, dynamic)
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for name in sorted((n for n in values if n in position), key=position.__getitem__):
        by_shape.setdefault(values[name].shape, []).append(name)
    cache: dict[int, list[str]] = {}
    weighted = [  # computing nodes reading a sublayer's weights, in order: (index, owner)
        (k, by_weights[n.name]) for k, n in enumerate(nodes)
        if n.name in by_weights and any(v in dynamic for v in n.input)
    ]

    def weights_end(path: str, prior: int) -> int:
        """The last node reading ``path``'s weights after ``prior``, before any other layer's weights are read."""
        end = -1
        for k, owner in weighted:
            if k <= prior:
                continue
            if owner != path and not owner.startswith(path + "."):
                break
            end = k
        return end

    def equal(array: np.ndarray) -> list[str]:
        key = id(array)
        if key not in cache:
            scale = float(np.max(np.abs(array))) if array.dtype.kind in "fc" and array.size else 0.0
            cache[key] = [n for n in by_shape.get(array.shape, []) if _same(values[n], array, scale)]
        return cache[key]

    order = sorted(range(len(calls)), key=lambda i: calls[i].finished)
    matched_out: dict[int, list[str]] = {}
    matched_in: dict[int, list[str]] = {}
    priors: dict[int, int] = {}
    by_id: dict[int, str] = {}  # paddle tensor id -> the ONNX value it was matched to
    done_max: list[int] = []  # done_max[k]: the latest matched output among the first k finished calls
    latest = -1
    for i in order:
        call = calls[i]
        prior = priors[i] = done_max[call.started - 1] if call.started > 0 else -1
        nested = [j for j in order[call.started:call.finished] if j in matched_out]
        nested_end = max((position[v] for j in nested for v in matched_out[j]), default=-1)
        nested_start = min((position[v] for j in nested for v in matched_in.get(j, [])), default=None)
        input_ids = {leaf_id for leaf_id, _ in call.inputs}
        input_options = []
        for leaf_id, array in call.inputs:
            known = by_id.get(leaf_id)
            input_options.append([known] if known is not None else equal(array))
        outputs = []
        for leaf_id, array in call.outputs:
            if leaf_id in input_ids:  # handed through unchanged (nn.Identity): nothing computes it
                continue
            feasible = [
                v for v in equal(array)
                if position[v] > prior and all(
                    any(position[c] < position[v] for c in options) for options in input_options if options
                )
            ]
            end = max(nested_end, weights_end(call.path, prior))
            pick = next((v for v in feasible if position[v] >= end), None)
            pick = pick or next((v for v in feasible if position[v] >= nested_end), None)
            pick = pick or (feasible[0] if feasible else None)
            if pick is not None:
                outputs.append(pick)
                by_id[leaf_id] = pick
        if outputs:
            matched_out[i] = outputs
            first = min(position[v] for v in outputs)
            inputs = []
            for (_leaf_id, _), options in zip(call.inputs, input_options):
                before = [v for v in options if position[v] < first]
                bounded = [v for v in before if nested_start is None or position[v] <= nested_start]
                if bounded or before:
                    inputs.append((bounded or before)[-1])
            matched_in[i] = inputs
            latest = max(latest, max(position[v] for v in outputs))
        done_max.append(latest)
    _extend_outputs(nodes, calls, matched_out, matched_in, values, dynamic, position)
    # a call's outputs come no later than those of the call it ran inside
    for i, call in enumerate(calls):
        parent = call.parent
        while parent is not None and parent not in matched_out:
            parent = calls[parent].parent
        if i in matched_out and parent is not None:
            if max(position[v] for v in matched_out[i]) > max(position[v] for v in matched_out[parent]):
                del matched_out[i]
    producers = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    best: dict[int, tuple[int, int, str]] = {}  # node index -> (depth, -span size, path)
    for i, outs in matched_out.items():
        span = _span(nodes, producers, dynamic, outs, set(matched_in.get(i, [])), position, priors[i])
        rank = (calls[i].path.count("."), -len(span))
        for k in span:
            if k not in best or rank >= best[k][:2]:
                best[k] = (*rank, calls[i].path)
    return {nodes[k].name: path for k, (_, _, path) in best.items()}


def _extend_outputs(
    nodes: list[onnx.NodeProto],
    calls: list[_Call],
    matched_out: dict[int, list[str]],
    matched_in: dict[int, list[str]],
    values: Mapping[str, np.ndarray],
    dynamic: set[str],
    position: dict[str, int],
) -> None:
    """A call's output moves along nodes that leave its value unchanged (a conv's zero bias ``Add``) unless
    another call (not one it runs inside) produced the next value (a ``Dropout`` sublayer after a ``ReLU``);
    readers of the old value that come after the new one read the new one."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for v in node.input:
            if v in dynamic:
                readers.setdefault(v, []).append(node)
    claimed: dict[str, set[int]] = {}
    for i, outs in matched_out.items():
        for v in outs:
            claimed.setdefault(v, set()).add(i)
    moved: dict[str, str] = {}
    for i, outs in matched_out.items():
        enclosing = set()
        parent = calls[i].parent
        while parent is not None:
            enclosing.add(parent)
            parent = calls[parent].parent
        for slot, value in enumerate(outs):
            while True:
                step = [
                    n for n in readers.get(value, [])
                    if len(n.output) == 1 and sum(1 for v in n.input if v in dynamic) == 1
                    and n.output[0] in values and _same(values[n.output[0]], values[value])
                ]
                if len(step) != 1 or claimed.get(step[0].output[0], set()) - enclosing - {i}:
                    break
                moved[outs[slot]] = value = step[0].output[0]
            outs[slot] = value
    if not moved:
        return
    for i, ins in matched_in.items():
        first = min(position[v] for v in matched_out[i])
        for slot, value in enumerate(ins):
            target = value
            while target in moved and position[moved[target]] < first:
                target = moved[target]
            ins[slot] = target


def _span(
    nodes: list[onnx.NodeProto],
    producers: dict[str, int],
    dynamic: set[str],
    outputs: list[str],
    inputs: set[str],
    position: dict[str, int],
    prior: int,
) -> list[int]:
    """Indices of the nodes on a path from one of ``inputs`` to one of ``outputs`` (without matched inputs:
    the nodes computing the outputs after ``prior``, the last node before the call began)."""
    floor = min((position[v] for v in inputs), default=prior)
    seen: set[int] = set()
    todo = [v for v in outputs if v not in inputs]
    while todo:
        value = todo.pop()
        k = producers.get(value)
        if k is None or k in seen or k <= floor:
            continue
        seen.add(k)
        todo.extend(v for v in nodes[k].input if v and v in dynamic and v not in inputs)
    if not inputs:
        return sorted(seen)
    reached = set(inputs)
    span = []
    for k in sorted(seen):
        if any(v in reached for v in nodes[k].input):
            reached.update(o for o in nodes[k].output if o)
            span.append(k)
    return span


def _assign_regions(g: onnx.GraphProto, layer_map: dict[str, str], dynamic: set[str]) -> None:
    """Rule 2: each connected region of unassigned computing nodes joins the deepest common ancestor of the
    layers around it, unless that is the root (a graph input or output next to the region counts as root)."""
    producers = {o: n.name for n in g.node for o in n.output if o}
    free = [n for n in g.node if n.name not in layer_map and any(i in dynamic for i in n.input)]
    parent = {n.name: n.name for n in free}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    boundary: dict[str, list[str]] = {}
    edges: list[tuple[str, str]] = []
    for node in g.node:
        for value in node.input:
            if value not in dynamic:
                continue
            source = producers.get(value)
            a, b = source, node.name
            if a in parent and b in parent:
                edges.append((a, b))
            elif b in parent:
                boundary.setdefault(b, []).append(layer_map.get(a, "") if a else "")
            elif a in parent:
                boundary.setdefault(a, []).append(layer_map.get(b, ""))
    outputs = {o.name for o in g.output}
    for node in free:
        if any(o in outputs for o in node.output):
            boundary.setdefault(node.name, []).append("")
    for a, b in edges:
        parent[find(a)] = find(b)
    regions: dict[str, list[str]] = {}
    for name in parent:
        regions.setdefault(find(name), []).append(name)
    for members in regions.values():
        around = [layer for m in members for layer in boundary.get(m, [])]
        common = _common_ancestor(around) if around and all(around) else ""
        for name in members if common else ():
            layer_map[name] = common


def _common_ancestor(layers: list[str]) -> str:
    parts = [layer.split(".") for layer in layers]
    common: list[str] = []
    for items in zip(*parts):
        if len(set(items)) != 1:
            break
        common.append(items[0])
    return ".".join(common)
