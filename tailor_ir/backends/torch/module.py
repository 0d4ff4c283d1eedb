"""``rehydrate``: build the trainable module and check it against onnxruntime."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ...errors import UnsupportedOpError
from ...graph import Graph, weight_free
from ...imports import import_onnx2torch, import_torch
from ...shared_weights import writable_weights

torch = import_torch()
import_onnx2torch()
from torch import fx, nn  # noqa: E402

from . import converters as _converters  # noqa: E402,F401  (registers the converters)
from .builder import build  # noqa: E402
from .dtypes import check_graph, to_numpy, to_torch  # noqa: E402
from .expand import expand_functions  # noqa: E402
from .prepass import prepare  # noqa: E402
from .registry import find  # noqa: E402

BACKEND = "torch"


class WeightTree(nn.Module):
    """Holds the graph's weights as parameters under their own dotted names (``layer1.0.conv1.weight``)."""

    def forward(self) -> None:  # pragma: no cover - a container
        raise RuntimeError("WeightTree is a parameter container")


class RehydratedModule(nn.Module):
    """A Graph run as a torch module: ``forward`` takes the graph inputs positionally or by name.

    ``weights`` holds one parameter per weight initializer; ``weight_names`` maps initializer name ->
    parameter; ``graph`` is the torch.fx GraphModule built by onnx2torch (BatchNorm / Dropout modules inside).
    """

    def __init__(self, graph_module: fx.GraphModule, tree: WeightTree, params: dict[str, nn.Parameter],
                 input_names: list[str], output_names: list[str]) -> None:
        super().__init__()
        self.weights = tree
        self.graph = graph_module
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self._params = params
        self._single = len(output_names) == 1

    @property
    def weight_names(self) -> dict[str, nn.Parameter]:
        """Initializer (ONNX / user) name -> its parameter."""
        return dict(self._params)

    def weight(self, name: str) -> nn.Parameter:
        """The parameter of one initializer."""
        try:
            return self._params[name]
        except KeyError:
            from ...errors import UnknownLayerError

            raise UnknownLayerError(name, self._params, what="weight") from None

    def freeze(self, names: Iterable[str], frozen: bool = True) -> None:
        """Set ``requires_grad`` of the named weights (``frozen=False`` unfreezes)."""
        for name in names:
            self.weight(name).requires_grad_(not frozen)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            args = _bind(self.input_names, args, kwargs)
        elif len(args) != len(self.input_names):
            raise TypeError(f"the model takes {len(self.input_names)} inputs {self.input_names}, got {len(args)}")
        out = self.graph(*args)
        if self._single:
            return out[0] if isinstance(out, (tuple, list)) else out
        return tuple(out)


def current_initializers(model: RehydratedModule) -> dict[str, np.ndarray]:
    """The model's current value of every graph initializer it holds as state, by initializer name.

    Weights (trainable or frozen) and BatchNorm running statistics; writing these into the Graph the model
    came from gives an ONNX model that computes what the model computes now (``finetuner.export``).
    """
    from .converters.norm import BatchNorm

    if not isinstance(model, RehydratedModule):
        raise TypeError(f"expected a model rehydrated by tailor_ir, got {type(model).__name__}")
    values = {name: param.detach().cpu().numpy().copy() for name, param in model.weight_names.items()}
    for module in model.modules():
        if isinstance(module, BatchNorm) and module.statistic_names:
            mean, var = module.statistic_names
            values[mean] = module.running_mean.detach().cpu().numpy().copy()
            values[var] = module.running_var.detach().cpu().numpy().copy()
    return values


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


# --------------------------------------------------------------------------- checks
def check_supported(graph: Graph) -> None:
    """Raise UnsupportedOpError for the first node without a converter at the graph's opset.

    A node ONNX defines as a function of other ops counts as supported when every op of its body is.
    """
    versions = {imp.domain or "": int(imp.version) for imp in graph.model.opset_import}
    nodes = graph.model.graph.node
    if any(find(n.op_type, versions.get("", 0)) is None for n in nodes if n.domain in ("", "ai.onnx")):
        nodes = expand_functions(weight_free(graph.model)[0]).graph.node
    for node in nodes:
        domain = "" if node.domain == "ai.onnx" else node.domain
        opset = versions.get(domain, 0)
        if find(node.op_type, opset, domain) is None:
            raise UnsupportedOpError(node.op_type, opset, node.name or node.op_type, graph.layer_of(node), BACKEND)


