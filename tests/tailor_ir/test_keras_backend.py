"""Keras backend: rehydrated models compute what onnxruntime computes, train exactly their weights, keep BN and
Dropout behaviour, save as ``.keras`` and load back in a fresh process; torch-origin graphs rehydrate too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from tailor_ir import runtime
from tailor_ir.backends import keras as keras_backend
from tailor_ir.errors import EquivalenceError, UnsupportedOpError
from tailor_ir.frontends import keras as keras_frontend
from tailor_ir.graph import Graph
from tailor_ir.imports import import_keras, import_tensorflow

keras = import_keras()
tf = import_tensorflow()
from models import keras_zoo  # noqa: E402 - after the DEEPBIND-safe framework imports; an import bug must fail

ZOO = list(keras_zoo.ZOO)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rehydrated() -> dict[str, tuple[np.ndarray, Graph, object]]:
    """name -> (sample, graph, rehydrated model); ``rehydrate`` checks against onnxruntime on the sample."""
    cache = {}
    for name in ZOO:
        model, sample = keras_zoo.build(name, batch=2)
        graph = keras_frontend.export(model, sample)
        cache[name] = (sample, graph, keras_backend.rehydrate(graph, sample_inputs=[sample]))
    return cache


def _batch(sample: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([sample] * (n // len(sample) + 1))[:n]


def _weights(model: object) -> dict[str, np.ndarray]:
    return {name: np.array(var.numpy()) for name, var in keras_backend.graph_layer(model).weight_names.items()}


@pytest.mark.parametrize("name", ZOO)
def test_rehydrated_matches_onnxruntime_at_two_batch_sizes(rehydrated: dict, name: str) -> None:
    sample, graph, model = rehydrated[name]
    for n in (1, 5):
        x = _batch(sample, n)
        (expected,) = runtime.run(graph, [x])
        runtime.assert_close(np.asarray(model(x, training=False)), expected, rtol=1e-4, what=f"{name} batch {n}")


@pytest.mark.parametrize("name", ZOO)
def test_one_trainable_variable_per_weight(rehydrated: dict, name: str) -> None:
    _, graph, model = rehydrated[name]
    layer = keras_backend.graph_layer(model)
    trainable = {id(v) for v in model.trainable_variables}
    assert {n for n, v in layer.weight_names.items() if id(v) in trainable} == graph.weights
    assert len(model.trainable_variables) == len(graph.weights)
    expected = sum(int(np.prod(graph.initializers[w].dims)) for w in graph.weights)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == expected
    assert all("/" not in v.name for v in model.variables)
    bn_stats = {n.input[i] for n in graph.onnx_graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    assert {v.path for v in model.non_trainable_variables} == {layer.weight(s).path for s in bn_stats}


def test_trainable_count_equals_the_keras_model() -> None:
    """Where BN is kept (every zoo CNN), the rehydrated model trains exactly the original's parameter count."""
    model, sample = keras_zoo.functional_cnn()
    rebuilt = keras_backend.rehydrate(keras_frontend.export(model, sample), sample_inputs=[sample])
    count = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert sum(int(np.prod(v.shape)) for v in rebuilt.trainable_variables) == count == 2170
    fixed = sum(int(np.prod(v.shape)) for v in model.non_trainable_variables if "seed" not in v.path)
    assert sum(int(np.prod(v.shape)) for v in rebuilt.non_trainable_variables) == fixed


