"""Choosing where to cut: the input of the final classifier, or the model's final output."""

from __future__ import annotations

import onnx

from ..graph import Graph

# Ops a classifier's logits may pass through on their way to the output.
_PASSTHROUGH = {"Identity", "Reshape", "Flatten", "Squeeze", "Add", "Softmax", "LogSoftmax", "Cast", "Sigmoid"}


def _weighted(graph: Graph, node: onnx.NodeProto) -> bool:
    weights = graph.weights or frozenset()
    for name in node.input:
        if name in weights:
            return True
        producer = graph.producers.get(name)
        if producer is not None and producer.op_type in ("Transpose", "Identity", "Cast"):
            if producer.input and producer.input[0] in weights:
                return True
    return False


def _dynamic_inputs(graph: Graph, node: onnx.NodeProto) -> list[str]:
    return [i for i in node.input if i and i in graph.dynamic_values]


# Ops between a 1x1-convolution classifier and the output (SqueezeNet: conv -> ReLU -> pool -> flatten).
_POOLING = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "AveragePool", "MaxPool"}
_SPATIAL_TO_VECTOR = _POOLING | {"Flatten", "Reshape", "Squeeze"}
_DATA_FIRST = {"Reshape", "Squeeze", "ReduceMean", "ReduceMax", "Flatten", "Resize"}
_AFTER_CONV = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish"}


def _pointwise_conv(graph: Graph, node: onnx.NodeProto) -> bool:
    """A weighted, ungrouped Conv whose kernel is 1 in every spatial dim."""
    if node.op_type != "Conv" or not _weighted(graph, node):
        return False
    attrs = {a.name: a for a in node.attribute}
    if "group" in attrs and attrs["group"].i != 1:
        return False
    if "kernel_shape" in attrs:
        return all(k == 1 for k in attrs["kernel_shape"].ints)
    shape = graph.shape_of(node.input[1]) if len(node.input) > 1 else None
    return shape is not None and len(shape) > 2 and all(d == 1 for d in shape[2:])


def classifier_input(graph: Graph) -> str | None:
    """The tensor that feeds the final classifier, or None.

    The classifier is the last weighted Gemm/MatMul producing the first output, or a final 1x1 convolution
    whose result is pooled / flattened into the output (SqueezeNet, Keras MobileNetV3), or — in a
    dense-prediction model (torchvision's FCN, DeepLabV3) — a final 1x1 convolution whose per-pixel class
    scores are only resized to the output: its input is the per-pixel features, which ``pooling="auto"`` then
    averages over space. Walks back from the first output through bias adds, reshapes, softmax (and, for a
    convolution, pooling / resizing and its activation); None if the output does not come from such a layer
    (e.g. ``BertModel``, whose output is a hidden state).
    """
    value = graph.output_names[0]
    vectorised = False  # a pooling / flatten seen between the output and here
    resized = False  # a Resize seen between the output and here (per-pixel scores upsampled to the input size)
    for _ in range(len(graph.model.graph.node)):
        node = graph.producers.get(value)
        if node is None:
            return None
        dynamic = _dynamic_inputs(graph, node)
        if node.op_type in _DATA_FIRST and node.input[0] in dynamic:  # the shape/axes inputs may be computed
            dynamic = [node.input[0]]
        if node.op_type in ("Gemm", "MatMul") and _weighted(graph, node):
            return dynamic[0] if len(dynamic) == 1 else None
        if (vectorised or resized) and _pointwise_conv(graph, node):
            return dynamic[0] if len(dynamic) == 1 else None
        if node.op_type in _SPATIAL_TO_VECTOR:
            vectorised = True
        elif node.op_type == "Resize":
            resized = True
        elif node.op_type not in _PASSTHROUGH and not ((vectorised or resized) and node.op_type in _AFTER_CONV):
            return None
        if len(dynamic) != 1:
            return None
        value = dynamic[0]
    return None


def default_cut(graph: Graph) -> str:
    """Where ``to_embedding`` cuts when no layer is named: the classifier's input, else the first output."""
    return classifier_input(graph) or graph.output_names[0]
