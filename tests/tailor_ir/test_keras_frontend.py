"""Keras frontend: every zoo model exports to ONNX that computes what Keras computes, with its weights named."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tailor_ir import runtime
from tailor_ir.errors import ExportError, ModelTypeError
from tailor_ir.frontends import keras as keras_frontend
from tailor_ir.imports import import_keras, import_tensorflow

keras = import_keras()
tf = import_tensorflow()
from models import keras_zoo  # noqa: E402 - after the DEEPBIND-safe framework imports; an import bug must fail

ZOO = list(keras_zoo.ZOO)


@pytest.fixture(scope="module")
def exported() -> dict[str, tuple[object, object, object]]:
    """name -> (model, sample, graph), exported once per module."""
    cache: dict[str, tuple[object, object, object]] = {}
    for name in ZOO:
        model, sample = keras_zoo.build(name, batch=2)
        cache[name] = (model, sample, keras_frontend.export(model, sample))
    return cache


def _batch(sample: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([sample] * (n // len(sample) + 1))[:n]


def _count(model: object, cls: type) -> int:
    found = {id(layer) for layer in keras_frontend._layer_tree(model).values() if isinstance(layer, cls)}
    return len(found)


@pytest.mark.parametrize("name", ZOO)
def test_onnx_computes_what_keras_computes_at_two_batch_sizes(exported: dict, name: str) -> None:
    model, sample, graph = exported[name]
    graph.check()
    for n in (1, 5):
        x = _batch(sample, n)
        (out,) = runtime.run(graph, [x])
        runtime.assert_close(out, np.asarray(model(x, training=False)), rtol=1e-4, what=f"{name} batch {n}")


@pytest.mark.parametrize("name", ZOO)
def test_weights_are_exactly_the_trainable_variables(exported: dict, name: str) -> None:
    """Variables go in as inputs, so nothing is folded: the weights are the model's trainable variables by path.

    Exception: tf2onnx only rewrites a Keras LSTM loop into an ONNX LSTM node when its weights are constants; that
    node's W/R/B hold the kernel, recurrent kernel and bias in ONNX gate order, plus ONNX's second (recurrent)
    bias of 4 * units zeros, so the LSTM model has 4 * 24 = 96 weights more than Keras counts.
    """
    model, _, graph = exported[name]
    sizes = {init.name: int(np.prod(init.dims)) for init in graph.onnx_graph.initializer}
    total = sum(sizes[w] for w in graph.weights)
    expected = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    if name == "lstm":
        assert {"lstm/W", "lstm/R", "lstm/B"} <= graph.weights
        assert total == expected + 4 * model.get_layer("lstm").units
    else:
        assert graph.weights == {v.path for v in model.trainable_variables}
        assert total == expected
    assert graph.frozen == frozenset()
    assert graph.framework == "keras"


@pytest.mark.parametrize("name", ["sequential_cnn", "functional_cnn", "subclassed_cnn", "mobilenet_v2"])
def test_batchnorm_and_dropout_are_kept_as_nodes(exported: dict, name: str) -> None:
    model, _, graph = exported[name]
    ops = [n.op_type for n in graph.onnx_graph.node]
    assert graph.extra["batchnorm"] == "kept"
    assert ops.count("BatchNormalization") == _count(model, keras.layers.BatchNormalization) > 0
    assert ops.count("Dropout") == _count(model, keras.layers.Dropout) == (0 if name == "mobilenet_v2" else 1)
    for node in graph.onnx_graph.node:
        if node.op_type == "BatchNormalization":
            layer = graph.layer_map[node.name]
            momentum = onnx.helper.get_attribute_value(next(a for a in node.attribute if a.name == "momentum"))
            assert momentum == pytest.approx(keras_frontend._layer_tree(model)[layer].momentum)
            assert node.input[3].endswith("moving_mean") and node.input[3] not in graph.weights


def test_layer_map_names_keras_layers_in_data_flow_order(exported: dict) -> None:
    model, _, graph = exported["sequential_cnn"]
    assert graph.layer_names == [layer.name for layer in model.layers]
    conv = next(n for n in graph.onnx_graph.node if n.op_type == "Conv")
    assert graph.layer_map[conv.name] == "conv1"


def test_layer_map_follows_nested_layers(exported: dict) -> None:
    _, _, graph = exported["transformer"]
    names = set(graph.layer_names)
    assert {"embedding", "embedding.tokens", "mha", "mha.query", "mha.key", "mha.value", "ln1", "fc"} <= names
    _, _, subclassed = exported["subclassed_cnn"]
    assert {"conv1", "bn1", "conv2", "bn2", "gap", "dropout", "fc"} <= set(subclassed.layer_names)


def test_inputs_are_dynamic_in_batch_and_named_after_the_input_layer(exported: dict) -> None:
    _, _, graph = exported["functional_cnn"]
    (value,) = graph.onnx_graph.input
    assert value.name == "image"
    assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert graph.output_names == ["output"]
    assert graph.extra["input_kind"] == "image"
    assert exported["lstm"][2].extra["input_kind"] == "tokens"
    assert exported["mlp"][2].extra["batchnorm"] == "none"


def test_frozen_layers_are_marked_frozen() -> None:
    model, sample = keras_zoo.mlp()
    model.get_layer("dense1").trainable = False
    graph = keras_frontend.export(model, sample)
    dense1 = model.get_layer("dense1")
    assert graph.frozen == {dense1.kernel.path, dense1.bias.path}
    assert graph.frozen < graph.weights
    assert len(graph.weights) == 6


def test_input_shape_builds_the_sample() -> None:
    model, _ = keras_zoo.mlp()
    graph = keras_frontend.export(model, input_shape=(64,))
    assert graph.shape_of(graph.input_names[0])[1] == 64


def test_non_keras_object_is_a_model_type_error() -> None:
    with pytest.raises(ModelTypeError, match="keras.Model"):
        keras_frontend.export(object(), np.zeros((2, 3), "float32"))


def test_subclassed_model_without_sample_asks_for_one() -> None:
    model = keras_zoo.SubclassedCNN()
    with pytest.raises(ExportError, match="sample_input"):
        keras_frontend.export(model)


def test_exporter_failure_is_an_export_error_with_what_to_try() -> None:
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: tf.py_function(lambda a: a * 2, [t], tf.float32), output_shape=(4,))(inputs)
    model = keras.Model(inputs, outputs)
    with pytest.raises(ExportError, match="Try"):
        keras_frontend.export(model, np.ones((2, 4), "float32"))
