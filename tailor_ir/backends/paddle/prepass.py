"""Pre-pass on a copy of the ONNX model before the converters see it.

- Dropout loses its ``training_mode`` input (the layer follows ``model.train()`` / ``eval()`` instead);
- constant subgraphs (exporter shape arithmetic on constants, Constant nodes, int tables) are folded at build
  time with ``onnx.reference``, never through a weight, so the weights keep their names and stay trainable;
- patterns that have a real paddle layer are rewritten into nodes of the private domain ``tailor_ir_paddle``:
  Conv + Add(Reshape(bias)) -> Conv with a bias input; MatMul/Gemm by a weight (+ Add of a bias weight) ->
  ``Linear``; LSTM/GRU whose W/R/B are paddle's own weights gate-reordered (what paddle2onnx writes) ->
  ``PaddleRNN`` reading those weights directly (all-zero initial states dropped);
- nodes nothing needs any more (the bias Reshape, the RNN weight reordering) are removed.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...graph import Graph

DOMAIN = "tailor_ir_paddle"
NONDETERMINISTIC = {"RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Multinomial", "Bernoulli"}
MAX_FOLDED_ELEMENTS = 1 << 22
# paddle keeps gates as i,f,c,o (LSTM) and r,z,c (GRU); ONNX as i,o,f,c and z,r,h
GATE_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}


def prepare(graph: Graph) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A rewritten copy of ``graph.model`` and the build-time constants (see the module docstring)."""
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    weights = set(graph.weights or ())
    _unique_names(model)
    for node in model.graph.node:
        if node.op_type == "Dropout" and node.domain in ("", "ai.onnx") and len(node.input) > 2:
            del node.input[2:]
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if i.name not in weights}
    _fold_constants(model, consts)
    _fuse_conv_bias(model, weights, consts)
    _fuse_linear(model, weights)
    _rnn_weights(model, graph, weights, consts)
    _remove_dead(model)
    return model, consts


def _fold_constants(model: onnx.ModelProto, consts: dict[str, np.ndarray]) -> None:
    """Evaluate nodes whose inputs are all constants (not weights) once, with the ONNX reference evaluator."""
    g = model.graph
    known = set(consts)
    folded: list[onnx.NodeProto] = []
    keep: list[onnx.NodeProto] = []
    for node in g.node:
        has_subgraph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
        if (node.domain in ("", "ai.onnx") and node.op_type not in NONDETERMINISTIC and not has_subgraph
                and all(i in known for i in node.input if i)):
            folded.append(node)
            known.update(o for o in node.output if o)
        else:
            keep.append(node)
    if not folded:
        return
    needed = sorted({i for n in keep for i in n.input if i} | {o.name for o in g.output})
    outputs = [o for n in folded for o in n.output if o and o in needed]
    if outputs:
        from onnx.reference import ReferenceEvaluator

        used = {i for n in folded for i in n.input if i}
        sub = helper.make_graph(
            folded, "fold", [],
            [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outputs],
            [numpy_helper.from_array(np.asarray(consts[n]), n) for n in used if n in consts],
        )
        sub_model = helper.make_model(sub, opset_imports=list(model.opset_import))
        values = ReferenceEvaluator(sub_model).run(None, {})
        for name, value in zip(outputs, values):
            if np.asarray(value).size <= MAX_FOLDED_ELEMENTS:
                consts[name] = np.asarray(value)
    del g.node[:]
    g.node.extend(keep)


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    result: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            result.setdefault(name, []).append(node)
    return result


def _only_consumer(model: onnx.ModelProto, consumers: dict[str, list[onnx.NodeProto]], value: str,
                   op_type: str) -> onnx.NodeProto | None:
    users = consumers.get(value, [])
    if len(users) == 1 and users[0].op_type == op_type and value not in {o.name for o in model.graph.output}:
        return users[0]
    return None


