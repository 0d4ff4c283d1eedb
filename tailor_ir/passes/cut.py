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


def classifier_input(graph: Graph) -> str | None:
    """The tensor that feeds the final classifier (the last weighted Gemm/MatMul producing the first output).

    Walks back from the first output through bias adds, reshapes and softmax; None if the output does not come
    from such a layer (e.g. ``BertModel``, whose output is a hidden state).
    """
    value = graph.output_names[0]
    for _ in range(len(graph.model.graph.node)):
        node = graph.producers.get(value)
        if node is None:
            return None
        dynamic = _dynamic_inputs(graph, node)
        if node.op_type in ("Gemm", "MatMul") and _weighted(graph, node):
            return dynamic[0] if len(dynamic) == 1 else None
        if node.op_type not in _PASSTHROUGH or len(dynamic) != 1:
            return None
        value = dynamic[0]
    return None


def default_cut(graph: Graph) -> str:
    """Where ``to_embedding`` cuts when no layer is named: the classifier's input, else the first output."""
    return classifier_input(graph) or graph.output_names[0]
