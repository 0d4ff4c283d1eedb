"""Benchmark: ``to_embedding`` on Keras models, stage by stage, against a bare tf2onnx export.

For the keras zoo's MLP, small CNN and transformer, MobileNetV2 (alpha 0.35, 96 px) and ResNet50 (64 px): seconds
for export (tailor_ir's Keras frontend), surgery, rehydrate and check, peak RSS (each model in its own process),
and two ratios measured in the same run:
- whole ``to_embedding`` / a bare ``tf2onnx.convert.from_function`` of the same model (target <= 2);
- a training step of the rehydrated model / the same step on the native model: the original backbone as a Keras
  sub-model up to the same cut + the same Dense head + L2 normalisation (target <= 1.3). Both steps run under
  ``tf.function`` with ``tf.GradientTape`` and Adam.

    python benchmarks/tailor_keras.py [--models mlp,cnn] [--steps 10]
"""

from __future__ import annotations

from _common import (
    STAGE_COLUMNS,
    interleaved_train_steps,
    median_seconds,
    run_per_model,
    stage_row,
    tailor_stages,
    timed,
)

MODELS = ("mlp", "cnn", "transformer", "mobilenet_v2", "resnet50")
OUTPUT_DIM = 128
BATCH = 8


def build(name: str):
    """(model, sample) for one benchmark model."""
    from models import keras_zoo

    if name == "mlp":
        return keras_zoo.mlp(batch=BATCH)
    if name == "cnn":
        return keras_zoo.functional_cnn(batch=BATCH, side=32)
    if name == "transformer":
        return keras_zoo.transformer(batch=BATCH)
    if name == "mobilenet_v2":
        return keras_zoo.mobilenet_v2(batch=BATCH, side=96)
    return keras_zoo.resnet50(batch=BATCH, side=64)


def bare_export(model, sample) -> None:
    """What a user would do without Finetuner: tf2onnx on a tf.function of the model (from_keras fails on
    Keras 3 Sequential models, ENVIRONMENT.md)."""
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, *sample.shape[1:]), tf.as_dtype(sample.dtype), name="input")]
    function = tf.function(lambda x: model(x, training=False), input_signature=spec)
    tf2onnx.convert.from_function(function, input_signature=spec, opset=17)


def native_embedding(model, cut: str):
    """The original backbone up to ``cut`` + Dense(OUTPUT_DIM) + L2 normalisation, as a Keras model."""
    import keras

    features = model.get_layer(cut).output
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D()(features)
    elif len(features.shape) == 3:
        features = keras.layers.GlobalAveragePooling1D()(features)
    head = keras.layers.Dense(OUTPUT_DIM)(features)
    out = keras.layers.UnitNormalization()(head)
    return keras.Model(model.inputs, out)


def train_step_seconds(model, sample, steps: int) -> float:
    import keras
    import numpy as np
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(1e-4)
    variables = model.trainable_variables
    optimizer.build(variables)
    x = tf.constant(sample)
    target = tf.constant(np.random.default_rng(0).standard_normal((len(sample), OUTPUT_DIM)).astype("float32"))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=True) * target)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return median_seconds(lambda: step().numpy(), repeat=steps, warmup=2)


def measure(name: str, steps: int) -> dict:
    import tf2onnx  # noqa: F401  (imported before timing: neither side pays for the import)

    from tailor_ir.inspection import layer_table

    model, sample = build(name)
    _, bare = timed(lambda: bare_export(model, sample))
    graph, _, tailored, times = tailor_stages("keras", model, sample, OUTPUT_DIM)
    cut = next(row.name for row in layer_table(graph) if row.default_cut)
    native = native_embedding(model, cut)
    t_native, t_tailored = interleaved_train_steps(lambda m: train_step_seconds(m, sample, steps), native, tailored)
    return stage_row(name, times, bare, t_native, t_tailored, input="x".join(str(d) for d in sample.shape), cut=cut)


if __name__ == "__main__":
    run_per_model(
        __file__, __doc__, MODELS, measure, "tailor_keras", ["model", "input", "cut", *STAGE_COLUMNS],
        ["Targets: to_embedding_vs_export <= 2; train_step_ratio <= 1.3.",
         f"Batch {BATCH}; output_dim {OUTPUT_DIM}; steps under tf.function (no XLA), Adam; each model in its "
         "own process; CPU only.",
         "bare_export_s: tf2onnx.convert.from_function on a tf.function of the model (tf2onnx imported "
         "beforehand)."],
    )
