"""``finetuner.fit`` and ``finetuner.embed``: the one entry point, with defaults chosen for you.

``fit(model, train_data)`` is enough. A general model (a classifier, a language model) is first tailored into
an embedding model when any tailor argument is given (``output_dim``, ``layer_name``, ``freeze``, ``pooling``,
``normalize``); the model's framework picks the tuner backend; the tuned model comes back in that framework.

Defaults (evidence: ``benchmarks/fit_quality.py`` on digits, ``benchmarks/fit_text.py`` on WordNet pairs):

- loss: ``MultipleNegativesRankingLoss`` (scale 20, cosine, in-batch negatives) for pair/triplet and session
  data; ``TripletLoss`` (cosine, margin 0.2, all positives x semihard negatives) for class and unlabelled data;
- optimisation by what the model is (:mod:`finetuner.tuner.defaults`): a pretrained encoder (>= 1M trainable
  parameters) gets AdamW 5e-5, 10% linear warm-up then linear decay, one epoch (at least 100 steps); a small
  network from random weights gets Adam 3e-3 with cosine decay and up to 20 epochs (at least 2,000 steps);
- batches of 64: class data as ``64 / m`` classes x ``m`` items, ``m`` the smallest divisor of 64 from 4 up
  that the number of classes allows (:func:`finetuner.data.default_m`: 4 for 16+ classes, 8 for 8-15);
  pair data as 64 examples with no text twice;
- validation (``validation='auto'``): 20% of the items of every class (of the examples for pair and session
  data, at most 1,000) are held out; the metric is measured before training and after every epoch (all planned
  epochs run unless ``patience`` is given), and the best epoch is returned if it beats the start; otherwise the
  given model is returned with a warning. A summary (start, returned epoch, why) is printed and kept
  (:func:`summary`).

For search among classes never trained on pass ``validation='classes'`` (30% of the classes held out). It is
not the default: on digits (``benchmarks/results/fit_quality.md``) selecting on held-out classes returns the
untrained model on the closed split too (on 9 of 10 seeds; mAP@R 0.439 instead of 0.943) to protect the open
split (0.540 instead of 0.341); held-out items of the user's own classes are the data of the user's kind, and the
data cannot say that the search will be among other classes.
"""

from __future__ import annotations

import difflib
import numbers
import os
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tailor_ir import compiler

__all__ = ["FitSummary", "embed", "fit", "history", "summary"]

TAILOR_ARGS = ("output_dim", "layer_name", "freeze", "pooling", "normalize")
VALIDATION_MODES = ("auto", "classes", "items", "none")
DEFAULT_MONITOR = "mAP@R"
MAX_OUTPUT_DIM = 65_536
VALIDATION_CLASS_FRACTION = 0.3
MIN_VALIDATION_CLASSES = 3
VALIDATION_ITEM_FRACTION = 0.2
MAX_VALIDATION_EXAMPLES = 1000
PAIR_LOSS = "MultipleNegativesRankingLoss"
CLASS_LOSS = "TripletLoss"

_HISTORIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SUMMARIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TOKENIZERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class FitSummary:
    """What :func:`fit` did: the validation metric at the start and at the returned epoch, and why."""

    monitor: str
    recipe: str
    loss: str
    epochs_run: int
    start: float | None = None
    best: float | None = None
    best_epoch: int | None = None
    returned: str = "tuned"
    reason: str = ""

    def __str__(self) -> str:
        lines = [f"finetuner.fit: {self.loss}, {self.recipe}; {self.epochs_run} epoch(s) run."]
        if self.start is not None and self.best is not None:
            lines.append(
                f"  {self.monitor} on the validation data: {self.start:.4f} at the start, {self.best:.4f} at "
                f"epoch {self.best_epoch} (the best epoch)."
            )
        lines.append(f"  Returned: the {'model as it was given' if self.returned == 'start' else 'tuned model'}"
                     f" ({self.reason}).")
        return "\n".join(lines)


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
    loss: str | Any | None = None,
    optimizer: str | Callable[..., Any] | None = None,
    learning_rate: float | None = None,
    weight_decay: float | None = None,
    scheduler: str | None = None,
    warmup_steps: int | None = None,
    max_grad_norm: float | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    num_items_per_class: int | None = None,
    preprocess_fn: Callable[[Any], Any] | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    tokenizer: Any = None,
    augment_fn: Callable[..., Any] | None = None,
    num_workers: int = 0,
    device: str = "auto",
    mixed_precision: bool = False,
    seed: int = 42,
    # validation and model selection
    validation: str = "auto",
    monitor: str = DEFAULT_MONITOR,
    patience: int | None = None,
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
            whose ``.matches`` carry +1/-1 labels), pair data (Documents whose untagged ``.matches`` are their
            positives; a list of ``(anchor, positive[, negative])`` tuples; columns
            ``{'anchor': [...], 'positive': [...][, 'negative': [...]]}`` or a Hugging Face dataset with them)
            or unlabelled data (self-supervised); or ``(X, y)`` arrays (class data). With ``interactive=True``:
            the unlabelled pool to label in the browser.
        eval_data: labelled data to evaluate on after every epoch; the best epoch's weights are kept.
        output_dim, layer_name, freeze, pooling, normalize, input_shape, input_dtype, sample_input: see
            :func:`finetuner.tailor.to_embedding` (defaults there: ``output_dim=128``, ``pooling='auto'``,
            ``normalize=True``, ``freeze=False``).
        loss: ``SiameseLoss`` | ``TripletLoss`` | ``MultipleNegativesRankingLoss`` | ``NTXentLoss`` |
            ``ArcFaceLoss`` | ``CosFaceLoss``, or a loss object of the backend. Default: MNRL for pair and
            session data, TripletLoss otherwise.
        optimizer, learning_rate, weight_decay, scheduler, warmup_steps, max_grad_norm: the optimisation
            (``adam|adamw|sgd|rmsprop``; ``constant|linear|cosine``). Left as None they come from the recipe
            for the model (:mod:`finetuner.tuner.defaults`): a pretrained encoder (>= 1M trainable parameters):
            AdamW 5e-5, weight decay 0.01, linear schedule after a warm-up of 10% of the steps; a small net from
            random weights: Adam 3e-3, cosine schedule, no warm-up.
        epochs, batch_size, num_items_per_class: the schedule (default: pretrained, one epoch but at least 100
            steps and at most 10 epochs; from scratch, at least 2,000 steps and at most 20 epochs; with
            ``interactive``, the epochs per fit in the Labeler), the batch size (examples for pair data) and the
            m-per-class sampler (:func:`finetuner.data.default_m`).
        preprocess_fn, collate_fn, augment_fn, num_workers: data hooks.
        tokenizer: for text models: a Hugging Face tokenizer used to tokenise strings for training,
            evaluation, :func:`embed` on the returned model and :func:`finetuner.export` of it (it replaces
            ``collate_fn=finetuner.data.tokenizer_collate(tokenizer)``).
        device, mixed_precision, seed: where and how reproducibly to train.
        validation: without ``eval_data``, what to hold out to select the best epoch. ``'auto'`` and
            ``'items'``: 20% of the items of every class (of the queries/examples for session and pair data, at
            most 1,000): the model is judged on new items of the user's kind. ``'classes'``: 30% of the classes,
            at least 3, for search among classes never trained on. ``'none'``: no selection.
        monitor, patience, keep_best: the metric that selects the best epoch, how many epochs without
            improvement to wait before stopping, and whether to return the best epoch's weights. The model as
            given is measured too and returned (with a warning) when no epoch beats it. ``patience=None`` (the
            default) runs every planned epoch: the recipe's schedule decays the learning rate over all of them,
            and stopping part-way leaves it high (on digits' closed split, 10 seeds: patience 4 stopped 6 of the
            10 runs after 9 to 18 of their 20 epochs, for mAP@R 0.938 against 0.943 when every epoch runs, lower on
            3 seeds and higher on none; benchmarks/results/fit_quality.md). Pass an int to stop early.
        callbacks: more ``finetuner.tuner.callbacks`` objects.
        checkpoint_dir: write a resumable ``TrainingCheckpoint`` there every epoch.
        resume_from: a checkpoint folder to continue a killed run exactly where it stopped.
        logdir: write ``metrics.csv``/``metrics.json`` and ``training.png`` (loss and metrics per epoch) there.
        progress: show a progress bar and print the final summary.
        interactive: open the Labeler in the browser on ``train_data`` (an unlabelled pool) instead; the
            model learns from the labels as they arrive (see :func:`finetuner.labeler.run`). ``preprocess_fn``,
            ``collate_fn`` and ``tokenizer`` make its input as here; a text model's tokenizer is saved with it.
        labeler_options: more arguments of :func:`finetuner.labeler.run` (``workdir``, ``port``,
            ``open_browser``, ``strategy``, ``top_k``, ...).
    Returns:
        the tuned model; :func:`history` gives its per-epoch losses and metrics, :func:`summary` what happened.
    """
    if unknown:
        _reject_unknown(unknown)
    framework = compiler.require_framework(model)
    _check_arguments(train_data, learning_rate, output_dim, input_shape)
    tailor_options = {
        name: value
        for name, value in (("output_dim", output_dim), ("layer_name", layer_name), ("freeze", freeze),
                            ("pooling", pooling), ("normalize", normalize))
        if value is not None
    }
    if tailor_options:
        from finetuner import tailor

        try:
            model = tailor.to_embedding(
                model, input_shape=input_shape, input_dtype=input_dtype, sample_input=sample_input,
                **tailor_options,
            )
        except Exception as exc:
            from tailor_ir.errors import ExportError, TailorError

            if input_shape is None or (isinstance(exc, TailorError) and not isinstance(exc, ExportError)):
                raise  # the Tailor's own errors already name the layer or op; only a failed trace may be the shape
            raise ValueError(
                f"tailoring the model with input_shape={tuple(input_shape)} failed ({type(exc).__name__}: "
                f"{_first_line(exc)}): input_shape must be the shape of one input the model takes, without the "
                "batch axis (e.g. (64,) for 64 features, (3, 224, 224) for an image)"
            ) from exc
    if interactive:
        from finetuner import labeler

        options = {"open_browser": True, **(labeler_options or {})}
        data_options = {"preprocess_fn": preprocess_fn, "collate_fn": collate_fn, "tokenizer": tokenizer}
        return labeler.run(model, train_data, epochs=epochs, **data_options, **options)
    if labeler_options:
        raise TypeError("labeler_options apply only with interactive=True")
    if validation not in VALIDATION_MODES:
        raise ValueError(f"validation={validation!r} is not one of {', '.join(VALIDATION_MODES)}.")
    if tokenizer is not None:
        if collate_fn is not None:
            raise TypeError("pass either tokenizer or collate_fn, not both (tokenizer makes the collate_fn)")
        from finetuner.data import tokenizer_collate

        collate_fn = tokenizer_collate(tokenizer, input_names=_input_names(model), chunked=True)
    from finetuner import data as fdata

    train_data = _as_training_data(train_data, preprocess_fn, augment_fn)
    train_data, eval_data = _validation_split(train_data, eval_data, validation, seed)

    from finetuner.tuner import defaults, tuner_class
    from finetuner.tuner.callbacks import (
        EarlyStopping,
        MetricsLogger,
        ProgressBar,
        TrainingCheckpoint,
        TrainingPlot,
    )

    data_options = {"preprocess_fn": preprocess_fn, "collate_fn": collate_fn, "augment_fn": augment_fn}
    data_options = {k: v for k, v in data_options.items() if v is not None}
    loader_options = {**data_options, "num_workers": num_workers}
    if num_items_per_class is not None:
        loader_options["num_items_per_class"] = num_items_per_class
    loader = fdata.build_loader(train_data, batch_size=batch_size, shuffle=True, seed=seed, **loader_options)
    if len(loader) == 0:
        raise ValueError("train_data gives no batch: pass more data or a smaller batch_size")
    recipe = defaults.resolve(
        model, len(loader), optimizer=optimizer, learning_rate=learning_rate, weight_decay=weight_decay,
        scheduler=scheduler, warmup_steps=warmup_steps, epochs=epochs,
    )
    if loss is None:
        loss = PAIR_LOSS if loader.dataset.kind == "session" else CLASS_LOSS
    tuner = tuner_class(framework)(
        model, loss=loss, optimizer=recipe.optimizer, learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay, scheduler=recipe.scheduler, warmup_steps=recipe.warmup_steps,
        max_grad_norm=max_grad_norm, device=device, mixed_precision=mixed_precision, seed=seed,
    )
    _check_model_takes(tuner, loader.dataset, collate_fn)
    eval_options = {k: v for k, v in data_options.items() if k != "augment_fn"}
    eval_options["num_workers"] = num_workers

    extra: list[Any] = []
    selection = None
    if eval_data is not None:
        selection = _StartingPoint(eval_data, monitor, eval_options) if keep_best else None
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
        loader, eval_data=eval_data, epochs=recipe.epochs, batch_size=batch_size,
        callbacks=[*(callbacks or []), *extra], resume_from=resume_from, **eval_options,
    )
    result = FitSummary(
        monitor=monitor, recipe=recipe.describe(), loss=type(tuner.loss).__name__, epochs_run=len(state.records)
    )
    if selection is not None:
        selection.keep_if_better(tuner, state, result)
    else:
        result.reason = "no validation data, so the last epoch" if eval_data is None else "keep_best=False"
    _HISTORIES[tuner.model] = state.history
    _SUMMARIES[tuner.model] = result
    if tokenizer is not None:
        remember_tokenizer(tuner.model, tokenizer)
    if progress:
        print(result, file=sys.stderr)
    return tuner.model


def history(model: Any) -> dict[str, list[float]]:
    """Per-epoch values (``epoch``, ``loss``, metrics) of the last :func:`fit` that returned ``model``."""
    try:
        return dict(_HISTORIES[model])
    except (KeyError, TypeError):
        raise KeyError("this model did not come from finetuner.fit in this process") from None


def summary(model: Any) -> FitSummary:
    """What the last :func:`fit` that returned ``model`` did (start and best metric, epoch returned, why)."""
    try:
        return _SUMMARIES[model]
    except (KeyError, TypeError):
        raise KeyError("this model did not come from finetuner.fit in this process") from None


def remember_tokenizer(model: Any, tokenizer: Any) -> None:
    """Record ``tokenizer`` as the one ``model`` was trained with (what :func:`tokenizer_of` then gives, and
    ``finetuner.export``/``embed`` use): done by ``fit`` and by the Labeler for the models they return."""
    try:
        _TOKENIZERS[model] = tokenizer
    except TypeError:
        pass  # a model that cannot be weakly referenced: export/embed need tokenizer= then


def tokenizer_of(model: Any) -> Any:
    """The ``tokenizer`` given to the :func:`fit` that returned ``model``, or None."""
    try:
        return _TOKENIZERS.get(model)
    except TypeError:
        return None


def embed(docs: Any, model: Any, batch_size: int = 256, preprocess_fn: Callable | None = None,
          collate_fn: Callable | None = None, tokenizer: Any = None) -> Any:
    """Fill ``doc.embedding`` of every Document in ``docs`` with ``model`` (in eval mode); return ``docs``.

    ``docs`` may also be a numpy array (or dict of arrays) of inputs, or a list of strings: then the (N, D)
    embeddings are returned. Text is tokenised with ``tokenizer``, by default the one given to the
    ``fit(..., tokenizer=...)`` that returned ``model``.
    """
    from finetuner.tuner import tuner_class

    tuner = tuner_class(compiler.require_framework(model))(model)
    if isinstance(docs, (np.ndarray, dict)):
        return tuner.embed(docs, batch_size=batch_size)
    from finetuner.data import ClassDataset, as_dataset, in_order, tokenizer_collate

    tokenizer = tokenizer if tokenizer is not None else tokenizer_of(model)
    if collate_fn is None and tokenizer is not None:
        collate_fn = tokenizer_collate(tokenizer, input_names=_input_names(model), chunked=True)
    dataset = as_dataset(docs, preprocess_fn=preprocess_fn)
    if dataset.kind == "instance":  # one row per item as it is, not two augmented training views
        dataset = ClassDataset(dataset.items, [0] * len(dataset), preprocess_fn)
    chunks = [tuner._embed_batch(batch.contents) for batch in in_order(dataset, batch_size, collate_fn)]
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
    if isinstance(docs, list) and all(isinstance(d, str) for d in docs):
        return embeddings
    for doc, embedding in zip(dataset.items, embeddings):
        doc.embedding = embedding
    return docs


class _StartingPoint:
    """Measures the model as given on the validation data, so that fit never returns something worse."""

    def __init__(self, eval_data: Any, monitor: str, data_options: dict[str, Any]) -> None:
        from finetuner.tuner.callbacks import EvaluationCallback

        options = {k: v for k, v in data_options.items() if k in ("preprocess_fn", "collate_fn", "num_workers")}
        self.evaluation = EvaluationCallback(eval_data, data_options=options)
        self.monitor = monitor
        self.value: float | None = None
        self.weights: dict[str, np.ndarray] | None = None

    def measure(self, tuner: Any) -> None:
        metrics = self.evaluation.evaluate(tuner)
        if self.monitor not in metrics:
            raise ValueError(
                f"monitor={self.monitor!r} is not a metric of the validation data; it has {sorted(metrics)}"
            )
        self.value = metrics[self.monitor]
        self.weights = tuner.get_weights()

    def keep_if_better(self, tuner: Any, state: Any, result: FitSummary) -> None:
        """Keep the tuned weights if the best epoch beats the start (strictly); else restore the start, loudly."""
        from finetuner.tuner.callbacks._monitor import resolve_mode

        maximize = resolve_mode(self.monitor, "auto") == "max"
        scored = [(r[self.monitor], int(r["epoch"])) for r in state.records if self.monitor in r]
        result.start = self.value
        if self.value is None or not scored:
            result.reason = "no epoch was evaluated"
            return
        best, epoch = (max if maximize else min)(scored, key=lambda pair: pair[0])
        result.best, result.best_epoch = best, epoch
        better = best > self.value if maximize else best < self.value
        if better:
            result.reason = f"epoch {epoch} had the best {self.monitor} on the validation data, above the start"
            return
        if self.weights is not None:
            tuner.set_weights(self.weights)
        result.returned = "start"
        result.reason = f"no epoch beat the start on {self.monitor}"
        warnings.warn(
            f"fine-tuning did not improve {self.monitor} on the validation data ({self.value:.4f} before, "
            f"{best:.4f} at best, epoch {epoch}): RETURNING THE MODEL AS IT WAS GIVEN. Try a lower learning_rate, "
            "another loss, or more (or more varied) training data; pass validation='none' to keep the last "
            "epoch anyway.",
            stacklevel=3,
        )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _describe(contents: Any) -> str:
    if isinstance(contents, dict):
        return ", ".join(f"{k}: {_describe(v)}" for k, v in contents.items())
    if isinstance(contents, list) and contents and isinstance(contents[0], str):
        return f"{len(contents)} strings (text: pass tokenizer=... to tokenise it)"
    array = np.asarray(contents)
    return f"shape {array.shape} {array.dtype}"


def _check_model_takes(tuner: Any, dataset: Any, collate_fn: Callable | None) -> None:
    """Embed two items before training, so that data the model cannot take fails now, naming both shapes."""
    from finetuner.data import in_order

    batch = next(iter(in_order(dataset, 2, collate_fn)))
    try:
        out = tuner._embed_batch(batch.contents)
    except Exception as exc:
        raise ValueError(
            f"the model cannot embed the training data: its first items collate to {_describe(batch.contents)} "
            f"({type(exc).__name__}: {_first_line(exc)}). Give data of the shape the model takes, or pass "
            "preprocess_fn / collate_fn / tokenizer to convert it."
        ) from exc
    if np.ndim(out) != 2:
        raise ValueError(
            f"the model gives outputs of shape {np.shape(out)} for a batch of 2, not (2, D) embeddings: tailor it "
            "with output_dim/pooling (finetuner.tailor.to_embedding) first"
        )


def _input_names(model: Any) -> list[str] | None:
    """The named inputs of a tailored model (None when the model does not say)."""
    names = getattr(model, "input_names", None)
    return list(names) if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names) else None


def _check_arguments(train_data: Any, learning_rate: Any, output_dim: Any, input_shape: Any) -> None:
    """Errors that name the culprit for arguments that would otherwise fail deep inside training."""
    if train_data is None:
        raise TypeError(
            "train_data is None: pass a DocumentArray, (X, y) arrays, pair examples [(anchor, positive), ...] "
            "or, with interactive=True, the pool to label"
        )
    if learning_rate is not None and (
        isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real)
        or not np.isfinite(learning_rate) or learning_rate <= 0
    ):
        raise ValueError(f"learning_rate must be a positive number (e.g. 1e-3) or None, got {learning_rate!r}")
    if output_dim is not None and (
        isinstance(output_dim, bool) or not isinstance(output_dim, numbers.Integral)
        or not 1 <= output_dim <= MAX_OUTPUT_DIM
    ):
        raise ValueError(
            f"output_dim must be an integer between 1 and {MAX_OUTPUT_DIM:,} (an embedding size such as 128), "
            f"got {output_dim!r}"
        )
    if input_shape is not None and (
        isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence)
        or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in input_shape)
    ):
        raise ValueError(
            f"input_shape must be the shape of one input without the batch axis, positive integers such as "
            f"(3, 224, 224), got {input_shape!r}"
        )


def _as_training_data(train_data: Any, preprocess_fn: Any, augment_fn: Any) -> Any:
    """Pair data becomes a :class:`~finetuner.data.PairDataset` once (detection, keys); other data as given."""
    from finetuner.data import as_dataset, is_pair_data

    if isinstance(train_data, tuple) and len(train_data) == 2:
        x, y = train_data
        n_x, n_y = (len(x) if hasattr(x, "__len__") else None), np.shape(y)
        if n_x is not None and (len(n_y) != 1 or n_y[0] != n_x):
            from finetuner.data import DataError

            raise DataError(f"(X, y): y has shape {n_y} but X has {n_x} rows: pass one label per row of X")
    if is_pair_data(train_data):
        return as_dataset(train_data, preprocess_fn=preprocess_fn, augment_fn=augment_fn)
    return train_data


def _validation_split(train_data: Any, eval_data: Any, validation: str, seed: int) -> tuple[Any, Any]:
    if eval_data is not None or validation == "none":
        return train_data, eval_data
    from finetuner.data import DataError, PairDataset, detect_kind, split_by_class, split_items

    if isinstance(train_data, PairDataset):
        kind = "session"
    elif isinstance(train_data, tuple):
        kind = "class"
    else:
        kind = detect_kind(train_data)
    if kind == "instance":
        return train_data, None
    if validation == "auto":
        validation = "items"
    try:
        if validation == "classes" and kind == "class":
            return split_by_class(train_data, _class_fraction(train_data), seed=seed)
        n = len(train_data.sessions) if isinstance(train_data, PairDataset) else len(train_data)
        fraction = VALIDATION_ITEM_FRACTION
        if kind == "session" and n * fraction > MAX_VALIDATION_EXAMPLES:
            fraction = MAX_VALIDATION_EXAMPLES / n
        return split_items(train_data, fraction, seed=seed)
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
