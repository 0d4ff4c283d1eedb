"""The Keras zoo sweep (``models/sweep.py``): every ``keras.applications`` model, plus the kinds of model Keras users
write by hand — functional text models (Embedding + Bidirectional LSTM/GRU + Conv1D), multi-input and dict-input
functional models, subclassed models (with and without ``training`` in ``call``) and a
``keras.layers.MultiHeadAttention`` encoder.

Every applications model is built with ``weights=None`` and ``classes=10`` at a small input side; its
BatchNormalization statistics are calibrated on a separate batch (momentum 0 for one training-mode call), so
inference mode normalises real activations instead of the identity statistics of a fresh model. The reference
is what the default cut must return, computed natively in inference mode: the input of the model's final
classifier (its last ``Dense`` or 1x1 ``Conv2D``), averaged over space when it is a feature map.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from tailor_ir.imports import import_keras

keras = import_keras()

BATCH = 3
CALIBRATION_BATCH = 16
SEQ_LEN = 12
VOCAB = 100
CLASSES = 10
# the input side of each applications model: 32 is the smallest most accept, but at 32 px the deepest stages see
# 1x1 maps whose batch statistics (a handful of values per channel) amplify float rounding past 1e-4; 64 px keeps
# the check about the converter, not the conditioning. Xception needs 71 px; the Inceptions accept 75 px but end
# on a 1x1 map there (the same amplification), so they get 139 px (3x3); NASNet is fixed-size.
DEFAULT_SIDE = 64
SIDE = {"InceptionV3": 139, "InceptionResNetV2": 139, "Xception": 71, "NASNetMobile": 224, "NASNetLarge": 331}

NOTES = (
    "weights=None, classes=10, BN statistics calibrated on a separate batch of 16; 64 px (Inception 139, "
    "Xception 71, NASNetMobile 224, NASNetLarge 331); reference = the classifier's input (spatial mean if a map).",
    "f32_noise (only measured when rel_error > 1e-4): onnxruntime's optimised against its plain float32 run on the "
    "cut; such a model passes within 4x of it (tailor_ir.runtime.NOISE_FACTOR). Deep random-weight nets amplify "
    "float32 rounding: on ResNet152, native Keras float32 is 1.2e-3 from a float64 run of the same weights, "
    "onnxruntime 8.5e-4, the rehydrated model 9.4e-4, and the rehydrated model in float64 equals native Keras "
    "float64 to 3.8e-9 (InceptionV3: 9.0e-5, 6.0e-5, 9.4e-5; 6e-8; EfficientNetV2M: 7.3e-5, 5.5e-5, 6.5e-5; 1.6e-7): "
    "the converter is exact. Weights are random per run, so a model's error differs from run to run.",
    "Machine: 2 shared cores, OMP_NUM_THREADS=1, nice 19, other jobs running (load 9-14): timings are noisy.",
)
FAST = ("conv1x1_head", "text_bilstm", "multi_input", "dict_input", "subclassed_cnn", "mha_encoder")

Entry = Callable[[], tuple[Any, Any, np.ndarray]]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def calibrate_batchnorm(model: Any, batch: Any) -> None:
    """Set every BatchNormalization layer's moving statistics to the statistics of ``batch``."""
    layers = [lyr for lyr in model._flatten_layers(include_self=False)
              if isinstance(lyr, keras.layers.BatchNormalization)]
    momenta = [lyr.momentum for lyr in layers]
    for lyr in layers:
        lyr.momentum = 0.0
    model(batch, training=True)
    for lyr, momentum in zip(layers, momenta):
        lyr.momentum = momentum


