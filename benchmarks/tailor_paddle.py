"""Benchmark: ``to_embedding`` on PaddlePaddle zoo models, stage by stage, against a bare ``paddle.onnx.export``.

For every model of ``models/paddle_zoo.py``: seconds for export, surgery, rehydrate and check, peak RSS (each
model in its own process), and two ratios measured in the same run:
- whole ``to_embedding`` / a bare ``paddle.onnx.export`` (jit.save + paddle2onnx) of the same model (target <= 2);
- a training step of the rehydrated model / the same step on the native model: the original backbone up to the
  cut (its classifier replaced by Identity) + the same Linear head + L2 normalisation (target <= 1.2).

    python benchmarks/tailor_paddle.py [--models resnet18,mlp] [--steps 10]
"""

from __future__ import annotations

import os
import tempfile

from _common import (
    STAGE_COLUMNS,
    interleaved_train_steps,
    median_seconds,
    run_per_model,
    stage_row,
    tailor_stages,
    timed,
)

MODELS = ("mlp", "small_cnn", "lstm", "gru", "transformer", "resnet18", "mobilenet_v2")
OUTPUT_DIM = 128
BATCH = 16
IMAGE_SIDE = 64
SEQ_LEN = 32


def build(name: str):
    """(model, sample, name of the classifier attribute to cut away) for one benchmark model."""
    from models import paddle_zoo

    if name in ("resnet18", "mobilenet_v2"):
        model, sample = getattr(paddle_zoo, name)(batch=BATCH, side=IMAGE_SIDE)
    elif name in ("lstm", "gru", "transformer"):
        model, _ = paddle_zoo.build(name)
        sample = paddle_zoo.sample_tokens(BATCH, SEQ_LEN)
    else:
        model, sample = paddle_zoo.build(name, batch=BATCH)
    classifier = {"mlp": "head", "mobilenet_v2": "classifier.1"}.get(name, "fc")
    return model, sample, classifier


def native_embedding(name: str, in_dim: int):
    """The native equivalent of the tailored model: the zoo model with its classifier replaced by Identity,
    then a Linear head to OUTPUT_DIM and L2 normalisation."""
    from tailor_ir.imports import import_paddle

    paddle = import_paddle()
    backbone, _, classifier = build(name)
    parent = backbone
    *path, last = classifier.split(".")
    for part in path:
        parent = getattr(parent, part) if not part.isdigit() else parent[int(part)]
    if last.isdigit():
        parent[int(last)] = paddle.nn.Identity()
    else:
        setattr(parent, last, paddle.nn.Identity())

    class Native(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.head = paddle.nn.Linear(in_dim, OUTPUT_DIM)

        def forward(self, x):
            return paddle.nn.functional.normalize(self.head(self.backbone(x)), axis=-1)

    return Native()


def train_step_seconds(model, sample, steps: int) -> float:
    from tailor_ir.imports import import_paddle

    paddle = import_paddle()
    model.train()
    params = list({id(p): p for p in model.parameters() if not p.stop_gradient}.values())
    opt = paddle.optimizer.Adam(learning_rate=1e-4, parameters=params)
    x = paddle.to_tensor(sample)

    def step():
        model(x).square().sum().backward()
        opt.step()
        opt.clear_grad()

    return median_seconds(step, repeat=steps, warmup=2)


def bare_export_seconds(model, sample) -> float:
    """``paddle.onnx.export`` with the same dynamic input spec the frontend uses."""
    from tailor_ir.frontends.paddle import OPSET, _dynamic_shape, _input_names
    from tailor_ir.imports import import_paddle, import_paddle2onnx

    paddle = import_paddle()
    import_paddle2onnx()
    name = _input_names(model, 1)[0]
    spec = [paddle.static.InputSpec(_dynamic_shape(sample), str(sample.dtype), name)]
    with tempfile.TemporaryDirectory() as tmp:
        model.eval()
        return timed(lambda: paddle.onnx.export(model, os.path.join(tmp, "model"), input_spec=spec,
                                                opset_version=OPSET))[1]


def measure(name: str, steps: int) -> dict:
    model, sample, _ = build(name)
    bare = bare_export_seconds(build(name)[0], sample)  # a separate instance: no warm to_static caches shared
    _, emb, tailored, times = tailor_stages("paddle", model, sample, OUTPUT_DIM)
    in_dim = emb.initializer_array("embedding_head.projection.weight").shape[1]
    native = native_embedding(name, in_dim)
    t_native, t_tailored = interleaved_train_steps(lambda m: train_step_seconds(m, sample, steps), native, tailored)
    return stage_row(name, times, bare, t_native, t_tailored)


if __name__ == "__main__":
    run_per_model(
        __file__, __doc__, MODELS, measure, "tailor_paddle", ["model", *STAGE_COLUMNS],
        ["Targets: to_embedding_vs_export <= 2; train_step_ratio <= 1.2.",
         f"Batch {BATCH}; images {IMAGE_SIDE} px; token models at sequence {SEQ_LEN}; CPU; Adam; each model in "
         "its own process; train steps: best of two interleaved medians of the given number of steps.",
         "Native = the zoo model with its classifier replaced by Identity + Linear + L2 normalisation."],
    )
