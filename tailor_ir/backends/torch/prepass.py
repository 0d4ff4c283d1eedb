"""Pre-pass on a copy of the ONNX model before onnx2torch sees it.

- ops without a converter that ONNX defines as functions are inlined (``expand``);
- Dropout loses a constant ``training_mode`` input (the module follows ``model.train()`` / ``eval()`` instead);
- the frontend's train-mode random draws (``frontends.train_random``) become ``TrainRandom`` nodes;
- constant subgraphs (exporter shape arithmetic, ``Shape`` of static-shaped values, int tables) are folded at
  build time with onnxruntime, never through a weight, so the weights keep their names and stay trainable;
- every weight initializer becomes a graph input (after the real inputs), so no converter absorbs a private
  copy of it: the rehydrator feeds each one from exactly one ``nn.Parameter`` (weight tying kept);
- graph outputs produced by multi-output nodes get an Identity so each output is one fx value.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...graph import Graph
from ...protos import model_shell
from .expand import expand_functions

NONDETERMINISTIC = {"RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Multinomial", "Bernoulli"}
MAX_FOLDED_ELEMENTS = 1 << 22
LINEAR_DOMAIN = "tailor_ir_torch"


def prepare(graph: Graph, weights: list[str]) -> onnx.ModelProto:
    """A copy of ``graph.model`` ready for onnx2torch (see the module docstring); the weights are not copied."""
    model = model_shell(graph.model, skip_graph=("initializer",))
    skipped = set(weights)
    model.graph.initializer.extend(i for i in graph.model.graph.initializer if i.name not in skipped)
    _weights_to_inputs(model, weights, graph.initializers)
    model = expand_functions(model)
    g = model.graph
    constants = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    for node in g.node:
        if node.op_type == "Dropout" and node.domain in ("", "ai.onnx") and len(node.input) > 2:
            if node.input[2] in constants or not node.input[2]:  # a fixed mode: the module's mode decides
                del node.input[2:]
    _train_random_nodes(model)
    _fold_constants(model, graph, set(weights))
    _fuse_linear(model, set(weights))
    _single_output_producers(model)
    _prune_initializers(model)
    return model


def _train_random_nodes(model: onnx.ModelProto) -> None:
    """The frontend's marked expectation nodes (``frontends.train_random``) become TrainRandom nodes."""
    from ...frontends.train_random import MARK

    for index, node in enumerate(model.graph.node):
        marks = [p.value for p in node.metadata_props if p.key == MARK]
        if not marks:
            continue
        replacement = helper.make_node("TrainRandom", list(node.input), list(node.output), name=node.name,
                                       domain=LINEAR_DOMAIN, spec=marks[0])
        model.graph.node[index].CopyFrom(replacement)
        if not any(o.domain == LINEAR_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(LINEAR_DOMAIN, 1))


def _static_shape(graph: Graph, name: str) -> list[int] | None:
    shape = graph.shape_of(name)
    if shape is None or any(not isinstance(d, int) or d <= 0 for d in shape):
        if shape == ():
            return []
        return None
    return [int(d) for d in shape]


def _shape_slice(graph: Graph, node: onnx.NodeProto) -> list[int] | None:
    """The static dims a Shape node returns (honouring start/end), or None if any of them is symbolic."""
    shape = graph.shape_of(node.input[0])
    if shape is None:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    rank = len(shape)
    start, end = int(attrs.get("start", 0)), int(attrs.get("end", rank))
    start, end = (start + rank if start < 0 else start), (end + rank if end < 0 else end)
    dims = list(shape[max(0, start) : min(rank, end)])
    if any(not isinstance(d, int) or d <= 0 for d in dims):
        return None
    return [int(d) for d in dims]


