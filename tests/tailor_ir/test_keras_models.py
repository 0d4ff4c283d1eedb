"""The Keras models issue 13 found failing, each reduced to a small model: export, rehydrate, and compare.

Constants captured by a layer (``Normalization``, ``Rescaling``) stay constants; a grouped ``Conv2D`` (ConvNeXt's
depthwise convolution) exports without Keras's XLA function; a 1x1 pool with stride 2 (ResNet50V2, NASNetMobile)
rehydrates; subclassed models with and without ``training`` in ``call``; two-input and dict-input models; a built
subclassed model needs no sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from finetuner.tailor import to_embedding
from tailor_ir import runtime
from tailor_ir.backends import keras as keras_backend
from tailor_ir.errors import UnsupportedOpError
from tailor_ir.frontends import keras as keras_frontend
from tailor_ir.imports import import_keras

keras = import_keras()
RNG = np.random.default_rng(0)


def _images(n: int = 3, side: int = 8, channels: int = 4) -> np.ndarray:
    return RNG.uniform(0, 2, (n, side, side, channels)).astype("float32")


def _round_trip(model: object, sample: object) -> object:
    """Export, check ONNX against Keras, rehydrate (checked against onnxruntime); the graph."""
    graph = keras_frontend.export(model, sample)
    feed = sample if isinstance(sample, (dict, list)) else [sample]
    (out,) = runtime.run(graph, feed)
    runtime.assert_close(out, np.asarray(model(sample, training=False)), rtol=1e-5, what="ONNX export")
    keras_backend.rehydrate(graph, check=True, sample_inputs=sample)
    return graph


def test_normalization_and_rescaling_constants_are_not_graph_inputs() -> None:
    inputs = keras.Input((8, 8, 4))
    h = keras.layers.Rescaling(1 / 255.0)(inputs)
    h = keras.layers.Normalization(axis=-1, mean=[0.1, 0.2, 0.3, 0.4], variance=[1.0, 2.0, 3.0, 4.0])(h)
    adapted = keras.layers.Normalization(axis=-1)
    adapted.adapt(_images(4))
    h = adapted(keras.layers.Conv2D(4, 3)(h))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(h))
    graph = _round_trip(model, _images())
    assert len(graph.input_names) == 1, graph.input_names


@pytest.mark.parametrize("groups", [4, 2])
def test_grouped_conv_exports_without_a_partitioned_call(groups: int) -> None:
    inputs = keras.Input((8, 8, 4))
    h = keras.layers.Conv2D(8, 3, padding="same", groups=groups)(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, strides=2, padding="same", groups=4)(h))
    graph = _round_trip(model, _images())
    assert not [n for n in graph.model.graph.node if n.op_type == "PartitionedCall"]


def test_pool_with_a_stride_above_its_window_rehydrates() -> None:
    inputs = keras.Input((9, 9, 4))
    model = keras.Model(inputs, keras.layers.MaxPooling2D(1, strides=2)(keras.layers.Conv2D(4, 3)(inputs)))
    _round_trip(model, _images(side=9))


class _NoTraining(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(3)

    def call(self, x):  # noqa: ANN001, ANN201 - the common way to write one: no training argument
        return self.out(self.hidden(x))


class _WithTraining(_NoTraining):
    def __init__(self) -> None:
        super().__init__()
        self.drop = keras.layers.Dropout(0.5)

    def call(self, x, training=None):  # noqa: ANN001, ANN201
        return self.out(self.drop(self.hidden(x), training=training))


@pytest.mark.parametrize("cls", [_NoTraining, _WithTraining])
def test_subclassed_models_with_and_without_a_training_argument(cls: type) -> None:
    model = cls()
    x = RNG.standard_normal((4, 5)).astype("float32")
    model(x)
    _round_trip(model, x)


def test_a_built_subclassed_model_needs_no_sample() -> None:
    model = _NoTraining()
    x = RNG.standard_normal((4, 5)).astype("float32")
    model(x)
    tailored = to_embedding(model, output_dim=None, normalize=False)
    np.testing.assert_allclose(np.asarray(tailored(x, training=False)), np.asarray(model.hidden(x)), rtol=1e-5)


def _two_inputs(as_dict: bool) -> tuple[object, object]:
    a, b = keras.Input((5,), name="tokens"), keras.Input((3,), name="segments")
    h = keras.layers.Concatenate()([keras.layers.Dense(4)(a), keras.layers.Dense(4)(b)])
    h = keras.layers.Dense(6, activation="relu", name="features")(h)
    out = keras.layers.Dense(2)(h)
    model = keras.Model({"tokens": a, "segments": b} if as_dict else [a, b], out)
    xs = [RNG.standard_normal((4, 5)).astype("float32"), RNG.standard_normal((4, 3)).astype("float32")]
    return model, dict(zip(["tokens", "segments"], xs)) if as_dict else xs


@pytest.mark.parametrize("as_dict", [False, True])
def test_multi_input_models_tailor_at_the_classifier_input(as_dict: bool) -> None:
    model, sample = _two_inputs(as_dict)
    tailored = to_embedding(model, output_dim=None, normalize=False, sample_input=sample)
    expected = keras.Model(model.inputs, model.get_layer("features").output)(sample)
    np.testing.assert_allclose(np.asarray(tailored(sample, training=False)), np.asarray(expected), rtol=1e-5)


def test_bilinear_upsampling_and_resizing_export_as_resize_and_rehydrate() -> None:
    inputs = keras.Input((8, 8, 4))
    h = keras.layers.UpSampling2D(2, interpolation="bilinear")(keras.layers.Conv2D(4, 3)(inputs))
    h = keras.layers.Resizing(5, 7, interpolation="bilinear")(h)
    graph = _round_trip(keras.Model(inputs, h), _images())
    assert sum(n.op_type == "Resize" for n in graph.model.graph.node) == 2


def test_bidirectional_gru_unrolls_with_trainable_weights() -> None:
    """tf2onnx leaves a Keras 3 GRU as an ONNX Loop; exported unrolled, it rehydrates and its weights train."""
    inputs = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(20, 4)(inputs)
    # explicit names: Keras numbers auto-named layers per process, so other tests would rename these
    h = keras.layers.Bidirectional(keras.layers.GRU(5, return_sequences=True, name="gru"), name="bidirectional")(h)
    model = keras.Model(inputs, keras.layers.GlobalMaxPooling1D()(h))
    graph = _round_trip(model, RNG.integers(0, 20, (3, 6)).astype("int32"))
    assert not [n for n in graph.model.graph.node if n.op_type == "Loop"]
    assert {w for w in graph.weights if "gru" in w} == {
        f"bidirectional/{d}_gru/gru_cell/{k}" for d in ("forward", "backward") for k in ("kernel", "recurrent_kernel", "bias")
    }


def test_gru_of_unknown_length_is_refused_with_the_fix() -> None:
    """A GRU whose sequence length is unknown would export as an ONNX Loop: refused by name, saying to fix T."""
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.GRU(5, return_sequences=True, name="gru_any_length")(keras.layers.Embedding(20, 4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalMaxPooling1D()(h)))
    with pytest.raises(UnsupportedOpError, match=r"gru_any_length.*unknown sequence length.*fixed sequence length"):
        to_embedding(model, output_dim=None, sample_input=RNG.integers(0, 20, (3, 6)).astype("int32"))
