"""Train-mode random ops in an exported graph, made deterministic for inference and marked for the backends.

A model exported in train mode keeps its random layers: stochastic depth and in-place dropout draw a Bernoulli
mask as ``Cast(Less(RandomUniformLike(t), p))``; Hugging Face's drop path (Swin, ConvNeXt, BEiT, ...) draws it
as ``Floor(RandomUniformLike(t) + p)``. Each such draw becomes one standard ``Expand(p, Shape(t))`` node
computing its **expected value** p — what the layer computes in eval mode (the mask is scaled by 1/p, so the
expectation gives the identity) — so onnxruntime and the equivalence check see the eval-mode model. The node
carries the metadata ``tailor_ir.train_random`` (the distribution, JSON) so a backend makes it random again in
train mode. A ``Floor`` draw counts only with a constant p in [0, 1] and a mask that only scales (``Mul``):
otherwise it is no Bernoulli layer whose eval-mode value is its mean. Any other random op (raw
``torch.rand``/``randn`` are random in eval mode too, so there is no eval-mode value to check against) is left
as it is, and the backends refuse it with the reason.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import helper, numpy_helper

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
    constants = _Constants(g)
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
        elif node.op_type == "RandomUniformLike" and not type_users:
            keep = _floor_draw(attrs, users, consumers, outputs, out, constants)
            if keep is not None:
                # Floor(U(0,1) + p) is Bernoulli(p), p already in the draw's type: no cast
                add, floor = users[0], consumers[users[0].output[0]][0]
                replace[id(floor)] = _expand(node, keep, node.input[0], floor.output[0], "bernoulli", {}, cast=False)
                drop.update((id(node), id(add)))
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


def _floor_draw(
    attrs: dict, users: list[onnx.NodeProto], consumers: dict[str, list[onnx.NodeProto]], outputs: set[str],
    out: str, constants: _Constants,
) -> str | None:
    """The keep probability p of ``Mul(..., Floor(Add(U(0,1), p)))`` (either Add order), else None."""
    if float(attrs.get("low", 0.0)) != 0.0 or float(attrs.get("high", 1.0)) != 1.0 or out in outputs:
        return None
    if len(users) != 1 or users[0].op_type != "Add" or users[0].output[0] in outputs:
        return None
    add = users[0]
    others = [name for name in add.input if name != out]
    keep = constants.value(others[0]) if len(others) == 1 else None
    if keep is None or keep.size == 0 or not np.all((keep >= 0) & (keep <= 1)):
        return None
    floors = consumers.get(add.output[0], [])
    if len(floors) != 1 or floors[0].op_type != "Floor" or floors[0].output[0] in outputs:
        return None
    masks = consumers.get(floors[0].output[0], [])
    if not masks or any(m.op_type != "Mul" for m in masks):  # the mask only scales: its expectation passes through
        return None
    return others[0]


class _Constants:
    """Values of the graph's initializers and tensor-valued Constant nodes, read only when asked for."""

    def __init__(self, g: onnx.GraphProto) -> None:
        self._tensors = {i.name: i for i in g.initializer}
        for node in g.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.attribute) == 1:
                if node.attribute[0].name == "value":
                    self._tensors[node.output[0]] = node.attribute[0].t

    def value(self, name: str) -> np.ndarray | None:
        tensor = self._tensors.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)


def _marked(node: onnx.NodeProto, kind: str, params: dict) -> onnx.NodeProto:
    entry = node.metadata_props.add()
    entry.key, entry.value = MARK, json.dumps({"kind": kind, **params})
    return node


def _expand(
    src: onnx.NodeProto, value: str, like: str, out: str, kind: str, params: dict, cast: bool = True
) -> list[onnx.NodeProto]:
    """value (cast like ``like`` with ``cast``) expanded to ``like``'s shape, marked."""
    base = src.name or out
    nodes = [helper.make_node("Shape", [like], [base + "__shape"], name=base + "__shape")]
    if cast:
        nodes.append(helper.make_node("CastLike", [value, like], [base + "__value"], name=base + "__value"))
        value = base + "__value"
    nodes.append(_marked(helper.make_node("Expand", [value, base + "__shape"], [out], name=base), kind, params))
    return nodes
