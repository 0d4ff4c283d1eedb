"""Train-mode random ops in an exported graph, made deterministic for inference and marked for the backends.

A model exported in train mode keeps its random layers: stochastic depth and in-place dropout draw a Bernoulli
mask as ``Cast(Less(RandomUniformLike(t), p))``. Each such draw becomes one standard ``Expand(p, Shape(t))``
node computing its **expected value** p — what the layer computes in eval mode (the mask is scaled by 1/p, so
the expectation gives the identity) — so onnxruntime and the equivalence check see the eval-mode model. The
node carries the metadata ``tailor_ir.train_random`` (the distribution, JSON) so a backend makes it random
again in train mode. Any other random op (raw ``torch.rand``/``randn`` are random in eval mode too, so there
is no eval-mode value to check against) is left as it is, and the backends refuse it with the reason.
"""

from __future__ import annotations

import json

import onnx
from onnx import helper

MARK = "tailor_ir.train_random"


def mark(proto: onnx.ModelProto) -> int:
    """Rewrite every recognised train-mode random op of ``proto`` in place; return how many were rewritten."""
    g = proto.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in g.output}
    replace: dict[int, list[onnx.NodeProto]] = {}
    drop: set[int] = set()
    for node in g.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        out = node.output[0]
        users = consumers.get(out, [])
        type_users = [u for u in users if u.op_type == "CastLike" and u.input[1] == out and u.input[0] != out]
        users = [u for u in users if u not in type_users]
        if type_users and "dtype" in attrs:
            continue
        if node.op_type == "RandomUniformLike" and _is_bernoulli_draw(attrs, users, outputs, out):
            less = users[0]
            for user in type_users:  # CastLike(p, draw) only reads the draw's type: the input's type
                user.input[1] = node.input[0]
            if not all(u.op_type in ("Cast", "CastLike") for u in consumers.get(less.output[0], [])):
                continue
            # Less(U(0,1), p) is Bernoulli(p): its expectation is p, as float (the casts after it keep that)
            # placed where the Less was: p is computed after the draw
            replace[id(less)] = _expand(node, less.input[1], node.input[0], less.output[0], "bernoulli", {})
            drop.add(id(node))
    if not replace:
        return 0
    nodes: list[onnx.NodeProto] = []
    for node in g.node:
        if id(node) in drop:
            continue
        nodes.extend(replace.get(id(node), [node]))
    del g.node[:]
    g.node.extend(nodes)
    retyped = {n.output[0] for n in nodes if any(p.key == MARK for p in n.metadata_props)}
    kept = [v for v in g.value_info if v.name not in retyped]  # the draws were bool; their expectation is float
    del g.value_info[:]
    g.value_info.extend(kept)
    return len(replace)


def _is_bernoulli_draw(attrs: dict, users: list[onnx.NodeProto], outputs: set[str], out: str) -> bool:
    return (
        float(attrs.get("low", 0.0)) == 0.0 and float(attrs.get("high", 1.0)) == 1.0 and out not in outputs
        and len(users) == 1 and users[0].op_type == "Less" and users[0].input[0] == out
    )


def _marked(node: onnx.NodeProto, kind: str, params: dict) -> onnx.NodeProto:
    entry = node.metadata_props.add()
    entry.key, entry.value = MARK, json.dumps({"kind": kind, **params})
    return node


def _expand(src: onnx.NodeProto, value: str, like: str, out: str, kind: str, params: dict) -> list[onnx.NodeProto]:
    """value (cast like ``like``) expanded to ``like``'s shape, marked."""
    base = src.name or out
    return [
        helper.make_node("Shape", [like], [base + "__shape"], name=base + "__shape"),
        helper.make_node("CastLike", [value, like], [base + "__value"], name=base + "__value"),
        _marked(helper.make_node("Expand", [base + "__value", base + "__shape"], [out], name=base), kind, params),
    ]
