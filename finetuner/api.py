"""``finetuner.fit`` and ``finetuner.embed``: the one entry point, with defaults chosen for you.

``fit(model, train_data)`` is enough. A general model (a classifier, a language model) is first tailored into
an embedding model when any tailor argument is given (``output_dim``, ``layer_name``, ``freeze``, ``pooling``,
``normalize``); the model's framework picks the tuner backend; the tuned model comes back in that framework.

Defaults (measured on scikit-learn's digits, see ``benchmarks/fit_quality.py``): ``TripletLoss`` (cosine,
margin 0.2, all positives x semihard negatives), Adam at 3e-3 with a cosine schedule, 20 epochs, batches of 64
with 8 items per class. Without ``eval_data`` a validation split is held out (``validation='auto'``: 30% of
the classes, at least 3, so that the model is selected for classes it has not seen, the usual case in search), metrics
are computed on it after every epoch, and the weights of the best epoch are kept, the untrained weights
included: fine-tuning never returns a model that is worse on the validation data than the one it was given.
For closed-set search (queries and index only of the trained classes) pass ``validation='items'``.
"""

from __future__ import annotations

import difflib
import os
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tailor_ir import compiler

__all__ = ["embed", "fit", "history"]

TAILOR_ARGS = ("output_dim", "layer_name", "freeze", "pooling", "normalize")
VALIDATION_MODES = ("auto", "classes", "items", "none")
DEFAULT_MONITOR = "mAP@R"
MIN_CLASSES_FOR_CLASS_SPLIT = 4
DEFAULT_EPOCHS = 20
SELECTION_MARGIN = 0.03
VALIDATION_CLASS_FRACTION = 0.3
MIN_VALIDATION_CLASSES = 3

_HISTORIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fit(
    model: Any,
    train_data: Any,
    eval_data: Any = None,
    *,
    # tailoring a general model (any of these turns tailoring on)
    output_dim: int | None = None,
    layer_name: str | None = None,
    freeze: bool | Sequence[str] | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    input_shape: Sequence[int] | None = None,
    input_dtype: str = "float32",
    sample_input: Any = None,
    # training
    loss: str | Any = "TripletLoss",
    optimizer: str | Callable[..., Any] = "adam",
    learning_rate: float = 3e-3,
    weight_decay: float | None = None,
    scheduler: str = "cosine",
    warmup_steps: int = 0,
    max_grad_norm: float | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    num_items_per_class: int | None = None,
    preprocess_fn: Callable[[Any], Any] | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    augment_fn: Callable[..., Any] | None = None,
    num_workers: int = 0,
    device: str = "auto",
    mixed_precision: bool = False,
    seed: int = 42,
    # validation and model selection
    validation: str = "auto",
    monitor: str = DEFAULT_MONITOR,
    patience: int = 4,
    keep_best: bool = True,
    # around the run
    callbacks: Iterable[Any] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    logdir: str | os.PathLike | None = None,
    progress: bool = True,
    interactive: bool = False,
    labeler_options: Mapping[str, Any] | None = None,
    **unknown: Any,
) -> Any:
    """Fine-tune ``model`` on ``train_data`` and return the tuned embedding model (same framework).

    Args:
        model: a ``torch.nn.Module``, ``keras.Model`` or ``paddle.nn.Layer``: an embedding model, or a general
            model together with tailor arguments.
        train_data: a ``DocumentArray`` of class data (``tags['finetuner_label']``), session data (queries
            whose ``.matches`` carry +1/-1 labels) or unlabelled data (self-supervised); or ``(X, y)`` arrays.
            With ``interactive=True``: the unlabelled pool to label in the browser.
        eval_data: labelled data to evaluate on after every epoch; the best epoch's weights are kept.
        output_dim, layer_name, freeze, pooling, normalize, input_shape, input_dtype, sample_input: see
            :func:`finetuner.tailor.to_embedding` (defaults there: ``output_dim=128``, ``pooling='auto'``,
            ``normalize=True``, ``freeze=False``).
        loss: ``SiameseLoss`` | ``TripletLoss`` | ``MultipleNegativesRankingLoss`` | ``NTXentLoss`` |
            ``ArcFaceLoss`` | ``CosFaceLoss``, or a loss object of the backend.
        optimizer, learning_rate, weight_decay, scheduler, warmup_steps, max_grad_norm: the optimisation
            (``adam|adamw|sgd|rmsprop``; ``constant|linear|cosine``).
        epochs, batch_size, num_items_per_class: the schedule (default 20 epochs; with ``interactive``, the
            epochs per fit in the Labeler) and the m-per-class sampler.
        preprocess_fn, collate_fn, augment_fn, num_workers: data hooks (text models: ``collate_fn`` tokenises,
            e.g. ``finetuner.data.tokenizer_collate(tokenizer)``).
        device, mixed_precision, seed: where and how reproducibly to train.
        validation: without ``eval_data``, what to hold out to select the best epoch. ``'auto'``: for class
            data with at least 4 classes, 30% of the classes but at least 3 (``'classes'``: the model is judged on classes
            it never trained on, as in search over new items); otherwise 20% of the items (of the sessions
            for session data). ``'items'``: 20% of the items of every class, for closed-set search, where
            queries and index hold only the classes trained on. ``'none'``: no selection.
        monitor, patience, keep_best: the metric that selects the best epoch, how many epochs without
            improvement to wait before stopping, and whether to return the best epoch's weights.
        callbacks: more ``finetuner.tuner.callbacks`` objects.
        checkpoint_dir: write a resumable ``TrainingCheckpoint`` there every epoch.
        resume_from: a checkpoint folder to continue a killed run exactly where it stopped.
        logdir: write ``metrics.csv``/``metrics.json`` and ``training.png`` (loss and metrics per epoch) there.
        progress: show a progress bar.
        interactive: open the Labeler in the browser on ``train_data`` (an unlabelled pool) instead; the
            model learns from the labels as they arrive (see :func:`finetuner.labeler.run`).
        labeler_options: more arguments of :func:`finetuner.labeler.run` (``workdir``, ``port``,
            ``open_browser``, ``strategy``, ``top_k``, ...).
    Returns:
        the tuned model; :func:`history` gives its per-epoch losses and metrics.
    """
    if unknown:
        _reject_unknown(unknown)
    framework = compiler.require_framework(model)
    tailor_options = {
        name: value
        for name, value in (("output_dim", output_dim), ("layer_name", layer_name), ("freeze", freeze),
                            ("pooling", pooling), ("normalize", normalize))
        if value is not None
    }
    if tailor_options:
        from finetuner import tailor

        model = tailor.to_embedding(
            model, input_shape=input_shape, input_dtype=input_dtype, sample_input=sample_input, **tailor_options
        )
    if interactive:
        from finetuner import labeler

        options = {"open_browser": True, **(labeler_options or {})}
        data_options = {"preprocess_fn": preprocess_fn, "collate_fn": collate_fn}
        return labeler.run(model, train_data, epochs=epochs, **data_options, **options)
    if labeler_options:
        raise TypeError("labeler_options apply only with interactive=True")
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    if validation not in VALIDATION_MODES:
        raise ValueError(f"validation={validation!r} is not one of {', '.join(VALIDATION_MODES)}.")
    train_data, eval_data = _validation_split(train_data, eval_data, validation, seed)

    from finetuner.tuner import tuner_class
    from finetuner.tuner.callbacks import (
        EarlyStopping,
        MetricsLogger,
        ProgressBar,
        TrainingCheckpoint,
        TrainingPlot,
    )

    tuner = tuner_class(framework)(
        model, loss=loss, optimizer=optimizer, learning_rate=learning_rate, weight_decay=weight_decay,
        scheduler=scheduler, warmup_steps=warmup_steps, max_grad_norm=max_grad_norm, device=device,
        mixed_precision=mixed_precision, seed=seed,
    )
    data_options = {
        "preprocess_fn": preprocess_fn, "collate_fn": collate_fn, "augment_fn": augment_fn,
        "num_workers": num_workers,
    }
    data_options = {k: v for k, v in data_options.items() if v is not None}
    if num_items_per_class is not None:
        data_options["num_items_per_class"] = num_items_per_class

    extra: list[Any] = []
    selection = None
    if eval_data is not None:
        selection = _StartingPoint(eval_data, monitor, data_options) if keep_best else None
        extra.append(EarlyStopping(monitor=monitor, patience=patience, restore_best=keep_best))
    if progress:
        extra.append(ProgressBar())
    if checkpoint_dir is not None:
        extra.append(TrainingCheckpoint(checkpoint_dir))
    if logdir is not None:
        extra += [MetricsLogger(Path(logdir) / "metrics"), TrainingPlot(Path(logdir) / "training.png")]
    if selection is not None:
        selection.measure(tuner)
    state = tuner.fit(
        train_data, eval_data=eval_data, epochs=epochs, batch_size=batch_size,
        callbacks=[*(callbacks or []), *extra], resume_from=resume_from, **data_options,
    )
    if selection is not None:
        selection.keep_if_better(tuner, state)
    _HISTORIES[tuner.model] = state.history
    return tuner.model


