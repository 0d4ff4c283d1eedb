"""The zoo sweep: the Tailor's checks on one model of any framework, used by ``benchmarks/tailor_zoo.py`` and tests.

Each framework lists its models in ``models/<framework>_sweep.py``::

    entries() -> {name: builder}   # builder() -> (model, sample_input, reference features)
    FAST: tuple[str, ...]          # the representative subset the test suite runs

where the reference is what the default cut must return: the input of the model's final classifier (or its
final features) computed natively on ``sample_input`` in eval/inference mode. A builder may return a fourth
item, a layer name: then the cut is ``layer_name=`` that layer and the reference is that layer's output, pooled
(for models whose default cut is not the embedding one wants). ``check_model`` then measures:

- **equivalence**: ``to_embedding(model, output_dim=None, normalize=False)`` (with the builder's ``layer_name``)
  against the reference (1e-4 relative);
- **head**: ``to_embedding(model, output_dim=64)`` gives ``(batch, 64)`` unit-norm rows; its stages are timed;
- **trainability**: the trainable weight tensors, and how many of them one Adam step moves.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

EQUIVALENCE_RTOL = 1e-4
HEAD_DIM = 64
MOVED_FRACTION = 0.95  # one step must move (nearly) every trainable tensor; a few may see an exactly-zero gradient
# the training step tiles the sample to this many rows: stochastic depth drops a block per row, and with the
# sample's 2 rows a block with drop probability p is dropped for the whole batch (no gradient) with chance p**2
STEP_ROWS = 16
# ... but no more input values than 8 rows of 3 x 224 x 224 at once (a 16-frame 224 px video clip is 16 images:
# 16 clips of MViT-v2, or 16 331 px images for NASNetLarge, in train mode need more memory than the machine has);
# the step then accumulates the gradients of as many such micro-batches as make STEP_ROWS rows
STEP_VALUES = 8 * 3 * 224 * 224

Builder = Callable[[], tuple[Any, ...]]  # (model, sample_input, reference[, layer_name])


def entries(framework: str) -> dict[str, Builder]:
    """The sweep's models of ``framework`` (``models/<framework>_sweep.py``)."""
    return importlib.import_module(f"models.{framework}_sweep").entries()


def fast_subset(framework: str) -> tuple[str, ...]:
    return tuple(importlib.import_module(f"models.{framework}_sweep").FAST)


