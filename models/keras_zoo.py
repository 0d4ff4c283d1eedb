"""The Keras reference zoo: builders returning ``(model, sample_input)`` (numpy).

Small general models (a CNN with BatchNormalization and Dropout written three ways: Sequential, functional and
subclassed; an MLP; an Embedding + LSTM text classifier; a transformer encoder) and real architectures from
``keras.applications`` with ``weights=None`` (MobileNetV2, ResNet50). Nothing is downloaded. Every builder is
seeded, so two calls give the same weights.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tailor_ir.imports import import_keras

keras = import_keras()
layers = keras.layers

VOCAB = 100
SEQ_LEN = 12


def sample_images(batch: int = 2, side: int = 16, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Random NHWC float32 images."""
    return np.random.default_rng(seed).standard_normal((batch, side, side, channels)).astype("float32")


def sample_tokens(batch: int = 2, seq_len: int = SEQ_LEN, vocab: int = VOCAB, seed: int = 0) -> np.ndarray:
    """Random int32 token ids (batch, seq_len) in ``1 .. vocab-1``."""
    return np.random.default_rng(seed).integers(1, vocab, size=(batch, seq_len)).astype("int32")


def _cnn_layers() -> list[keras.layers.Layer]:
    return [
        layers.Conv2D(8, 3, padding="same", name="conv1"),
        layers.BatchNormalization(name="bn1"),
        layers.ReLU(name="relu1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv2"),
        layers.BatchNormalization(name="bn2"),
        layers.ReLU(name="relu2"),
        layers.GlobalAveragePooling2D(name="gap"),
        layers.Dropout(0.25, name="dropout"),
        layers.Dense(10, name="fc"),
    ]


def sequential_cnn(batch: int = 2, side: int = 16) -> tuple[keras.Model, np.ndarray]:
    """A Sequential CNN: conv-BN-ReLU x2, pooling, Dropout, Dense."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((side, side, 3), name="image"), *_cnn_layers()], name="seqcnn")
    return model, sample_images(batch, side)


def functional_cnn(batch: int = 2, side: int = 16) -> tuple[keras.Model, np.ndarray]:
    """The same CNN as a functional model, with a residual Add."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((side, side, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    y = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv2")(x)
    y = layers.BatchNormalization(name="bn2")(y)
    x = layers.ReLU(name="relu2")(layers.Add(name="add")([x, y]))
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="valid", name="conv3")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.25, name="dropout")(x)
    outputs = layers.Dense(10, name="fc")(x)
    return keras.Model(inputs, outputs, name="funccnn"), sample_images(batch, side)