def history(model: Any) -> dict[str, list[float]]:
    """Per-epoch values (``epoch``, ``loss``, metrics) of the last :func:`fit` that returned ``model``."""
    try:
        return dict(_HISTORIES[model])
    except (KeyError, TypeError):
        raise KeyError("this model did not come from finetuner.fit in this process") from None


def embed(docs: Any, model: Any, batch_size: int = 256, preprocess_fn: Callable | None = None,
          collate_fn: Callable | None = None) -> Any:
    """Fill ``doc.embedding`` of every Document in ``docs`` with ``model`` (in eval mode); return ``docs``.

    ``docs`` may also be a numpy array (or dict of arrays) of inputs: then the (N, D) embeddings are returned.
    """
    from finetuner.tuner import tuner_class

    tuner = tuner_class(compiler.require_framework(model))(model)
    if isinstance(docs, (np.ndarray, dict)):
        return tuner.embed(docs, batch_size=batch_size)
    from finetuner.data import as_dataset, in_order

    dataset = as_dataset(docs, preprocess_fn=preprocess_fn)
    chunks = [tuner._embed_batch(batch.contents) for batch in in_order(dataset, batch_size, collate_fn)]
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
    for doc, embedding in zip(dataset.items, embeddings):
        doc.embedding = embedding
    return docs


class _StartingPoint:
    """Measures the untrained model on the validation data, so that fit never returns something worse."""

    def __init__(self, eval_data: Any, monitor: str, data_options: dict[str, Any]) -> None:
        from finetuner.tuner.callbacks import EvaluationCallback

        options = {k: v for k, v in data_options.items() if k in ("preprocess_fn", "collate_fn", "num_workers")}
        self.evaluation = EvaluationCallback(eval_data, data_options=options)
        self.monitor = monitor
        self.value: float | None = None
        self.weights: dict[str, np.ndarray] | None = None

    def measure(self, tuner: Any) -> None:
        metrics = self.evaluation.evaluate(tuner)
        if self.monitor in metrics:
            self.value = metrics[self.monitor]
            self.weights = tuner.get_weights()

    def keep_if_better(self, tuner: Any, state: Any) -> None:
        from finetuner.tuner.callbacks._monitor import resolve_mode

        values = [r[self.monitor] for r in state.records if self.monitor in r]
        if self.value is None or not values:
            return
        best = max(values) if resolve_mode(self.monitor, "auto") == "max" else min(values)
        margin = SELECTION_MARGIN * abs(self.value)  # a gain inside the validation noise is no gain
        worse = best < self.value + margin if resolve_mode(self.monitor, "auto") == "max" else best > self.value - margin
        if worse and self.weights is not None:
            tuner.set_weights(self.weights)
            warnings.warn(
                f"fine-tuning did not improve {self.monitor} on the validation data ({self.value:.4f} before, "
                f"{best:.4f} at best): returning the model as it was. Try another loss, a lower learning_rate, "
                "or more (or more varied) training data.",
                stacklevel=3,
            )


def _validation_split(train_data: Any, eval_data: Any, validation: str, seed: int) -> tuple[Any, Any]:
    if eval_data is not None or validation == "none":
        return train_data, eval_data
    from finetuner.data import DataError, detect_kind, split_by_class, split_items

    kind = "class" if isinstance(train_data, tuple) else detect_kind(train_data)
    if kind == "instance":
        return train_data, None
    if validation == "auto":
        validation = "classes" if kind == "class" and _num_classes(train_data) >= MIN_CLASSES_FOR_CLASS_SPLIT else "items"
    try:
        if validation == "classes" and kind == "class":
            return split_by_class(train_data, _class_fraction(train_data), seed=seed)
        return split_items(train_data, 0.2, seed=seed)
    except DataError as exc:
        warnings.warn(f"no validation split ({exc}); training on all data without model selection", stacklevel=3)
        return train_data, None


def _class_fraction(data: Any) -> float:
    """30% of the classes, but at least 3 (two held-out classes make a noisy, too easy retrieval task)."""
    n = _num_classes(data)
    return max(VALIDATION_CLASS_FRACTION, MIN_VALIDATION_CLASSES / n) if n > MIN_VALIDATION_CLASSES else 0.5


def _num_classes(data: Any) -> int:
    from finetuner.data.splits import class_labels

    return len(set(class_labels(data).tolist()))


def _reject_unknown(unknown: dict[str, Any]) -> None:
    import inspect

    known = [p for p in inspect.signature(fit).parameters if p not in ("unknown",)]
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=2)
        hints.append(f"{name!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
    raise TypeError(f"fit() got unknown keyword argument(s) {', '.join(hints)}; see help(finetuner.fit).")