# --------------------------------------------------------------------------- build
def rehydrate(graph: Graph, check: bool = True, sample_inputs: Any = None) -> RehydratedModule:
    """Build a trainable torch module computing ``graph`` (see the package docstring); eval mode on return."""
    check_supported(graph)
    check_graph(graph)
    statistics = _batch_norm_statistics(graph)  # buffers of the BatchNorm modules, never parameters
    weights = [i.name for i in graph.model.graph.initializer if i.name in (graph.weights or ()) and i.name not in statistics]
    prepared = prepare(graph, weights)
    gm = build(prepared, graph)
    tree, params = _weight_tree(graph, weights)
    _promote(gm, tree, params, len(graph.input_names))
    model = RehydratedModule(gm, tree, params, graph.input_names, graph.output_names)
    model.eval()
    if check:
        check_equivalence(model, graph, sample_inputs)
    return model


def _batch_norm_statistics(graph: Graph) -> set[str]:
    """The running mean / variance inputs of BatchNormalization nodes (a foreign ONNX file marks them weights)."""
    names: set[str] = set()
    for node in graph.model.graph.node:
        if node.op_type == "BatchNormalization" and len(node.input) >= 5:
            names.update(node.input[3:5])
    return names


def _weight_tree(graph: Graph, weights: list[str]) -> tuple[WeightTree, dict[str, nn.Parameter]]:
    tree = WeightTree()
    params: dict[str, nn.Parameter] = {}
    for name, array in writable_weights(graph, weights).items():
        param = nn.Parameter(torch.from_numpy(array), requires_grad=name not in graph.frozen)
        params[name] = param
        _place(tree, name, param)
    return tree, params


def _place(tree: nn.Module, name: str, param: nn.Parameter) -> str:
    """Register ``param`` under its dotted path; fall back to a flat, escaped name on conflicts."""
    parts = name.split(".")
    if all(parts):
        module = tree
        ok = True
        for part in parts[:-1]:
            child = module._modules.get(part)
            if child is None:
                if part in module._parameters or hasattr(module, part):
                    ok = False
                    break
                child = WeightTree()
                module.add_module(part, child)
            module = child
        if ok and parts[-1] not in module._modules and parts[-1] not in module._parameters and not hasattr(
            type(module), parts[-1]
        ):
            module.register_parameter(parts[-1], param)
            return name
    flat = "_w_" + "".join(c if c.isalnum() else "_" for c in name)
    while flat in tree._parameters:
        flat += "_"
    tree.register_parameter(flat, param)
    return flat


def _promote(gm: fx.GraphModule, tree: WeightTree, params: dict[str, nn.Parameter], n_inputs: int) -> None:
    """Replace the weight placeholders of the fx graph with reads of the tree's parameters."""
    gm.add_module("weights", tree)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    weight_nodes = placeholders[n_inputs:]
    if len(weight_nodes) != len(params):
        raise RuntimeError(f"expected {len(params)} weight placeholders, found {len(weight_nodes)}")
    qual = {id(p): n for n, p in tree.named_parameters(remove_duplicate=False)}
    first = next(n for n in gm.graph.nodes if n.op != "placeholder")
    for param, node in zip(params.values(), weight_nodes):
        with gm.graph.inserting_before(first):
            getter = gm.graph.get_attr("weights." + qual[id(param)])
        node.replace_all_uses_with(getter)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()


# --------------------------------------------------------------------------- equivalence
def numpy_forward(model: RehydratedModule, graph: Graph) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    """``feed -> outputs``: the module run in eval mode without gradients, on and to numpy arrays."""

    def forward(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model(*[to_torch(feed[n]) for n in graph.input_names])
        finally:
            model.train(was_training)
        return [to_numpy(o) for o in ([out] if len(graph.output_names) == 1 else out)]

    return forward


def check_equivalence(model: RehydratedModule, graph: Graph, sample_inputs: Any = None, rtol: float = 1e-4) -> None:
    """Compare the module (eval mode) with onnxruntime; raise EquivalenceError beyond ``rtol`` relative."""
    from ... import runtime

    runtime.check_against_runtime(numpy_forward(model, graph), graph, sample_inputs, rtol, framework="torch")