def _classifier(model: Any) -> Any:
    """The model's final classifier: its last Dense or 1x1 Conv2D layer."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Dense):
            return layer
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1):
            return layer
    raise ValueError(f"{model.name} has no Dense or 1x1 Conv2D classifier")


def classifier_input(model: Any, sample: Any) -> np.ndarray:
    """The input of the final classifier on ``sample`` (inference mode), averaged over space if a feature map."""
    sub = keras.Model(model.inputs, _classifier(model).input)
    features = np.asarray(sub(sample, training=False))
    return features.mean(axis=(1, 2)) if features.ndim == 4 else features


# --------------------------------------------------------------------------- keras.applications
def application(name: str) -> tuple[Any, Any, np.ndarray]:
    side = SIDE.get(name, DEFAULT_SIDE)
    model = getattr(keras.applications, name)(weights=None, input_shape=(side, side, 3), classes=CLASSES)
    images = partial(lambda seed, n: _rng(seed).uniform(0, 255, (n, side, side, 3)).astype("float32"))
    calibrate_batchnorm(model, images(1, CALIBRATION_BATCH))
    sample = images(2, BATCH)
    return model, sample, classifier_input(model, sample)


def application_names() -> list[str]:
    return sorted(n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n)))


# --------------------------------------------------------------------------- hand-written models
def _tokens(seed: int = 2, n: int = BATCH) -> np.ndarray:
    return _rng(seed).integers(1, VOCAB, (n, SEQ_LEN)).astype("int32")


def text_model(cell: str) -> tuple[Any, Any, np.ndarray]:
    """Embedding + Bidirectional LSTM/GRU + Conv1D + global max pooling + Dense classifier."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SEQ_LEN,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(VOCAB, 16)(inputs)
    rnn = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    h = keras.layers.Bidirectional(rnn(12, return_sequences=True))(h)
    h = keras.layers.Conv1D(16, 3, activation="relu")(h)
    h = keras.layers.GlobalMaxPooling1D()(h)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(h))
    sample = _tokens()
    return model, sample, classifier_input(model, sample)


def multi_input() -> tuple[Any, Any, np.ndarray]:
    """An image and a vector of tabular features, merged before the classifier."""
    keras.utils.set_random_seed(0)
    image, table = keras.Input((16, 16, 3), name="image"), keras.Input((6,), name="table")
    a = keras.layers.Conv2D(8, 3, activation="relu")(image)
    a = keras.layers.BatchNormalization()(a)
    a = keras.layers.GlobalAveragePooling2D()(a)
    b = keras.layers.Dense(8, activation="relu")(table)
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([image, table], keras.layers.Dense(CLASSES)(h))
    calibrate_batchnorm(model, [_rng(1).standard_normal((CALIBRATION_BATCH, 16, 16, 3)).astype("float32"),
                                _rng(1).standard_normal((CALIBRATION_BATCH, 6)).astype("float32")])
    sample = [_rng(2).standard_normal((BATCH, 16, 16, 3)).astype("float32"),
              _rng(2).standard_normal((BATCH, 6)).astype("float32")]
    return model, sample, classifier_input(model, sample)


def dict_input() -> tuple[Any, Any, np.ndarray]:
    """A keras_hub-style backbone input: ``{'token_ids', 'padding_mask'}``, the mask zeroing padded positions."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((SEQ_LEN,), dtype="int32", name="token_ids")
    mask = keras.Input((SEQ_LEN,), dtype="float32", name="padding_mask")
    h = keras.layers.Embedding(VOCAB, 16)(ids)
    h = keras.layers.Multiply()([h, keras.layers.Reshape((SEQ_LEN, 1))(mask)])
    h = keras.layers.Dense(16, activation="gelu")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model({"token_ids": ids, "padding_mask": mask}, keras.layers.Dense(CLASSES)(h))
    padding = (np.arange(SEQ_LEN)[None, :] < np.array([[SEQ_LEN], [SEQ_LEN - 3], [5]])).astype("float32")
    sample = {"token_ids": _tokens(), "padding_mask": padding}
    return model, sample, classifier_input(model, sample)


def conv1x1_head() -> tuple[Any, Any, np.ndarray]:
    """MobileNet's kind of top: pooled features kept as a 1x1 map, a 1x1 Conv2D classifier, then Flatten."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(inputs)
    h = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(h))
    h = keras.layers.DepthwiseConv2D(3, padding="same")(h)
    h = keras.layers.Conv2D(24, 1, activation="hard_swish")(h)
    h = keras.layers.GlobalAveragePooling2D(keepdims=True)(h)
    h = keras.layers.Conv2D(CLASSES, 1)(keras.layers.Dropout(0.2)(h))
    model = keras.Model(inputs, keras.layers.Activation("softmax")(keras.layers.Flatten()(h)))
    calibrate_batchnorm(model, _rng(1).standard_normal((CALIBRATION_BATCH, 16, 16, 3)).astype("float32"))
    sample = _rng(2).standard_normal((BATCH, 16, 16, 3)).astype("float32")
    return model, sample, classifier_input(model, sample)


