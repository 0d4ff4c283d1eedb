"""PyTorch frontend: ``torch.nn.Module`` -> ``Graph`` through the dynamo ONNX exporter.

The model is exported in train mode with ``optimize=False`` so BatchNormalization and Dropout survive as real
nodes (in eval mode the exporter folds BN into the convolutions and drops Dropout). The exported graph is then
made inference-exact for onnxruntime: Dropout nodes lose their ``training_mode`` input (identity in
onnxruntime; the torch backend makes them random again in train mode). When torch.export fails on the
train-mode forward (a train-only branch such as Inception v3's auxiliary head rejects a small input), the model
is exported once more with its container modules in eval mode and its leaf layers (BatchNorm, Dropout, drop
path) in train mode, with a warning: the train-only branches are then left out of the tailored model. The layer map comes from the per-node
metadata ``pkg.torch.onnx.name_scopes``; weights are the model's parameters, which the exporter keeps under
their ``named_parameters()`` names. The user's model (mode, buffers, parameters, ``requires_grad``, in-place
flags) is restored exactly afterwards. No constant folding here: onnxscript's folder renames weights. An
unchanged model is exported once per sample signature (``torch_cache``): trying several cuts is interactive.
"""

from __future__ import annotations

import ast
import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import onnx

from ..errors import ExportError, ModelTypeError
from ..graph import Graph
from ..imports import framework_of, import_torch
from . import torch_cache, train_random
from .common import input_kind, name_dynamic_dims


def export(
    model: Any,
    sample_input: Any = None,
    input_shape: Sequence[int] | None = None,
    input_dtype: str = "float32",
) -> Graph:
    """Export a torch module to a Graph (ONNX + layer map + weights), dynamic in batch (and sequence) axes.

    ``sample_input`` may be a tensor, a tuple/list of tensors (positional inputs) or a dict of keyword inputs
    (Hugging Face models: ``input_ids``, ``attention_mask``, ...). Without it, ``input_shape`` (no batch axis)
    and ``input_dtype`` build a random sample; without both, a sample is guessed from the first layer.
    """
    if framework_of(model) != "torch":
        raise ModelTypeError(
            f"expected a torch.nn.Module, got {type(model).__module__}.{type(model).__qualname__}."
        )
    torch = import_torch()
    args, kwargs = _sample_args(model, sample_input, input_shape, input_dtype)
    key = torch_cache.signature(args, kwargs)
    cached = torch_cache.lookup(model, key)
    if cached is not None:
        return cached
    names = _input_names(model, args, kwargs)
    dynamic = _dynamic_shapes(args, kwargs)
    fallback_error: Exception | None = None
    with _preserved(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train()
        for module in model.modules():  # in-place dropout exports as RandomUniformLike; make it a Dropout node
            if isinstance(module, torch.nn.modules.dropout._DropoutNd):
                module.inplace = False
        try:
            program = _run_exporter(model, args, kwargs, names, dynamic)
        except Exception as exc:  # the exporter raises many types; keep its reason
            program, fallback_error = None, exc
            for module in model.modules():  # containers to eval mode: their train-only branches are left out
                if next(module.children(), None) is not None:
                    module.training = False
            with contextlib.suppress(Exception):
                program = _run_exporter(model, args, kwargs, names, dynamic)
            if program is None:
                raise _export_error(model, exc) from exc
    if fallback_error is not None:
        warnings.warn(
            f"torch.export failed on the train-mode forward of {type(model).__qualname__} "
            f"({_summary(fallback_error)}); it was "
            "exported with its container modules in eval mode (layers such as BatchNorm, Dropout and drop path "
            "keep their train-mode behaviour): train-only branches such as auxiliary heads or LayerDrop's "
            "`if torch.rand([]) < p` and functional dropout written in a container's forward() take their "
            "eval-mode path in the tailored model.",
            stacklevel=2,
        )
    proto = program.model_proto
    _clean_dropout(proto)
    _drop_zero_bias(proto)
    name_dynamic_dims(proto)
    layer_map = _layer_map(proto)
    for node in proto.graph.node:  # the metadata is large (stack traces); the layer map keeps what matters
        del node.metadata_props[:]
    train_random.mark(proto)  # stochastic depth: eval-mode value for onnxruntime, random again in the backend
    inits = {i.name for i in proto.graph.initializer}
    params = dict(model.named_parameters(remove_duplicate=False))  # tied weights: every alias names it
    weights = frozenset(n for n in params if n in inits)
    frozen = frozenset(n for n in weights if not params[n].requires_grad)
    first = next(iter(proto.graph.input))
    extra = {"input_kind": input_kind(first), "source_class": f"{type(model).__module__}.{type(model).__qualname__}"}
    if fallback_error is not None:
        extra["export_fallback"] = "containers in eval mode: " + _summary(fallback_error)
    graph = Graph(proto, layer_map=layer_map, framework="torch", weights=weights, frozen=frozen, extra=extra)
    torch_cache.store(model, key, torch_cache.fingerprint(model), graph)  # after the state was restored
    return graph


def _run_exporter(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], names: list[str], dynamic: Any) -> Any:
    torch = import_torch()
    return torch.onnx.export(
        model, args, kwargs=kwargs or None, dynamo=True, optimize=False, verbose=False,
        dynamic_shapes=dynamic, input_names=names or None, report=False, verify=False,
    )