@keras.saving.register_keras_serializable(package="finetuner_zoo")
class SubclassedCNN(keras.Model):
    """The CNN as a subclassed model (no ``.inputs``; layers are attributes)."""

    def __init__(self, num_classes: int = 10, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.conv1 = layers.Conv2D(8, 3, padding="same", name="conv1")
        self.bn1 = layers.BatchNormalization(name="bn1")
        self.conv2 = layers.Conv2D(16, 3, padding="same", name="conv2")
        self.bn2 = layers.BatchNormalization(name="bn2")
        self.gap = layers.GlobalAveragePooling2D(name="gap")
        self.dropout = layers.Dropout(0.25, name="dropout")
        self.fc = layers.Dense(num_classes, name="fc")

    def call(self, x: object, training: bool | None = None) -> object:
        x = keras.ops.relu(self.bn1(self.conv1(x), training=training))
        x = keras.ops.relu(self.bn2(self.conv2(x), training=training))
        return self.fc(self.dropout(self.gap(x), training=training))


def subclassed_cnn(batch: int = 2, side: int = 16) -> tuple[keras.Model, np.ndarray]:
    keras.utils.set_random_seed(0)
    model = SubclassedCNN(name="subcnn")
    sample = sample_images(batch, side)
    model(sample)
    return model, sample


def mlp(batch: int = 2) -> tuple[keras.Model, np.ndarray]:
    """An MLP on 64 features with 10 classes."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,), name="features"),
            layers.Dense(128, activation="relu", name="dense1"),
            layers.Dropout(0.1, name="dropout"),
            layers.Dense(64, activation="relu", name="dense2"),
            layers.Dense(10, name="logits"),
        ],
        name="mlp",
    )
    x = np.random.default_rng(0).standard_normal((batch, 64)).astype("float32")
    return model, x


def lstm(batch: int = 2) -> tuple[keras.Model, np.ndarray]:
    """Embedding + LSTM + Dense text classifier on int token ids."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SEQ_LEN,), dtype="int32", name="tokens")
    x = layers.Embedding(VOCAB, 16, name="embedding")(inputs)
    x = layers.LSTM(24, name="lstm")(x)
    outputs = layers.Dense(5, name="fc")(x)
    return keras.Model(inputs, outputs, name="lstm_text"), sample_tokens(batch)


@keras.saving.register_keras_serializable(package="finetuner_zoo")
class TokenAndPositionEmbedding(layers.Layer):
    """Token embedding plus a learned position embedding (positions ``0 .. seq_len-1``)."""

    def __init__(self, vocab: int, max_len: int, dim: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.vocab, self.max_len, self.dim = vocab, max_len, dim
        self.tokens = layers.Embedding(vocab, dim, name="tokens")
        self.positions = layers.Embedding(max_len, dim, name="positions")

    def call(self, ids: object) -> object:
        positions = keras.ops.arange(keras.ops.shape(ids)[1])
        return self.tokens(ids) + self.positions(positions)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "vocab": self.vocab, "max_len": self.max_len, "dim": self.dim}


def transformer(batch: int = 2, dim: int = 32, heads: int = 2) -> tuple[keras.Model, np.ndarray]:
    """A one-block transformer encoder classifier: Embedding + positions, MHA, LayerNorm, FFN, mean pool."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SEQ_LEN,), dtype="int32", name="tokens")
    x = TokenAndPositionEmbedding(VOCAB, SEQ_LEN, dim, name="embedding")(inputs)
    attn = layers.MultiHeadAttention(heads, dim // heads, name="mha")(x, x)
    x = layers.LayerNormalization(epsilon=1e-5, name="ln1")(x + attn)
    ffn = layers.Dense(2 * dim, activation="gelu", name="ffn1")(x)
    ffn = layers.Dense(dim, name="ffn2")(ffn)
    x = layers.LayerNormalization(epsilon=1e-5, name="ln2")(x + ffn)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = layers.Dense(4, name="fc")(x)
    return keras.Model(inputs, outputs, name="transformer"), sample_tokens(batch)


def _calibrate_bn(model: keras.Model, sample: np.ndarray, steps: int = 3) -> None:
    """Run a few training-mode forwards so BN statistics fit the data (untrained nets output a constant)."""
    for _ in range(steps):
        model(sample, training=True)


def mobilenet_v2(batch: int = 2, side: int = 64) -> tuple[keras.Model, np.ndarray]:
    """keras.applications MobileNetV2 (weights=None, alpha 0.35), BN statistics calibrated on the sample."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(side, side, 3), alpha=0.35, weights=None, classes=10)
    sample = sample_images(max(batch, 2), side)
    _calibrate_bn(model, sample)
    return model, sample[:batch]


def resnet50(batch: int = 2, side: int = 64) -> tuple[keras.Model, np.ndarray]:
    """keras.applications ResNet50 (weights=None), BN statistics calibrated on the sample."""
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(input_shape=(side, side, 3), weights=None, classes=10)
    sample = sample_images(max(batch, 2), side)
    _calibrate_bn(model, sample, steps=1)
    return model, sample[:batch]


ZOO: dict[str, Callable[..., tuple[keras.Model, np.ndarray]]] = {
    "sequential_cnn": sequential_cnn,
    "functional_cnn": functional_cnn,
    "subclassed_cnn": subclassed_cnn,
    "mlp": mlp,
    "lstm": lstm,
    "transformer": transformer,
    "mobilenet_v2": mobilenet_v2,
    "resnet50": resnet50,
}


def build(name: str, batch: int = 2) -> tuple[keras.Model, np.ndarray]:
    """Build a zoo model by name."""
    return ZOO[name](batch=batch)
