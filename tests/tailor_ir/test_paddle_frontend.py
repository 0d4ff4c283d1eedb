"""The paddle frontend: paddle2onnx graphs compute what the models compute, and name the user's weights/layers."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from models import paddle_zoo
from tailor_ir import runtime
from tailor_ir.errors import ExportError, ModelTypeError
from tailor_ir.frontends import paddle as paddle_frontend
from tailor_ir.graph import Graph
from tailor_ir.imports import import_paddle

paddle = import_paddle()
ZOO_NAMES = list(paddle_zoo.ZOO)


@functools.cache
def exported(name: str) -> tuple[object, Graph]:
    model, sample = paddle_zoo.build(name)
    return model, paddle_frontend.export(model, sample)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_onnxruntime_matches_the_model_at_two_batch_sizes(name: str) -> None:
    model, graph = exported(name)
    model.eval()
    for batch in (2, 3):
        sample = paddle_zoo.sample(name, batch)
        with paddle.no_grad():
            expected = model(paddle.to_tensor(sample)).numpy()
        (got,) = runtime.run(graph, [sample])
        runtime.assert_close(got, expected, rtol=1e-4, what=f"{name} onnxruntime vs paddle")
    graph.check()
    assert graph.framework == "paddle"


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_weights_are_the_trainable_parameters_under_their_paths(name: str) -> None:
    model, graph = exported(name)
    stats = {n for n, _ in model.named_parameters() if n.endswith(("._mean", "._variance"))}
    expected = {n for n, p in model.named_parameters() if not p.stop_gradient} - stats
    assert set(graph.weights) == expected
    assert not graph.frozen
    for pname, param in model.named_parameters():
        if pname in graph.weights:
            np.testing.assert_array_equal(graph.initializer_array(pname), param.numpy())


def test_batchnorm_and_dropout_survive_the_export() -> None:
    _, graph = exported("small_cnn")
    ops = [n.op_type for n in graph.model.graph.node]
    assert ops.count("BatchNormalization") == 2
    assert "Identity" not in ops
    (dropout,) = [n for n in graph.model.graph.node if n.op_type == "Dropout"]
    assert float(graph.initializer_array(dropout.input[1])) == pytest.approx(0.25)
    bn = next(n for n in graph.model.graph.node if n.op_type == "BatchNormalization")
    assert bn.input[3:5] == ["bn1._mean", "bn1._variance"]
    assert "bn1._mean" not in graph.weights
    _, transformer = exported("transformer")
    assert [n.op_type for n in transformer.model.graph.node].count("Dropout") == 8


def test_layer_map_names_the_sublayers() -> None:
    _, graph = exported("small_cnn")
    by_op = {}
    for node in graph.model.graph.node:
        by_op.setdefault(node.op_type, []).append(graph.layer_of(node))
    assert by_op["Conv"] == ["conv1", "conv2"]
    assert by_op["BatchNormalization"] == ["bn1", "bn2"]
    assert by_op["MatMul"] == ["fc"]
    assert by_op["Relu"] == [None, None]  # functional ops between top-level layers stay unassigned
    assert graph.layer_names[:2] == ["conv1", "bn1"]
    _, transformer = exported("transformer")
    softmax = [transformer.layer_of(n) for n in transformer.model.graph.node if n.op_type == "Softmax"]
    assert softmax == ["encoder.layers.0.self_attn", "encoder.layers.1.self_attn"]
    assert "encoder.layers.1.linear2" in transformer.layer_names


def test_token_inputs_are_dynamic_in_batch_and_sequence() -> None:
    model, graph = exported("lstm")
    dims = [d.dim_param or d.dim_value for d in graph.model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]
    assert graph.extra["input_kind"] == "tokens"
    model.eval()
    tokens = paddle_zoo.sample_tokens(3, seq_len=5)
    runtime.assert_close(runtime.run(graph, [tokens])[0], model(paddle.to_tensor(tokens)).numpy())


def test_frozen_parameters_and_the_mode_are_kept() -> None:
    model, sample = paddle_zoo.build("small_cnn")
    model.conv1.weight.stop_gradient = True
    model.fc.bias.trainable = False
    model.train()
    model.bn1.eval()
    graph = paddle_frontend.export(model, sample)
    assert graph.frozen == {"conv1.weight", "fc.bias"}
    assert {"conv1.weight", "fc.bias"} <= graph.weights
    assert model.training and model.conv1.training and not model.bn1.training


def test_input_shape_builds_the_sample() -> None:
    model, _ = paddle_zoo.build("mlp")
    graph = paddle_frontend.export(model, input_shape=(64,))
    assert graph.input_names == ["x"]
    assert graph.shape_of(graph.input_names[0]) == ("batch", 64)


def test_a_non_paddle_object_is_a_model_type_error() -> None:
    with pytest.raises(ModelTypeError, match="paddle.nn.Layer"):
        paddle_frontend.export(object(), np.zeros((2, 3), np.float32))


class _Broken(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = paddle.nn.Linear(4, 2)

    def forward(self, x: object) -> object:
        raise RuntimeError("this forward always fails")


def test_an_exporter_failure_is_an_export_error_with_the_reason() -> None:
    with pytest.raises(ExportError, match="this forward always fails.*Try:"):
        paddle_frontend.export(_Broken(), np.zeros((2, 4), np.float32))
