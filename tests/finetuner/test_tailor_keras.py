"""finetuner.tailor on Keras models (Sequential, functional, subclassed, MobileNetV2): shapes, normalisation,
equivalence with the original model at the cut, freezing, display, and the errors users see."""

from __future__ import annotations

import numpy as np
import pytest

from finetuner.tailor import display, graph_of, to_embedding
from tailor_ir.backends.keras import graph_layer
from tailor_ir.errors import ModelTypeError, UnknownLayerError
from tailor_ir.imports import import_keras

keras = import_keras()
from models import keras_zoo  # noqa: E402 - after the DEEPBIND-safe framework imports; an import bug must fail

SMALL = {
    "sequential_cnn": keras_zoo.sequential_cnn,
    "functional_cnn": keras_zoo.functional_cnn,
    "subclassed_cnn": keras_zoo.subclassed_cnn,
    "mobilenet_v2": lambda batch: keras_zoo.mobilenet_v2(batch=batch, side=32),
}


def _images(model_sample: np.ndarray, n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *model_sample.shape[1:])).astype(np.float32)


@pytest.fixture(scope="module")
def built() -> dict:
    return {name: make(batch=2) for name, make in SMALL.items()}


@pytest.mark.parametrize("name", list(SMALL))
def test_to_embedding_gives_unit_vectors_of_output_dim(built: dict, name: str) -> None:
    model, sample = built[name]
    tailored = to_embedding(model, output_dim=24, sample_input=sample)
    for n in (1, 5):
        out = np.asarray(tailored(_images(sample, n), training=False))
        assert out.shape == (n, 24)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert graph_of(tailored).framework == "keras"
    weights = graph_layer(tailored).weight_names
    assert {"embedding_head.projection.weight", "embedding_head.projection.bias"} <= set(weights)


def _cut_output(model: keras.Model, name: str, layer: str, x: np.ndarray) -> np.ndarray:
    if name == "subclassed_cnn":  # no functional graph: run the layers up to the cut by hand
        h = keras.ops.relu(model.bn1(model.conv1(x), training=False))
        h = keras.ops.relu(model.bn2(model.conv2(h), training=False))
        return np.asarray(model.gap(h))
    sub = keras.Model(model.inputs, model.get_layer(layer).output)
    return np.asarray(sub(x, training=False))


@pytest.mark.parametrize(("name", "layer"), [("sequential_cnn", "gap"), ("functional_cnn", "gap"),
                                             ("subclassed_cnn", "gap"),
                                             ("functional_cnn", "relu2"), ("mobilenet_v2", "out_relu")])
def test_no_projection_and_no_normalisation_equals_the_original_at_the_cut(built: dict, name: str, layer: str) -> None:
    model, sample = built[name]
    tailored = to_embedding(model, output_dim=None, normalize=False, layer_name=layer, sample_input=sample)
    x = _images(sample, 4)
    expected = _cut_output(model, name, layer, x)
    if expected.ndim == 4:  # a feature map: the automatic pooling averages it over space (NHWC)
        expected = expected.mean(axis=(1, 2))
    got = np.asarray(tailored(x, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_the_default_cut_is_the_input_of_the_classifier(built: dict) -> None:
    model, sample = built["functional_cnn"]
    tailored = to_embedding(model, output_dim=None, normalize=False, sample_input=sample)
    x = _images(sample, 3)
    np.testing.assert_allclose(np.asarray(tailored(x, training=False)), _cut_output(model, "functional_cnn", "gap", x),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["functional_cnn", "subclassed_cnn"])
def test_freeze_true_leaves_only_the_new_head_trainable(built: dict, name: str) -> None:
    model, sample = built[name]
    tailored = to_embedding(model, output_dim=12, freeze=True, sample_input=sample)
    trainable = tailored.trainable_variables
    assert len(trainable) == 2
    assert sum(int(np.prod(v.shape)) for v in trainable) == 16 * 12 + 12
    frozen = [v for v in tailored.non_trainable_variables if "moving" not in v.path]
    kept = sum(int(np.prod(v.shape)) for v in frozen)
    assert kept == sum(int(np.prod(v.shape)) for v in model.trainable_variables) - (16 * 10 + 10)


def test_freeze_false_keeps_every_weight_before_the_cut_trainable(built: dict) -> None:
    model, sample = built["functional_cnn"]
    tailored = to_embedding(model, output_dim=12, sample_input=sample)
    count = sum(int(np.prod(v.shape)) for v in tailored.trainable_variables)
    assert count == sum(int(np.prod(v.shape)) for v in model.trainable_variables) - (16 * 10 + 10) + 16 * 12 + 12


def test_display_lists_the_layers_and_marks_the_default_cut(built: dict, capsys) -> None:
    model, sample = built["functional_cnn"]
    rows = display(model, sample_input=sample)
    names = [row.name for row in rows]
    assert {"conv1", "bn1", "gap", "fc"} <= set(names)
    defaults = [row.name for row in rows if row.default_cut]
    assert len(defaults) == 1 and defaults[0] in ("gap", "dropout")
    printed = capsys.readouterr().out
    assert "conv1" in printed and "default" in printed
    tailored = to_embedding(model, output_dim=8, sample_input=sample)
    assert any(row.name.startswith("embedding_head") for row in display(tailored, show=False))


def test_unknown_layer_name_lists_the_closest_names(built: dict) -> None:
    model, sample = built["functional_cnn"]
    with pytest.raises(UnknownLayerError) as info:
        to_embedding(model, layer_name="conv_1", sample_input=sample)
    assert "conv1" in str(info.value) and "conv1" in info.value.closest


def test_bad_output_dim_and_non_models_are_refused(built: dict) -> None:
    model, sample = built["functional_cnn"]
    for bad in (0, -3):
        with pytest.raises(ValueError, match="output_dim"):
            to_embedding(model, output_dim=bad, sample_input=sample)
    with pytest.raises(TypeError):
        to_embedding(model, output_dim=2.5, sample_input=sample)
    with pytest.raises(ModelTypeError) as info:
        to_embedding(object())
    assert isinstance(info.value, TypeError)
    with pytest.raises(ModelTypeError, match="keras"):
        to_embedding(np.zeros((2, 3)))