def _fuse_linear(model: onnx.ModelProto, weights: set[str]) -> None:
    """Transpose(W) -> MatMul(x, W^T) [-> Add(b)] becomes one F.linear node (what nn.Linear runs)."""
    g = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    outputs = {o.name for o in g.output}
    drop: set[int] = set()
    replace: dict[int, onnx.NodeProto] = {}
    for t in g.node:
        if t.op_type != "Transpose" or t.input[0] not in weights or t.output[0] in outputs:
            continue
        perm = [list(a.ints) for a in t.attribute if a.name == "perm"]
        if perm != [[1, 0]]:
            continue
        users = consumers.get(t.output[0], [])
        if not users or any(u.op_type != "MatMul" or u.input[1] != t.output[0] or u.input[0] == t.output[0]
                            for u in users):
            continue
        for mm in users:
            adds = consumers.get(mm.output[0], [])
            bias = None
            out = mm.output[0]
            if (len(adds) == 1 and adds[0].op_type == "Add" and mm.output[0] not in outputs
                    and adds[0].input[0] == mm.output[0] and adds[0].input[1] in weights):
                bias, out = adds[0].input[1], adds[0].output[0]
                drop.add(id(adds[0]))
            inputs = [mm.input[0], t.input[0]] + ([bias] if bias else [])
            replace[id(mm)] = helper.make_node("Linear", inputs, [out], name=mm.name, domain=LINEAR_DOMAIN)
        drop.add(id(t))
    if not replace:
        return
    nodes = [replace.get(id(n), n) for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(nodes)
    if not any(o.domain == LINEAR_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(LINEAR_DOMAIN, 1))


def _fold_constants(model: onnx.ModelProto, graph: Graph, weights: set[str]) -> None:
    g = model.graph
    const: dict[str, None] = {i.name: None for i in g.initializer if i.name not in weights}
    folded_nodes: list[onnx.NodeProto] = []
    shape_values: dict[str, np.ndarray] = {}
    for node in g.node:
        if node.domain not in ("", "ai.onnx") or node.op_type in NONDETERMINISTIC or "Sequence" in node.op_type:
            continue
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            continue
        if node.op_type == "Shape":
            dims = _shape_slice(graph, node)
            if dims is None:
                continue
            shape_values[node.output[0]] = np.asarray(dims, dtype=np.int64)
            const[node.output[0]] = None
            folded_nodes.append(node)
            continue
        if node.op_type == "Size":
            shape = _static_shape(graph, node.input[0])
            if shape is None:
                continue
            shape_values[node.output[0]] = np.asarray(int(np.prod(shape)), dtype=np.int64)
            const[node.output[0]] = None
            folded_nodes.append(node)
            continue
        if all((not i) or i in const for i in node.input):
            folded_nodes.append(node)
            const.update((o, None) for o in node.output if o)
    if not folded_nodes:
        return
    folded_ids = {id(n) for n in folded_nodes}
    remaining = [n for n in g.node if id(n) not in folded_ids]
    needed = {i for n in remaining for i in n.input if i} | {o.name for o in g.output}
    produced = {o for n in folded_nodes for o in n.output if o}
    boundary = [v for v in produced if v in needed]
    if not boundary:
        _replace_nodes(g, remaining, [])
        return
    try:
        values = _evaluate(model, folded_nodes, boundary, shape_values)
    except Exception:  # noqa: BLE001 - onnxruntime lacks a kernel (e.g. bfloat16): the nodes stay and run in torch
        return
    new_inits = []
    for name, value in zip(boundary, values):
        if value.size > MAX_FOLDED_ELEMENTS:  # keep huge computed tables as nodes
            return
        new_inits.append(numpy_helper.from_array(np.asarray(value), name))
    _replace_nodes(g, remaining, new_inits)


def _replace_nodes(g: onnx.GraphProto, remaining: list[onnx.NodeProto], inits: list[onnx.TensorProto]) -> None:
    kept = [onnx.NodeProto() for _ in remaining]
    for dst, src in zip(kept, remaining):
        dst.CopyFrom(src)
    del g.node[:]
    g.node.extend(kept)
    g.initializer.extend(inits)
    names = {i.name for i in inits}
    keep_info = [v for v in g.value_info if v.name not in names]
    del g.value_info[:]
    g.value_info.extend(keep_info)


def _evaluate(
    model: onnx.ModelProto, nodes: list[onnx.NodeProto], outputs: list[str], shape_values: dict[str, np.ndarray]
) -> list[np.ndarray]:
    """Run the constant nodes in onnxruntime (no graph optimisation) and return ``outputs``."""
    from ... import runtime

    g = model.graph
    inits_needed = {i for n in nodes for i in n.input if i}
    inits = [i for i in g.initializer if i.name in inits_needed]
    inits += [numpy_helper.from_array(v, k) for k, v in shape_values.items()]
    body = [n for n in nodes if n.output[0] not in shape_values]
    sub = helper.make_graph(
        body, "fold", [], [helper.make_empty_tensor_value_info(o) for o in outputs], initializer=inits
    )
    sub_model = helper.make_model(sub, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    direct = {o: shape_values[o] for o in outputs if o in shape_values}
    if len(direct) == len(outputs):
        return [direct[o] for o in outputs]
    sess = runtime.session(sub_model, providers=["CPUExecutionProvider"], optimization="none")
    return list(sess.run(outputs, {}))


def _weights_to_inputs(model: onnx.ModelProto, weights: list[str], initializers: dict[str, onnx.TensorProto]) -> None:
    """Each weight (left out of ``model``'s initializers) becomes a typed graph input after the real inputs."""
    for name in weights:
        init = initializers[name]
        model.graph.input.append(helper.make_tensor_value_info(name, init.data_type, list(init.dims)))


def _single_output_producers(model: onnx.ModelProto) -> None:
    g = model.graph
    multi = {o for n in g.node if len([x for x in n.output if x]) > 1 for o in n.output if o}
    for out in g.output:
        if out.name not in multi:
            continue
        inner = out.name + "__value"
        for node in g.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if i == out.name else i for i in node.input]
        g.node.append(helper.make_node("Identity", [inner], [out.name], name=out.name + "__identity"))


def _prune_initializers(model: onnx.ModelProto) -> None:
    g = model.graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
