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

import argparse
import json
import subprocess
import sys

from _common import median_seconds, peak_rss_mb, timed, write_results

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
    import numpy as np
    import tf2onnx  # noqa: F401  (imported before timing: neither side pays for the import)

    from tailor_ir import compiler, runtime
    from tailor_ir.inspection import layer_table
    from tailor_ir.passes import embedding_head

    model, sample = build(name)
    _, bare = timed(lambda: bare_export(model, sample))
    frontend, backend = compiler.frontend("keras"), compiler.backend("keras")
    graph, t_export = timed(lambda: frontend.export(model, sample_input=sample))
    emb, t_surgery = timed(lambda: embedding_head(graph, output_dim=OUTPUT_DIM))
    tailored, t_rehydrate = timed(lambda: backend.rehydrate(emb, check=False))

    def check():
        out = np.asarray(tailored(sample, training=False))
        runtime.assert_close(out, runtime.run(emb, [sample])[0], rtol=1e-4)

    _, t_check = timed(check)
    total = t_export + t_surgery + t_rehydrate + t_check
    cut = next(row.name for row in layer_table(graph) if row.default_cut)
    native = native_embedding(model, cut)
    t_native = train_step_seconds(native, sample, steps)
    t_tailored = train_step_seconds(tailored, sample, steps)
    return {
        "model": name,
        "input": "x".join(str(d) for d in sample.shape),
        "cut": cut,
        "export_s": t_export,
        "surgery_s": t_surgery,
        "rehydrate_s": t_rehydrate,
        "check_s": t_check,
        "to_embedding_s": total,
        "bare_export_s": bare,
        "to_embedding_vs_export": total / bare,
        "train_step_native_s": t_native,
        "train_step_tailored_s": t_tailored,
        "train_step_ratio": t_tailored / t_native,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per model")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps)))
        return
    rows = []
    for name in args.models.split(","):
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            rows.append({"model": name, "error": proc.stderr.strip().splitlines()[-1:]})
            print(proc.stderr[-3000:], file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name}: to_embedding {row['to_embedding_s']:.1f}s = {row['to_embedding_vs_export']:.2f}x bare export;"
              f" train step {row['train_step_ratio']:.3f}x native; peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    columns = ["model", "input", "cut", "export_s", "surgery_s", "rehydrate_s", "check_s", "to_embedding_s",
               "bare_export_s", "to_embedding_vs_export", "train_step_native_s", "train_step_tailored_s",
               "train_step_ratio", "peak_rss_mb"]
    notes = ["Targets: to_embedding_vs_export <= 2; train_step_ratio <= 1.3.",
             f"Batch {BATCH}; output_dim {OUTPUT_DIM}; steps under tf.function (no XLA), Adam; each model in its "
             "own process; CPU only.",
             "bare_export_s: tf2onnx.convert.from_function on a tf.function of the model, timed first in the "
             "process (tf2onnx imported beforehand)."]
    print(write_results("tailor_keras", rows, columns, notes))


if __name__ == "__main__":
    main()