def _fuse_conv_bias(model: onnx.ModelProto, weights: set[str], consts: dict[str, np.ndarray]) -> None:
    """Conv(x, W) -> Add(., Reshape(b, [1, -1, 1, 1])) becomes Conv(x, W, b) (paddle2onnx writes conv bias so)."""
    consumers = _consumers(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    drop: set[str] = set()
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) != 2 or node.input[1] not in weights:
            continue
        add = _only_consumer(model, consumers, node.output[0], "Add")
        if add is None:
            continue
        other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        reshape = producers.get(other)
        if reshape is None or reshape.op_type != "Reshape" or reshape.input[0] not in weights:
            continue
        shape = consts.get(reshape.input[1])
        if shape is None or len(shape) < 3 or any(int(d) not in (1, -1) for i, d in enumerate(shape) if i != 1):
            continue
        if len(consumers.get(other, [])) != 1:
            continue
        node.input.append(reshape.input[0])
        node.output[0] = add.output[0]
        drop.add(add.name)
    _drop(model, drop)


def _fuse_linear(model: onnx.ModelProto, weights: set[str]) -> None:
    """MatMul(x, W) [+ b] with a 2-D weight W and a 1-D bias weight b becomes Linear(x, W[, b])."""
    consumers = _consumers(model)
    inits = {i.name: i for i in model.graph.initializer}
    drop: set[str] = set()
    for node in model.graph.node:
        if node.op_type == "Gemm":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA", 0)
            if not plain or attrs.get("transB", 0) or node.input[1] not in weights:
                continue
            if len(node.input) > 2 and node.input[2] and (node.input[2] not in weights or len(inits[node.input[2]].dims) != 1):
                continue
        elif node.op_type != "MatMul" or node.input[1] not in weights or len(inits[node.input[1]].dims) != 2:
            continue
        else:
            add = _only_consumer(model, consumers, node.output[0], "Add")
            if add is not None:
                bias = add.input[1] if add.input[0] == node.output[0] else add.input[0]
                if bias in weights and list(inits[bias].dims) == [inits[node.input[1]].dims[1]]:
                    node.input.append(bias)
                    node.output[0] = add.output[0]
                    drop.add(add.name)
        node.op_type, node.domain = "Linear", DOMAIN
        del node.attribute[:]
    _drop(model, drop)
    _ensure_domain(model)


def _rnn_weights(model: onnx.ModelProto, graph: Graph, weights: set[str], consts: dict[str, np.ndarray]) -> None:
    """LSTM/GRU reading gate-reordered paddle weights becomes PaddleRNN reading those weights directly."""
    dynamic = graph.dynamic_values
    candidates = [w for w in weights if w in graph.initializers]
    for node in model.graph.node:
        if node.op_type not in GATE_ORDER or node.domain not in ("", "ai.onnx"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        inputs = list(node.input) + [""] * (8 - len(node.input))
        direction = attrs.get("direction", b"forward")
        if direction not in (b"forward", "forward") or inputs[4] or attrs.get("layout", 0) or attrs.get("clip"):
            continue
        if node.op_type == "GRU" and not attrs.get("linear_before_reset", 0):
            continue
        if any(v in dynamic for v in inputs[1:4] if v):
            continue
        w, r, b = (_evaluate(graph, v, consts) if v else None for v in inputs[1:4])
        if w is None or r is None or b is None:
            continue
        order = GATE_ORDER[node.op_type]
        hidden = int(attrs["hidden_size"])
        found = [_match(graph, candidates, w[0], order, hidden), _match(graph, candidates, r[0], order, hidden),
                 _match(graph, candidates, b[0][: len(order) * hidden], order, hidden),
                 _match(graph, candidates, b[0][len(order) * hidden:], order, hidden)]
        if any(f is None for f in found):
            continue
        states = [_unless_zeros(model, v, consts) for v in [inputs[5]] + ([inputs[6]] if node.op_type == "LSTM" else [])]
        node.input[:] = [inputs[0], *states, *found]
        node.op_type, node.domain = "PaddleRNN", DOMAIN
        del node.attribute[:]
        node.attribute.extend([helper.make_attribute("mode", _mode(order)),
                               helper.make_attribute("hidden_size", hidden)])
    _ensure_domain(model)


ZERO_PRESERVING = {"Expand", "Slice", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Cast"}


def _unless_zeros(model: onnx.ModelProto, value: str, consts: dict[str, np.ndarray]) -> str:
    """'' for an initial state that is all zeros (paddle2onnx builds them with Expand + Slice), so its
    plumbing goes; any other state is kept."""
    producers = {o: n for n in model.graph.node for o in n.output}
    source = value
    while source and source not in consts and source in producers:
        node = producers[source]
        if node.op_type == "ConstantOfShape":
            return "" if not np.any(_fill_value(node)) else value
        if node.op_type not in ZERO_PRESERVING:
            return value
        source = node.input[0]
    known = consts.get(source)
    return "" if source and known is not None and not np.any(known) else value


def _fill_value(node: onnx.NodeProto) -> np.ndarray:
    value = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "value"), None)
    return np.zeros(1, np.float32) if value is None else numpy_helper.to_array(value)