def _summary(exc: Exception) -> str:
    """The exporter's one-line cause (its 'Exception summary' line when it has one)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    cause = next((line for line in lines if line.startswith("<class '")), lines[0] if lines else "")
    return f"{type(exc).__name__}: {cause[:300]}"


def _export_error(model: Any, exc: Exception) -> ExportError:
    reason = " ".join(str(exc).strip().splitlines()[:6])[:1500]
    return ExportError(
        f"torch.onnx.export (dynamo) failed for {type(model).__qualname__}: {type(exc).__name__}: "
        f"{reason}. Try: pass a representative sample_input (a tensor, a tuple of tensors, or a dict of "
        f"keyword inputs); avoid data-dependent Python control flow in forward() (if/while on tensor "
        f"values); return tensors (not custom objects) from forward()."
    )


# --------------------------------------------------------------------------- samples
def _to_tensor(value: Any, torch: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    return torch.as_tensor(np.asarray(value))


def _sample_args(
    model: Any, sample_input: Any, input_shape: Sequence[int] | None, input_dtype: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    torch = import_torch()
    from ..samples import from_shape, guess_torch

    if sample_input is None and input_shape is not None:
        sample_input = from_shape(tuple(input_shape), input_dtype)
    if sample_input is None:
        sample_input = guess_torch(model)
    if sample_input is None:
        raise ExportError(
            f"cannot guess an input for {type(model).__qualname__}: pass sample_input=... (a tensor, a tuple of "
            "tensors or a dict of keyword inputs) or input_shape=(...) without the batch axis."
        )
    if isinstance(sample_input, Mapping):
        kwargs = {str(k): _batch2(_to_tensor(v, torch)) for k, v in sample_input.items()}
        return (), kwargs
    items = sample_input if isinstance(sample_input, (tuple, list)) else (sample_input,)
    return tuple(_batch2(_to_tensor(v, torch)) for v in items), {}


def _batch2(tensor: Any) -> Any:
    """A batch of one would make the exporter specialise the batch axis to 1: repeat it to two rows."""
    if tensor.dim() >= 1 and tensor.shape[0] == 1:
        return tensor.repeat(2, *([1] * (tensor.dim() - 1)))
    return tensor


def _input_names(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    import inspect

    if kwargs:
        return []  # keyword inputs keep their names
    try:
        params = [
            p.name for p in inspect.signature(model.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if len(params) >= len(args):
        return params[: len(args)]
    return [f"input_{i}" for i in range(len(args))]


def _dynamic_shapes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    torch = import_torch()
    auto = torch.export.Dim.AUTO

    def spec(t: Any) -> dict[int, Any]:
        if t.dim() == 0:
            return {}
        axes = {0: auto}
        if not t.is_floating_point() and t.dim() >= 2:  # token ids / masks: the sequence axis too
            axes[1] = auto
        return axes

    if kwargs:
        return {k: spec(v) for k, v in kwargs.items()}
    return tuple(spec(a) for a in args)


# --------------------------------------------------------------------------- graph clean-up
def _clean_dropout(proto: onnx.ModelProto) -> None:
    """Drop Dropout's ``training_mode`` input so onnxruntime computes inference (identity)."""
    for node in proto.graph.node:
        if node.op_type == "Dropout" and node.domain in ("", "ai.onnx") and len(node.input) > 2:
            del node.input[2:]