def notes(framework: str) -> tuple[str, ...]:
    """What the results notes say about the framework's sweep (``NOTES`` of its module, if any)."""
    return tuple(getattr(importlib.import_module(f"models.{framework}_sweep"), "NOTES", ()))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """Max abs difference relative to the reference's scale (max abs value, at least 1e-6)."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(got - ref), initial=0.0) / max(float(np.max(np.abs(ref), initial=0.0)), 1e-6))


def tailor_stages(
    framework: str, model: Any, sample: Any, output_dim: int | None, layer_name: str | None = None
) -> tuple[Any, Any, Any, dict]:
    """``to_embedding``'s stages timed one by one, as ``finetuner.tailor`` runs them (check on two rows).

    Returns ``(exported graph, graph with the embedding head, rehydrated model, {stage: seconds})``.
    """
    from finetuner.tailor import CHECK_ROWS, _native_sample, _numpy_sample
    from tailor_ir import compiler, samples
    from tailor_ir.passes import embedding_head

    frontend, backend = compiler.frontend(framework), compiler.backend(framework)
    graph, t_export = _timed(lambda: frontend.export(model, sample_input=_native_sample(sample, framework)))
    emb, t_surgery = _timed(lambda: embedding_head(graph, layer_name=layer_name, output_dim=output_dim))
    tailored, t_rehydrate = _timed(lambda: backend.rehydrate(emb, check=False))
    feed = {k: v[:CHECK_ROWS] for k, v in samples.as_feed(_numpy_sample(sample), emb.input_names).items()}
    check_equivalence = importlib.import_module(backend.rehydrate.__module__).check_equivalence
    _, t_check = _timed(lambda: check_equivalence(tailored, emb, feed))
    times = {"export_s": t_export, "surgery_s": t_surgery, "rehydrate_s": t_rehydrate, "check_s": t_check}
    times["to_embedding_s"] = sum(times.values())
    return graph, emb, tailored, times


def embed(framework: str, model: Any, graph: Any, sample: Any) -> np.ndarray:
    """The first output of a rehydrated model on ``sample``, as numpy (inference mode)."""
    from finetuner.tailor import _numpy_sample
    from tailor_ir import compiler, samples

    forward = compiler.backend(framework).numpy_forward(model, graph)
    return forward(samples.as_feed(_numpy_sample(sample), graph.input_names))[0]


def check_model(framework: str, name: str, builder: Builder) -> dict[str, Any]:
    """Every check of the sweep on one model; a row whose ``ok`` says whether all passed."""
    row: dict[str, Any] = {"framework": framework, "model": name}
    try:
        built, row["build_s"] = _timed(lambda: list(builder()))
        if len(built) > 3:
            row["layer_name"] = built[3]
        _check(framework, built, row, row.get("layer_name"))
    except Exception as exc:  # noqa: BLE001 - a row per model, whatever it failed with
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        row["traceback"] = traceback.format_exc(limit=-3)
    row["ok"] = "error" not in row and row.get("equivalent") and row.get("unit_norm") and row.get("trains")
    return row


def _check(framework: str, built: list[Any], row: dict[str, Any], layer_name: str | None) -> None:
    """The checks on ``built`` = ``[model, sample_input, reference, ...]``; the list is emptied, so that the model
    can be freed before the training step (a model of hundreds of millions of weights: one copy at a time)."""
    from finetuner import tailor
    from tailor_ir import runtime

    model, sample, reference = built[0], built[1], np.asarray(built[2])
    built.clear()

    features, row["cut_s"] = _timed(partial(tailor.to_embedding, model, output_dim=None, normalize=False,
                                            layer_name=layer_name, sample_input=sample))
    graph = tailor.graph_of(features)
    got = embed(framework, features, graph, sample)
    del features  # a model of hundreds of millions of weights: one tailored copy at a time
    row["shape"] = list(got.shape)
    row["rel_error"] = relative_error(got, reference)
    row["equivalent"] = bool(row["rel_error"] <= EQUIVALENCE_RTOL)
    if not row["equivalent"] and got.shape == reference.shape:  # like with like: beyond float32 noise? (runtime)
        row["f32_noise"] = float32_noise(graph, sample)
        # deep random-weight nets amplify float32 rounding past 1e-4 in every implementation, native included
        row["equivalent"] = bool(row["rel_error"] <= runtime.NOISE_FACTOR * row["f32_noise"])
    del graph
    if not row["equivalent"]:
        row["error"] = f"default cut gives {got.shape}, expected {reference.shape} (rel. error {row['rel_error']:.3g})"
    _, emb_graph, head, stages = tailor_stages(framework, model, sample, HEAD_DIM, layer_name)
    del model  # with it its cached export; the head has its own weights
    row.update({k: round(v, 3) for k, v in stages.items()})
    out = embed(framework, head, emb_graph, sample)
    norms = np.linalg.norm(out, axis=1)
    row["unit_norm"] = bool(out.shape[1:] == (HEAD_DIM,) and np.allclose(norms, 1.0, atol=1e-4))
    names = list(emb_graph.input_names)
    del emb_graph
    (trainable, moved), row["train_step_s"] = _timed(lambda: _TRAIN_STEPS[framework](head, names, sample))
    row["trainable_tensors"], row["moved_tensors"] = trainable, moved
    row["trainable_params"] = _trainable_params(framework, head)
    row["trains"] = bool(trainable and moved >= MOVED_FRACTION * trainable)


def float32_noise(graph: Any, sample: Any) -> float:
    """onnxruntime's own float32 noise on the cut graph (``tailor_ir.runtime.float32_noise``, first output)."""
    from tailor_ir import runtime

    return runtime.float32_noise(graph, dict(zip(graph.input_names, _feed(graph.input_names, sample))))[0]