def _mode(order: list[int]) -> str:
    return "LSTM" if len(order) == 4 else "GRU"


def _evaluate(graph: Graph, value: str, consts: dict[str, np.ndarray]) -> np.ndarray | None:
    """The value of a weight-derived tensor, computed from the initializers (None if that fails)."""
    if value in graph.initializers:
        return graph.initializer_array(value)
    if value in consts:
        return consts[value]
    from onnx.reference import ReferenceEvaluator

    needed: list[str] = []
    frontier = [value]
    seen: set[str] = set()
    while frontier:
        name = frontier.pop()
        if name in seen or name in graph.initializers:
            continue
        seen.add(name)
        node = graph.producers.get(name)
        if node is None:
            return None
        needed.append(node.name)
        frontier.extend(i for i in node.input if i)
    order = [n for n in graph.model.graph.node if n.name in needed]
    used = {i for n in order for i in n.input if i in graph.initializers}
    sub = helper.make_graph(order, "w", [], [helper.make_tensor_value_info(value, onnx.TensorProto.UNDEFINED, None)],
                            [graph.initializers[n] for n in used])
    try:
        return np.asarray(ReferenceEvaluator(helper.make_model(sub, opset_imports=list(graph.model.opset_import))).run(None, {})[0])
    except Exception:  # best effort: an unmatched RNN stays an ONNX LSTM/GRU
        return None


def _match(graph: Graph, candidates: list[str], target: np.ndarray, order: list[int], hidden: int) -> str | None:
    """The weight whose gate blocks, reordered by ``order``, equal ``target``."""
    for name in candidates:
        array = graph.initializer_array(name)
        if array.shape != target.shape or array.shape[0] != len(order) * hidden:
            continue
        blocks = np.split(array, len(order), axis=0)
        if np.array_equal(np.concatenate([blocks[i] for i in order], axis=0), target):
            return name
    return None


def _unique_names(model: onnx.ModelProto) -> None:
    """Give every node a unique name (rewrites and diagnostics address nodes by name)."""
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}.node{index}"
        seen.add(node.name)


def _drop(model: onnx.ModelProto, names: set[str]) -> None:
    keep = [n for n in model.graph.node if n.name not in names]
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _ensure_domain(model: onnx.ModelProto) -> None:
    if not any(i.domain == DOMAIN for i in model.opset_import):
        model.opset_import.add(domain=DOMAIN, version=1)


def _remove_dead(model: onnx.ModelProto) -> None:
    """Remove nodes none of whose outputs reach a graph output."""
    g = model.graph
    live = {o.name for o in g.output}
    keep: list[onnx.NodeProto] = []
    for node in reversed(list(g.node)):
        if any(o in live for o in node.output if o):
            keep.append(node)
            live.update(i for i in node.input if i)
    del g.node[:]
    g.node.extend(reversed(keep))