class SubclassedCNN(keras.Model):
    """The common way to write one: ``call(self, x)`` without a ``training`` argument."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = keras.layers.Conv2D(8, 3, padding="same", activation="relu")
        self.bn = keras.layers.BatchNormalization()
        self.conv2 = keras.layers.Conv2D(16, 3, strides=2, activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.classifier = keras.layers.Dense(CLASSES)

    def features(self, x: Any) -> Any:
        return self.pool(self.conv2(self.bn(self.conv1(x))))

    def call(self, x: Any) -> Any:
        return self.classifier(self.features(x))


def subclassed_cnn() -> tuple[Any, Any, np.ndarray]:
    keras.utils.set_random_seed(0)
    model = SubclassedCNN()
    calibrate_batchnorm(model, _rng(1).standard_normal((CALIBRATION_BATCH, 16, 16, 3)).astype("float32"))
    sample = _rng(2).standard_normal((BATCH, 16, 16, 3)).astype("float32")
    return model, sample, np.asarray(model.features(sample))


class SubclassedMLP(keras.Model):
    """A subclassed model whose ``call`` takes ``training`` (and passes it to its Dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.drop = keras.layers.Dropout(0.3)
        self.classifier = keras.layers.Dense(CLASSES)

    def call(self, x: Any, training: bool | None = None) -> Any:
        return self.classifier(self.drop(self.hidden(x), training=training))


def subclassed_mlp() -> tuple[Any, Any, np.ndarray]:
    keras.utils.set_random_seed(0)
    model = SubclassedMLP()
    sample = _rng(2).standard_normal((BATCH, 20)).astype("float32")
    model(sample)
    return model, sample, np.asarray(model.hidden(sample))


def mha_encoder() -> tuple[Any, Any, np.ndarray]:
    """A Keras-native transformer encoder block: token + position embeddings, MultiHeadAttention, LayerNorm, FFN."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((SEQ_LEN,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(VOCAB, 32)(tokens)
    positions = keras.ops.arange(SEQ_LEN)
    h = h + keras.layers.Embedding(SEQ_LEN, 32)(positions)
    attended = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8)(h, h)
    h = keras.layers.LayerNormalization()(h + attended)
    ffn = keras.layers.Dense(32)(keras.layers.Dense(64, activation="gelu")(h))
    h = keras.layers.LayerNormalization()(h + ffn)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model(tokens, keras.layers.Dense(CLASSES)(h))
    sample = _tokens()
    return model, sample, classifier_input(model, sample)


def entries() -> dict[str, Entry]:
    """Every keras.applications model, then the hand-written ones."""
    found: dict[str, Entry] = {name: partial(application, name) for name in application_names()}
    found.update({
        "text_bilstm": partial(text_model, "lstm"),
        "text_bigru": partial(text_model, "gru"),
        "conv1x1_head": conv1x1_head,
        "multi_input": multi_input,
        "dict_input": dict_input,
        "subclassed_cnn": subclassed_cnn,
        "subclassed_mlp": subclassed_mlp,
        "mha_encoder": mha_encoder,
    })
    return found
