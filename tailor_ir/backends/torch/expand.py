"""Ops without a converter that ONNX defines as a function of other ops are expanded into that function body.

ONNX gives many ops (Attention, RMSNormalization, Swish, CenterCropPad, ...) a function body, some of them
context-dependent (built for the node's attributes and input types). A node without a converter whose schema
has one becomes a model-local function call, inlined by ``onnx.inliner`` (public API): the body's ops are then
rehydrated one by one, with the op's exact semantics as ONNX defines them.
"""

from __future__ import annotations

import onnx
import onnx.inliner
from onnx import defs, helper

from .registry import find

DOMAIN = "tailor_ir_torch.expanded"


def _function(node: onnx.NodeProto, opset: int, types: dict[str, onnx.TypeProto]) -> onnx.FunctionProto | None:
    try:
        schema = defs.get_schema(node.op_type, max_inclusive_version=opset, domain="")
    except (RuntimeError, defs.SchemaError):
        return None
    given = {a.name for a in node.attribute}
    for name, spec in schema.attributes.items():  # the body refers to attributes the node may leave at default
        if name not in given and spec.default_value and spec.default_value.type:
            node.attribute.append(spec.default_value)
    proto = onnx.FunctionProto()
    plain = [v for v in schema.function_opset_versions if v <= opset]
    if plain:
        proto.ParseFromString(schema.get_function_with_opset_version(max(plain)))
        return proto
    dependent = [v for v in schema.context_dependent_function_opset_versions if v <= opset]
    if not dependent or any(i and i not in types for i in node.input):
        return None
    input_types = [types[i].SerializeToString() if i else onnx.TypeProto().SerializeToString() for i in node.input]
    try:
        proto.ParseFromString(schema.get_context_dependent_function_with_opset_version(
            max(dependent), node.SerializeToString(), input_types))
    except Exception:  # noqa: BLE001 - the builder rejects what it cannot express: no expansion then
        return None
    return proto


def expand_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every converter-less, function-defined node inlined (returns ``model`` if none)."""
    opset = next((int(i.version) for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)
    if not any(n.domain in ("", "ai.onnx") and find(n.op_type, opset) is None for n in model.graph.node):
        return model
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - types are only needed for context-dependent bodies
        inferred = model
    g = inferred.graph
    types = {v.name: v.type for v in [*g.input, *g.value_info, *g.output]}
    for init in g.initializer:
        types.setdefault(init.name, helper.make_tensor_type_proto(init.data_type, list(init.dims)))
    changed = False
    for index, node in enumerate(model.graph.node):
        if node.domain not in ("", "ai.onnx") or find(node.op_type, opset) is not None:
            continue
        body = _function(node, opset, types)
        if body is None:
            continue
        name = f"{node.op_type}_{index}"
        body.name, body.domain = name, DOMAIN
        model.functions.append(body)
        node.op_type, node.domain = name, DOMAIN
        changed = True
    if not changed:
        return model
    if not any(i.domain == DOMAIN for i in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return onnx.inliner.inline_local_functions(model)

