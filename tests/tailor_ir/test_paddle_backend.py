"""The paddle backend: rehydrated graphs compute what onnxruntime computes, and train like the originals."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from models import paddle_zoo
from tailor_ir import runtime
from tailor_ir.backends import paddle as paddle_backend
from tailor_ir.errors import EquivalenceError, UnsupportedOpError
from tailor_ir.frontends import paddle as paddle_frontend
from tailor_ir.graph import Graph
from tailor_ir.imports import import_paddle

paddle = import_paddle()
ZOO_NAMES = list(paddle_zoo.ZOO)
ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def exported(name: str) -> tuple[object, Graph]:
    model, sample = paddle_zoo.build(name)
    return model, paddle_frontend.export(model, sample)


@functools.cache
def rehydrated(name: str) -> object:
    return paddle_backend.rehydrate(exported(name)[1])


def trainable(layer: object) -> list[object]:
    return [p for p in layer.parameters() if not p.stop_gradient]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_outputs_match_the_model_and_onnxruntime_at_two_batch_sizes(name: str) -> None:
    model, graph = exported(name)
    layer = rehydrated(name)
    assert not layer.training
    model.eval()
    for batch in (2, 3):
        sample = paddle_zoo.sample(name, batch)
        with paddle.no_grad():
            got = layer(paddle.to_tensor(sample)).numpy()
            expected = model(paddle.to_tensor(sample)).numpy()
        runtime.assert_close(got, runtime.run(graph, [sample])[0], rtol=1e-4, what=f"{name} vs onnxruntime")
        runtime.assert_close(got, expected, rtol=1e-4, what=f"{name} vs paddle")


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_trainable_parameters_are_exactly_the_models(name: str) -> None:
    model, graph = exported(name)
    layer = rehydrated(name)
    assert sum(int(np.prod(p.shape)) for p in trainable(layer)) == sum(
        int(np.prod(p.shape)) for p in trainable(model)
    )
    assert len(trainable(layer)) == len(trainable(model))
    assert set(layer.weight_names) == set(graph.weights)
    for pname, param in model.named_parameters():
        if pname in graph.weights:
            np.testing.assert_array_equal(layer.weight(pname).numpy(), param.numpy())
    assert all(p.dtype == paddle.float32 for p in layer.parameters())  # never int64 parameters


@pytest.mark.parametrize("name", ["small_cnn", "mlp", "lstm", "gru", "transformer"])
def test_gradients_match_the_original_and_a_step_changes_exactly_the_unfrozen_weights(name: str) -> None:
    model, sample = paddle_zoo.build(name)
    names = [n for n, p in model.named_parameters() if not p.stop_gradient]
    frozen = [names[0], names[-1]]  # paddle's own RNN backward fails when only some of its weights are frozen
    for pname, param in model.named_parameters():
        if pname in frozen:
            param.stop_gradient = True
    graph = paddle_frontend.export(model, sample)
    assert set(graph.frozen) == set(frozen)
    layer = paddle_backend.rehydrate(graph, check=False)
    # eval: same BN statistics and no dropout on both sides; paddle's RNN backward only runs in train mode
    mode = "train" if name in ("lstm", "gru") else "eval"
    getattr(model, mode)()
    getattr(layer, mode)()
    model(paddle.to_tensor(sample)).square().mean().backward()
    layer(paddle.to_tensor(sample)).square().mean().backward()
    for pname, param in model.named_parameters():
        if pname in graph.weights and pname not in frozen:
            runtime.assert_close(layer.weight(pname).grad.numpy(), param.grad.numpy(), rtol=1e-3, atol=1e-6,
                                 what=f"grad {pname}")
    before = {n: p.numpy().copy() for n, p in layer.weight_names.items()}
    optimizer = paddle.optimizer.SGD(learning_rate=0.1, parameters=layer.parameters())
    optimizer.step()
    for pname, param in layer.weight_names.items():
        changed = not np.array_equal(before[pname], param.numpy())
        if pname in frozen:
            assert not changed and param.grad is None, pname
        elif np.any(param.grad.numpy() != 0):
            assert changed, pname
    moved = sum(not np.array_equal(before[n], p.numpy()) for n, p in layer.weight_names.items())
    assert moved >= (len(before) - len(frozen)) // 2


def test_batchnorm_statistics_update_in_train_mode_like_paddle() -> None:
    model, sample = paddle_zoo.build("small_cnn")
    layer = paddle_backend.rehydrate(paddle_frontend.export(model, sample), check=False)
    norms = [m for m in layer.sublayers() if isinstance(m, paddle.nn.layer.norm._BatchNormBase)]
    assert len(norms) == 2
    start = norms[0]._mean.numpy().copy()
    with paddle.no_grad():
        layer.eval()
        layer(paddle.to_tensor(sample))
        np.testing.assert_array_equal(norms[0]._mean.numpy(), start)
        layer.train()
        model.train()
        layer(paddle.to_tensor(sample))
        model(paddle.to_tensor(sample))
    assert not np.allclose(norms[0]._mean.numpy(), start)
    np.testing.assert_allclose(norms[0]._mean.numpy(), model.bn1._mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norms[1]._variance.numpy(), model.bn2._variance.numpy(), rtol=1e-5, atol=1e-6)


def test_dropout_is_random_in_train_mode_and_deterministic_in_eval_mode() -> None:
    layer = paddle_backend.rehydrate(exported("mlp")[1], check=False)
    x = paddle.to_tensor(paddle_zoo.sample("mlp", 8))
    with paddle.no_grad():
        layer.train()
        first, second = layer(x).numpy(), layer(x).numpy()
        layer.eval()
        third, fourth = layer(x).numpy(), layer(x).numpy()
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(third, fourth)
    assert sum(isinstance(m, paddle.nn.Dropout) for m in layer.sublayers()) == 2


def test_rehydrating_twice_gives_independent_models() -> None:
    _, graph = exported("small_cnn")
    one = paddle_backend.rehydrate(graph)
    two = paddle_backend.rehydrate(graph)
    x = paddle.to_tensor(paddle_zoo.sample("small_cnn", 2))
    before = two(x).numpy()
    one.train()
    one(x).square().mean().backward()
    paddle.optimizer.SGD(learning_rate=0.5, parameters=one.parameters()).step()
    np.testing.assert_array_equal(two(x).numpy(), before)
    one.eval()
    assert not np.allclose(one(x).numpy(), before)


def test_inputs_by_keyword_and_numpy() -> None:
    _, graph = exported("lstm")
    layer = rehydrated("lstm")
    tokens = paddle_zoo.sample("lstm", 2)
    np.testing.assert_allclose(layer(input_ids=paddle.to_tensor(tokens)).numpy(), layer(tokens).numpy())
    with pytest.raises(TypeError, match="input_ids"):
        layer(wrong=tokens)


def _torch_graphs() -> dict[str, Graph]:
    from models import torch_zoo
    from tailor_ir.frontends import torch as torch_frontend

    graphs = {}
    for name in ("small_cnn", "transformer"):
        model, sample = torch_zoo.build(name)
        graphs[name] = torch_frontend.export(model, sample)
    return graphs


def test_torch_exported_graphs_rehydrate_into_paddle() -> None:
    from models import torch_zoo

    for name, graph in _torch_graphs().items():
        layer = paddle_backend.rehydrate(graph)
        weights = sum(int(np.prod(graph.initializers[w].dims)) for w in graph.weights)
        assert sum(int(np.prod(p.shape)) for p in trainable(layer)) == weights
        for batch in (2, 3):
            _, sample = torch_zoo.build(name, batch=batch)
            sample = sample.numpy()
            with paddle.no_grad():
                got = layer(paddle.to_tensor(sample)).numpy()
            runtime.assert_close(got, runtime.run(graph, [sample])[0], rtol=1e-4, what=f"torch {name}")


def test_an_unsupported_op_names_the_node_before_building() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["h"], name="relu0"),
        helper.make_node("TfIdfVectorizer", ["h"], ["y"], name="the_tfidf_node"),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    graph = Graph(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
                  layer_map={"the_tfidf_node": "head"}, framework="onnx")
    with pytest.raises(UnsupportedOpError, match="'TfIdfVectorizer'.*'the_tfidf_node'.*'head'") as info:
        paddle_backend.rehydrate(graph)
    assert info.value.node == "the_tfidf_node" and info.value.opset == 17


def test_a_wrong_converter_result_is_an_equivalence_error() -> None:
    _, graph = exported("mlp")
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "Sigmoid"  # onnxruntime runs the original graph; the layer a different one
    layer = paddle_backend.rehydrate(graph.replace(model=model), check=False)
    with pytest.raises(EquivalenceError, match="differs from onnxruntime"):
        paddle_backend.layer.check_equivalence(layer, graph)


def test_tensorflow_first_then_paddle_export_and_rehydrate_in_one_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from tailor_ir.imports import import_tensorflow
        tf = import_tensorflow()
        assert float(tf.reduce_sum(tf.ones([2, 2]))) == 4.0
        from models import paddle_zoo
        from tailor_ir.frontends import paddle as paddle_frontend
        from tailor_ir.backends import paddle as paddle_backend
        model, sample = paddle_zoo.build("small_cnn")
        layer = paddle_backend.rehydrate(paddle_frontend.export(model, sample))
        print("ok", list(layer(sample).shape))
        """
    )
    env = {**os.environ, "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    assert "ok [2, 10]" in proc.stdout
