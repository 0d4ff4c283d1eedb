"""Small hand-built ONNX graphs for testing passes alone (no framework involved)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tailor_ir.graph import Graph

OPSET = 18


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def cnn_graph(seed: int = 0) -> Graph:
    """x(B,3,8,8) -> conv(4) -> relu -> conv2(6) -> relu -> gap -> flatten -> fc(5) -> softmax."""
    rng = np.random.default_rng(seed)
    inits = [
        _init("conv.weight", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
        _init("conv.bias", rng.standard_normal(4).astype(np.float32)),
        _init("block.conv2.weight", rng.standard_normal((6, 4, 3, 3)).astype(np.float32)),
        _init("fc.weight", rng.standard_normal((5, 6)).astype(np.float32)),
        _init("fc.bias", rng.standard_normal(5).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c1"], name="n_conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="n_relu"),
        helper.make_node("Conv", ["r1", "block.conv2.weight"], ["c2"], name="n_conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="n_relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="n_gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="n_flat", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="n_fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="n_softmax", axis=-1),
    ]
    g = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 5])],
        inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    layer_map = {
        "n_conv": "conv",
        "n_relu": "act",
        "n_conv2": "block.conv2",
        "n_relu2": "block.act",
        "n_gap": "pool",
        "n_flat": "pool",
        "n_fc": "fc",
    }
    return Graph(model, layer_map=layer_map, framework="torch",
                 weights=frozenset(i.name for i in inits))


def token_graph(seed: int = 0) -> Graph:
    """input_ids(B,T), attention_mask(B,T) -> embedding table(10,4) -> dense(4x4) -> hidden (B,T,4)."""
    rng = np.random.default_rng(seed)
    inits = [
        _init("embed.weight", rng.standard_normal((10, 4)).astype(np.float32)),
        _init("dense.weight", rng.standard_normal((4, 4)).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Gather", ["embed.weight", "input_ids"], ["e"], name="n_embed", axis=0),
        helper.make_node("MatMul", ["e", "dense.weight"], ["h"], name="n_dense"),
        helper.make_node("Tanh", ["h"], ["hidden"], name="n_tanh"),
    ]
    g = helper.make_graph(
        nodes,
        "tokens",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", 4])],
        inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    return Graph(model, layer_map={"n_embed": "embed", "n_dense": "dense", "n_tanh": "dense"}, framework="torch",
                 weights=frozenset(i.name for i in inits))


def with_outputs(graph: Graph, names: list[str]) -> onnx.ModelProto:
    """The full model with extra intermediate outputs (to read activations in onnxruntime)."""
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    for name in names:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return model
