"""The paddle frontend: paddle2onnx graphs compute what the models compute, and name the user's weights/layers."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from models import paddle_zoo
from tailor_ir import runtime
from tailor_ir.backends import paddle as paddle_backend
from tailor_ir.errors import ExportError, ModelTypeError
from tailor_ir.frontends import paddle as paddle_frontend
from tailor_ir.graph import Graph
from tailor_ir.imports import import_paddle
from tailor_ir.inspection import layer_table
from tailor_ir.passes import embedding_head

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
    ops = [(n.op_type, transformer.layer_of(n)) for n in transformer.model.graph.node]
    assert ("Dropout", "encoder.layers.0.dropout1") in ops and ("Add", "encoder.layers.0") in ops


def test_layer_map_holds_parameterless_sublayers_and_block_ops() -> None:
    _, cnn = exported("small_cnn")
    layers = {n.op_type: cnn.layer_of(n) for n in cnn.model.graph.node}
    assert layers["GlobalAveragePool"] == "pool" and layers["Dropout"] == "dropout"
    assert [cnn.layer_of(n) for n in cnn.model.graph.node if n.op_type == "Add"] == ["conv1", "conv2", "fc"]
    _, resnet = exported("resnet18")
    ops = [(n.op_type, resnet.layer_of(n)) for n in resnet.model.graph.node]
    assert ("Add", "layer3.1") in ops and ("Relu", "layer3.1.relu") in ops and ("MaxPool", "maxpool") in ops
    last_of_layer3 = [op for op, layer in ops if layer and layer.startswith("layer3")][-1]
    assert last_of_layer3 == "Relu"
    assert resnet.layer_names[:5] == ["conv1", "bn1", "relu", "maxpool", "layer1"]
    _, mlp = exported("mlp")
    assert [mlp.layer_of(n) for n in mlp.model.graph.node if n.op_type in ("Relu", "Dropout")] == [
        "body.1", "body.2", "body.4", "body.5"]


def _sublayer_outputs(model: object, sample: np.ndarray, names: list[str]) -> dict[str, object]:
    """Each named sublayer's first output (a forward-post hook; copied, in case a later op works in place)."""
    seen: dict[str, object] = {}
    layers = dict(model.named_sublayers())

    def keep(name: str, out: object) -> None:
        seen.setdefault(name, out.clone() if isinstance(out, paddle.Tensor) else out)

    hooks = [layers[n].register_forward_post_hook(lambda _l, _i, out, n=n: keep(n, out)) for n in names]
    try:
        with paddle.no_grad():
            model(paddle.to_tensor(sample))
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _three_cuts(name: str) -> list[str]:
    """Three cut candidates (first third, middle, last) whose sublayer returns one tensor."""
    model, graph = exported(name)
    model.eval()
    layers = dict(model.named_sublayers())
    rows = [r.name for r in layer_table(graph) if r.cut_candidate and r.name in layers]
    outputs = _sublayer_outputs(model, paddle_zoo.sample(name, 2), rows)
    tensors = [r for r in rows if isinstance(outputs.get(r), paddle.Tensor)]
    if len(tensors) < 3:
        return tensors
    picks = [tensors[len(tensors) // 3], tensors[(2 * len(tensors)) // 3], tensors[-1]]
    return list(dict.fromkeys(picks))


# plus block outputs that end in ops of the block's own forward (residual Add + ReLU) and a Dropout sublayer
BLOCKS = [("resnet18", "layer3"), ("resnet18", "layer4.0"), ("mobilenet_v2", "features.5"), ("small_cnn", "dropout")]
SPREAD = [(name, layer) for name in ZOO_NAMES for layer in _three_cuts(name)]
CUTS = list(dict.fromkeys(SPREAD + BLOCKS))


def test_every_zoo_model_has_cuts_spread_over_its_depth() -> None:
    per_model = {name: sum(1 for n, _ in SPREAD if n == name) for name in ZOO_NAMES}
    assert all(count >= 2 for count in per_model.values()), per_model
    assert sum(count == 3 for count in per_model.values()) >= 4, per_model


@pytest.mark.parametrize(("name", "layer"), CUTS, ids=[f"{n}:{layer}" for n, layer in CUTS])
def test_cut_equals_the_hooked_sublayer_output(name: str, layer: str) -> None:
    model, graph = exported(name)
    model.eval()
    cut = embedding_head(graph, layer_name=layer, pooling="none", output_dim=None, normalize=False)
    rehydrated = paddle_backend.rehydrate(cut, check=False)
    rehydrated.eval()
    for batch in (2, 5):
        sample = paddle_zoo.sample(name, batch)
        expected = _sublayer_outputs(model, sample, [layer])[layer].numpy()
        with paddle.no_grad():
            got = rehydrated(paddle.to_tensor(sample)).numpy()
        runtime.assert_close(got, expected, rtol=1e-4, what=f"{name} at {layer} vs paddle (batch {batch})")
        ort = runtime.run(cut.model, [sample])[0]
        runtime.assert_close(ort, expected, rtol=1e-4, what=f"onnxruntime at {layer} vs paddle (batch {batch})")


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