def _drop_zero_bias(proto: onnx.ModelProto) -> None:
    """Remove a convolution's bias that the exporter builds as zeros expanded to a wrong shape.

    A bias-less ``Conv3d`` exports (train mode, ``optimize=False``) with the bias ``Expand(0, [out_channels, 2])``,
    which onnxruntime rejects (a bias must be 1-D). A zero bias is no bias: the input is dropped, and the nodes
    that only built it with it.
    """
    producers = {o: n for n in proto.graph.node for o in n.output}
    dropped = False
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 3 or not node.input[2]:
            continue
        expand = producers.get(node.input[2])
        if expand is not None and expand.op_type == "Expand" and _zero_constant(producers, expand.input[0]):
            del node.input[2]
            dropped = True
    if dropped:
        _remove_dead(proto)


def _zero_constant(producers: Mapping[str, onnx.NodeProto], name: str) -> bool:
    """Whether ``name`` is a Constant node's all-zero value (possibly through CastLike)."""
    node = producers.get(name)
    if node is not None and node.op_type == "CastLike":
        node = producers.get(node.input[0])
    if node is None or node.op_type != "Constant":
        return False
    value = next((a for a in node.attribute if a.name == "value"), None)
    return value is not None and not np.any(onnx.numpy_helper.to_array(value.t))


def _remove_dead(proto: onnx.ModelProto) -> None:
    """Remove the nodes none of whose outputs reach a graph output (values a kept subgraph reads stay)."""
    live = {o.name for o in proto.graph.output}
    keep: list[onnx.NodeProto] = []
    for node in reversed(list(proto.graph.node)):
        if any(o in live for o in node.output if o):
            keep.append(node)
            live.update(_reads(node))
    del proto.graph.node[:]
    proto.graph.node.extend(reversed(keep))


def _reads(node: onnx.NodeProto) -> Iterator[str]:
    """The value names ``node`` reads, those its subgraphs (If / Loop bodies) read included."""
    yield from (i for i in node.input if i)
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for inner in sub.node:
                yield from _reads(inner)


def _layer_map(proto: onnx.ModelProto) -> dict[str, str]:
    """ONNX node -> deepest module path, from ``pkg.torch.onnx.name_scopes`` / ``class_hierarchy``."""
    layer_map: dict[str, str] = {}
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = _literal_list(meta.get("pkg.torch.onnx.name_scopes"))
        classes = _literal_list(meta.get("pkg.torch.onnx.class_hierarchy"))
        if not scopes:
            continue
        if len(classes) == len(scopes):  # the aten op's scope has a class 'aten.*'; modules come before it
            modules = [s for s, c in zip(scopes, classes) if not c.startswith(("aten.", "prims.", "<built-in"))]
        else:
            modules = scopes[:-1]
        # the exporter's placeholder scope for nodes outside any module starts with '_empty_nn_module_stack'
        deepest = next((s for s in reversed(modules) if s and not s.startswith("_empty_nn_module_stack")), "")
        if deepest:
            layer_map[node.name] = deepest
    return layer_map


def _literal_list(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


# --------------------------------------------------------------------------- state
@contextlib.contextmanager
def _preserved(model: Any) -> Iterator[None]:
    """Restore every module's mode, in-place flag, the parameters/buffers and requires_grad exactly."""
    torch = import_torch()
    modes = [(m, m.training) for m in model.modules()]
    inplace = [(m, m.inplace) for m in model.modules() if hasattr(m, "inplace") and isinstance(m.inplace, bool)]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    with torch.no_grad():
        saved = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode
        for module, flag in inplace:
            module.inplace = flag
        for param, flag in grads:
            param.requires_grad_(flag)
        with torch.no_grad():
            for key, value in model.state_dict(keep_vars=True).items():
                if key in saved and value is not None:
                    value.copy_(saved[key])