def test_fit_step_changes_exactly_the_unfrozen_weights_and_updates_bn() -> None:
    model, sample = keras_zoo.functional_cnn(batch=8)
    graph = keras_frontend.export(model, sample)
    frozen = {model.get_layer("conv1").kernel.path, model.get_layer("fc").bias.path}
    assert frozen <= graph.weights
    rebuilt = keras_backend.rehydrate(graph.replace(frozen=frozenset(frozen)), sample_inputs=[sample])
    assert len(rebuilt.trainable_variables) == len(graph.weights) - 2
    before = _weights(rebuilt)
    rebuilt.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(True))
    rebuilt.fit(sample, np.arange(8) % 10, batch_size=8, epochs=1, verbose=0)
    after = _weights(rebuilt)
    changed = {n for n in before if not np.array_equal(before[n], after[n])}
    stats = {getattr(model.get_layer(bn), s).path for bn in ("bn1", "bn2") for s in ("moving_mean", "moving_variance")}
    assert changed == (graph.weights - frozen) | stats
    # inference leaves the statistics alone
    rebuilt(sample, training=False)
    assert all(np.array_equal(after[s], _weights(rebuilt)[s]) for s in stats)


def test_batchnorm_momentum_follows_keras() -> None:
    model, sample = keras_zoo.sequential_cnn(batch=4)
    rebuilt = keras_backend.rehydrate(keras_frontend.export(model, sample), sample_inputs=[sample])
    layer = keras_backend.graph_layer(rebuilt)
    path = model.get_layer("bn1").moving_mean.path
    old = layer.weight(path).numpy()
    model(sample, training=True)
    rebuilt(sample, training=True)
    expected = model.get_layer("bn1").moving_mean.numpy()
    np.testing.assert_allclose(layer.weight(path).numpy(), expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(old, expected)


def test_gradient_tape_reaches_every_weight_of_mobilenet(rehydrated: dict) -> None:
    sample, graph, model = rehydrated["mobilenet_v2"]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(sample, training=True)[:, :3]))
    grads = tape.gradient(loss, model.trainable_variables)
    assert len(grads) == len(graph.weights) == 158
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_gradient_tape_reaches_every_weight_of_sequence_models(rehydrated: dict, name: str) -> None:
    sample, graph, model = rehydrated[name]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(sample, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    assert len(grads) == len(graph.weights)
    assert all(g is not None and float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g)))) > 0 for g in grads)


def test_dropout_is_random_in_training_and_identity_in_inference(rehydrated: dict) -> None:
    sample, graph, model = rehydrated["mlp"]
    x = _batch(sample, 32)
    inference = np.asarray(model(x, training=False))
    np.testing.assert_array_equal(inference, np.asarray(model(x)))
    first, second = np.asarray(model(x, training=True)), np.asarray(model(x, training=True))
    assert not np.allclose(first, inference) and not np.allclose(first, second)


def test_convolutions_run_channels_last_without_activation_transposes(rehydrated: dict) -> None:
    _, graph, model = rehydrated["functional_cnn"]
    fn = tf.function(lambda x: model(x, training=True))
    ops = fn.get_concrete_function(tf.TensorSpec((None, 16, 16, 3), tf.float32)).graph.get_operations()
    assert sum(op.type == "Transpose" for op in ops) == 0
    assert [n.op_type for n in graph.onnx_graph.node].count("Transpose") == 4  # tf2onnx's: input + 3 kernels
    convs = [op for op in ops if op.type == "Conv2D"]
    assert len(convs) == 3 and all(op.get_attr("data_format") == b"NHWC" for op in convs)
    assert {op.get_attr("padding") for op in convs} == {b"SAME", b"VALID"}


_RELOAD = """
import json, sys
import numpy as np
import keras
import tailor_ir.backends.keras  # registers the custom layer
result = {}
for name in json.loads(sys.argv[1]):
    model = keras.models.load_model(f"{sys.argv[2]}/{name}.keras")
    x = np.load(f"{sys.argv[2]}/{name}.npy")
    np.save(f"{sys.argv[2]}/{name}.out.npy", np.asarray(model(x, training=False)))
    result[name] = len(model.trainable_variables)
print(json.dumps(result))
"""