def _feed(input_names: list[str], sample: Any, rows: int | None = None) -> list[np.ndarray]:
    """The graph inputs ``input_names`` from ``sample``; with ``rows``, the sample's rows repeated to that batch
    size."""
    from finetuner.tailor import _numpy_sample
    from tailor_ir import samples

    feed = samples.as_feed(_numpy_sample(sample), input_names)
    arrays = [np.asarray(feed[n]) for n in input_names]
    batched = [a for a in arrays if a.ndim]
    if rows is not None and batched:
        per_row = max(max(int(np.prod(a.shape[1:])) for a in batched), 1)
        rows = max(min(rows, STEP_VALUES // per_row), max(len(a) for a in batched))  # never fewer than given
        arrays = [np.resize(a, (rows, *a.shape[1:])) if a.ndim else a for a in arrays]
    return [np.ascontiguousarray(a) for a in arrays]


def _micro_batches(inputs: list[np.ndarray]) -> int:
    """How many passes over ``inputs`` (a micro-batch) make STEP_ROWS rows in all."""
    rows = max((len(a) for a in inputs if a.ndim), default=STEP_ROWS)
    return -(-STEP_ROWS // rows)


def _direction(shape: tuple[int, ...]) -> np.ndarray:
    """A fixed random direction: the loss ``<embedding, direction>`` has a non-zero gradient even at unit norm."""
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _torch_step(model: Any, input_names: list[str], sample: Any) -> tuple[int, int]:
    from tailor_ir.imports import import_torch

    torch = import_torch()
    params = [p for p in model.parameters() if p.requires_grad]

    def fingerprint(p: Any) -> tuple[float, float]:  # not a copy of every weight: a 600M-weight model is 2.4 GB
        values = p.detach().double()
        return values.sum().item(), values.square().sum().item()

    before = [fingerprint(p) for p in params]
    optimizer = torch.optim.Adam(params, lr=1e-3, foreach=False)
    model.train()
    inputs = _feed(input_names, sample, STEP_ROWS)
    for _ in range(_micro_batches(inputs)):
        out = model(*[torch.from_numpy(a) for a in inputs])
        out = out[0] if isinstance(out, (tuple, list)) else out
        (out * torch.from_numpy(_direction(tuple(out.shape)))).sum().backward()  # gradients add up
    optimizer.step()
    model.eval()
    return len(params), sum(b != fingerprint(p) for b, p in zip(before, params))


def _keras_step(model: Any, input_names: list[str], sample: Any) -> tuple[int, int]:
    from tailor_ir.imports import import_keras, import_tensorflow

    keras, tf = import_keras(), import_tensorflow()
    variables = list(model.trainable_variables)
    before = [np.array(v.numpy()) for v in variables]
    inputs = _feed(input_names, sample, STEP_ROWS)
    total: list[Any] = [None] * len(variables)
    for _ in range(_micro_batches(inputs)):
        with tf.GradientTape() as tape:
            out = model(inputs if len(inputs) > 1 else inputs[0], training=True)
            out = out[0] if isinstance(out, (tuple, list)) else out
            loss = tf.reduce_sum(out * _direction(tuple(out.shape)))
        grads = tape.gradient(loss, variables)
        total = [g if t is None else (t if g is None else t + g) for t, g in zip(total, grads)]
    keras.optimizers.Adam(1e-3).apply_gradients((g, v) for g, v in zip(total, variables) if g is not None)
    return len(variables), sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))


def _paddle_step(model: Any, input_names: list[str], sample: Any) -> tuple[int, int]:
    from tailor_ir.imports import import_paddle

    paddle = import_paddle()
    params = [p for p in model.parameters() if not p.stop_gradient]
    before = [p.numpy().copy() for p in params]
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=params)
    model.train()
    inputs = _feed(input_names, sample, STEP_ROWS)
    for _ in range(_micro_batches(inputs)):
        out = model(*[paddle.to_tensor(a) for a in inputs])
        out = out[0] if isinstance(out, (tuple, list)) else out
        (out * paddle.to_tensor(_direction(tuple(out.shape)))).sum().backward()  # gradients add up
    optimizer.step()
    model.eval()
    return len(params), sum(not np.array_equal(b, p.numpy()) for b, p in zip(before, params))


_TRAIN_STEPS = {"torch": _torch_step, "keras": _keras_step, "paddle": _paddle_step}


def _trainable_params(framework: str, model: Any) -> int:
    if framework == "torch":
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    if framework == "keras":
        return sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)
