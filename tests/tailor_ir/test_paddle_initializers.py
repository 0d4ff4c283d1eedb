"""current_initializers: a trained paddle layer's state written back into its graph computes what the layer does."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from models import paddle_zoo
from tailor_ir import runtime
from tailor_ir.backends import paddle as paddle_backend
from tailor_ir.frontends import paddle as paddle_frontend
from tailor_ir.graph import Graph
from tailor_ir.imports import import_paddle

paddle = import_paddle()


def with_values(graph: Graph, values: dict[str, np.ndarray]) -> Graph:
    """A copy of ``graph`` whose initializers hold ``values`` (cast to each initializer's dtype)."""
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    for init in model.graph.initializer:
        if init.name in values:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
            assert tuple(init.dims) == values[init.name].shape, init.name
            init.CopyFrom(numpy_helper.from_array(values[init.name].astype(dtype), init.name))
    return graph.replace(model=model)


def train_steps(layer: object, sample: np.ndarray, steps: int = 2) -> None:
    layer.train()
    optimizer = paddle.optimizer.Adam(learning_rate=1e-2, parameters=layer.parameters())
    for _ in range(steps):
        layer(paddle.to_tensor(sample)).square().mean().backward()
        optimizer.step()
        optimizer.clear_grad()
    layer.eval()


def embedding_graph(name: str) -> tuple[Graph, np.ndarray]:
    from tailor_ir.passes import embedding_head

    model, sample = paddle_zoo.build(name, batch=4)
    graph = paddle_frontend.export(model, sample)
    frozen = [sorted(graph.weights)[0].rsplit(".", 1)[0]]  # a layer: its weights are frozen
    return embedding_head(graph, output_dim=8, freeze=frozen) if name != "lstm" else graph, sample


@pytest.mark.parametrize("name", ["small_cnn", "lstm", "mlp"])
def test_trained_values_written_into_the_graph_match_the_layer_in_onnxruntime(name: str) -> None:
    graph, sample = embedding_graph(name)
    stats = {n.input[i] for n in graph.model.graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    assert name == "lstm" or graph.frozen
    layer = paddle_backend.rehydrate(graph)
    before = paddle_backend.current_initializers(layer)
    assert set(before) == set(graph.weights) | stats
    for key, value in before.items():
        np.testing.assert_array_equal(value, graph.initializer_array(key), err_msg=key)

    train_steps(layer, sample)
    after = paddle_backend.current_initializers(layer)
    changed = {k for k in after if not np.array_equal(after[k], before[k])}
    assert changed == set(after) - set(graph.frozen), sorted(set(after) - changed)  # BN statistics too
    with paddle.no_grad():
        expected = layer(paddle.to_tensor(sample)).numpy()
    got = runtime.run(with_values(graph, after), [sample])[0]
    runtime.assert_close(got, expected, rtol=1e-4, what=f"{name}: written-back graph vs the trained layer")
    stale = runtime.run(graph, [sample])[0]
    assert not np.allclose(stale, expected, rtol=1e-3), "training must have changed the outputs"


def test_values_are_copies_and_other_models_are_refused() -> None:
    graph, sample = embedding_graph("mlp")
    layer = paddle_backend.rehydrate(graph)
    values = paddle_backend.current_initializers(layer)
    values["embedding_head.projection.weight"][:] = 0
    assert np.any(layer.weight("embedding_head.projection.weight").numpy() != 0)
    with pytest.raises(TypeError, match="rehydrate"):
        paddle_backend.current_initializers(paddle.nn.Linear(2, 2))