def test_keras_file_reloads_in_a_fresh_process(rehydrated: dict, tmp_path: Path) -> None:
    names = ["functional_cnn", "lstm", "transformer"]
    expected = {}
    for name in names:
        sample, _, model = rehydrated[name]
        model.save(tmp_path / f"{name}.keras")
        np.save(tmp_path / f"{name}.npy", sample)
        expected[name] = np.asarray(model(sample, training=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", _RELOAD, json.dumps(names), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in names:
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.out.npy"), expected[name], rtol=1e-6, atol=1e-6)
        assert counts[name] == len(rehydrated[name][2].trainable_variables)


def test_equivalence_check_catches_a_wrong_model(rehydrated: dict) -> None:
    sample, graph, model = rehydrated["mlp"]
    var = keras_backend.graph_layer(model).weight(next(w for w in graph.weights if w.endswith("logits/bias")))
    old = var.numpy()
    var.assign(old + 1.0)
    try:
        with pytest.raises(EquivalenceError, match="differs from onnxruntime"):
            keras_backend.layer.check_equivalence(model, graph, [sample])
    finally:
        var.assign(old)


def test_unsupported_op_names_the_node_before_building() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Unique", ["r"], ["y"], name="head/unique")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    graph = Graph(model, layer_map={"head/unique": "head"}, framework="keras")
    with pytest.raises(UnsupportedOpError) as info:
        keras_backend.rehydrate(graph)
    assert info.value.node == "head/unique" and info.value.layer == "head" and info.value.op_type == "Unique"
    assert "head/unique" in str(info.value) and "keras" in str(info.value)
    assert "Unique" not in keras_backend.supported_ops(17) and "Conv" in keras_backend.supported_ops(17)


def test_a_case_a_converter_refuses_is_not_called_a_missing_converter() -> None:
    """bfloat16 Attention: the Keras converter exists and refuses this node; the message says so and why."""
    q = helper.make_tensor_value_info("q", TensorProto.BFLOAT16, [1, 2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [1, 2, 3, 4])
    node = helper.make_node("Attention", ["q", "q", "q"], ["y"], name="attn")
    model = helper.make_model(helper.make_graph([node], "g", [q], [y]), opset_imports=[helper.make_opsetid("", 23)])
    with pytest.raises(UnsupportedOpError) as info:
        keras_backend.rehydrate(Graph(model, framework="keras"), check=False)
    message = str(info.value)
    assert message.startswith("The keras converter for ONNX op 'Attention' (opset 23) at node 'attn'"), message
    assert "No keras converter" not in message and "bfloat16" in info.value.reason and "layer_name" in message


# --------------------------------------------------------------------------- torch-origin graphs
@pytest.fixture(scope="module")
def torch_graphs() -> dict[str, tuple[Graph, np.ndarray]]:
    from tailor_ir.imports import import_torch

    import_torch()
    from models import torch_zoo
    from tailor_ir.frontends import torch as torch_frontend

    result = {}
    for name in ("small_cnn", "transformer"):
        module, sample = torch_zoo.build(name, batch=3)
        result[name] = (torch_frontend.export(module, sample), sample.numpy())
    return result


@pytest.mark.parametrize("name", ["small_cnn", "transformer"])
def test_torch_exported_graph_rehydrates_and_matches_onnxruntime(torch_graphs: dict, name: str) -> None:
    graph, sample = torch_graphs[name]
    model = keras_backend.rehydrate(graph, sample_inputs=[sample])
    for n in (1, 4):
        x = _batch(sample, n)
        (expected,) = runtime.run(graph, [x])
        runtime.assert_close(np.asarray(model(x, training=False)), expected, rtol=1e-4, what=f"torch {name} {n}")
    assert len(model.trainable_variables) == len(graph.weights)
    before = _weights(model)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(_batch(sample, 4), training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    keras.optimizers.SGD(0.01).apply_gradients(zip(grads, model.trainable_variables))
    changed = {k for k, v in _weights(model).items() if not np.array_equal(v, before[k])}
    bn = {n.input[i] for n in graph.onnx_graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    # a conv bias right before a training-mode BN has a zero gradient (the batch mean cancels it)
    assert changed <= set(graph.weights) | bn
    assert (set(graph.weights) | bn) - changed <= {"conv1.bias", "conv2.bias"}
    assert (len(bn) == 4) == (name == "small_cnn")
