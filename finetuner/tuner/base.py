"""The framework-neutral training loop: epochs, batches, evaluation, callbacks, checkpoints and resumption.

A backend (``finetuner/tuner/<framework>/tuner.py``) subclasses :class:`BaseTuner` and implements only the
abstract methods below (the *backend interface*): building the loss, the optimiser and schedule, one train
step, embedding a batch, weights and full training state, RNG state and file I/O. Everything else (the loop,
data loading, evaluation, callbacks, checkpoint layout, resumption) lives here once.
"""

from __future__ import annotations

import os
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from finetuner.safe_io import read_tree, write_tree
from finetuner.tuner.callbacks.base import Callback
from finetuner.tuner.callbacks.evaluation import EvaluationCallback
from finetuner.tuner.callbacks.training_checkpoint import CHECKPOINT_STEM
from finetuner.tuner.distributed import World, shard_loader
from finetuner.tuner.loading import BatchLoader, make_loader
from finetuner.tuner.losses import LOSS_NAMES
from finetuner.tuner.optim import check_optimizer, check_scheduler
from tailor_ir.files import atomic_write

CHECKPOINT_FORMAT = 2
LEGACY_CHECKPOINT_SUFFIXES = (".pt", ".pkl", ".pdckpt")  # format 1: pickles, never loaded
EVAL_DATA_OPTIONS = ("preprocess_fn", "collate_fn", "num_workers")

__all__ = ["BaseTuner", "BatchLoader", "TunerState", "atomic_write"]


@dataclass
class TunerState:
    """Where training is: ``epoch`` and ``batch_index`` are 0-based; ``records`` holds one dict per epoch."""

    epoch: int = 0
    batch_index: int = 0
    global_step: int = 0
    num_epochs: int = 0
    num_batches: int = 0
    last_loss: float | None = None
    epoch_loss_sum: float = 0.0
    epoch_batches: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    records: list[dict[str, float]] = field(default_factory=list)
    stop_training: bool = False

    @property
    def epoch_loss(self) -> float | None:
        """Mean train loss of the current epoch so far."""
        return self.epoch_loss_sum / self.epoch_batches if self.epoch_batches else None

    @property
    def history(self) -> dict[str, list[float]]:
        """Per-epoch values by name (``{'epoch': [...], 'loss': [...], 'mAP@R': [...]}``), Keras-style."""
        names = list(dict.fromkeys(name for record in self.records for name in record))
        return {name: [record.get(name, float("nan")) for record in self.records] for name in names}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TunerState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _epoch_iterator(loader: Any, epoch: int, start_batch: int) -> Iterator[tuple[int, Any]]:
    """``(batch_index, batch)`` of ``epoch`` from ``start_batch`` on; skips without collating when possible."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    if start_batch and hasattr(loader, "iter_from"):
        yield from enumerate(loader.iter_from(start_batch), start=start_batch)
        return
    for index, batch in enumerate(loader):
        if index >= start_batch:
            yield index, batch


class BaseTuner(ABC):
    """Fits ``model`` into an embedding model with ``loss``; the backend supplies the tensor work.

    Args:
        model: the framework's model; maps a batch's contents to (B, D) embeddings.
        loss: a loss name from :data:`finetuner.tuner.losses.LOSS_NAMES` or a backend loss object.
        optimizer: ``'adam' | 'adamw' | 'sgd' | 'rmsprop'`` or a callable ``(params, learning_rate) -> optimizer``.
        learning_rate: base learning rate.
        weight_decay: None uses the optimiser's default in :data:`finetuner.tuner.optim.OPTIMIZERS`.
        scheduler: ``'constant' | 'linear' | 'cosine'``, after ``warmup_steps`` linear warmup steps.
        max_grad_norm: clip the global gradient norm to this (None: no clipping).
        device: ``'auto'`` (CUDA when the framework sees a GPU, else CPU), ``'cpu'`` or ``'cuda'`` (``'cuda:1'``
            ...). Under a distributed launcher (``torchrun``) each worker takes its own GPU.
        mixed_precision: float16 autocast with loss scaling, on CUDA only.
        seed: seeds Python, numpy and the framework at the start of a fresh ``fit`` and the data order.
    """

    framework: ClassVar[str] = ""
    checkpoint_suffix: ClassVar[str] = ".npz"  # data-only (finetuner.safe_io), the same for every framework
    model_suffix: ClassVar[str] = ".npz"  # what save_model writes

    def __init__(
        self,
        model: Any,
        loss: str | Any = "TripletLoss",
        optimizer: str | Any = "adam",
        learning_rate: float = 1e-3,
        weight_decay: float | None = None,
        scheduler: str = "constant",
        warmup_steps: int = 0,
        max_grad_norm: float | None = None,
        device: str = "auto",
        mixed_precision: bool = False,
        seed: int = 42,
    ):
        check_optimizer(optimizer)
        check_scheduler(scheduler, warmup_steps)
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if max_grad_norm is not None and max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm}")
        self.model = model
        self.optimizer_name = optimizer
        self.learning_rate = float(learning_rate)
        self.weight_decay = weight_decay
        self.scheduler_name = scheduler
        self.warmup_steps = int(warmup_steps)
        self.max_grad_norm = max_grad_norm
        self.seed = int(seed)
        self.device = self._check_device(device)
        self.mixed_precision = self._check_mixed_precision(mixed_precision)
        self.loss = self._resolve_loss(loss)
        self.state = TunerState()
        self.callbacks: list[Callback] = []
        self.train_loader: Any = None
        self.world = World()
        self._position: tuple[int, int] = (0, 0)

    # ---- the backend interface -------------------------------------------------------------------------------
    @abstractmethod
    def _loss_class(self, name: str) -> type:
        """The backend's loss class called ``name`` (one of ``LOSS_NAMES``)."""

    @abstractmethod
    def _check_device(self, device: str) -> str:
        """Validate ``device`` (raise if e.g. CUDA is asked for but missing) and return its canonical name."""

    @abstractmethod
    def _check_mixed_precision(self, mixed_precision: bool) -> bool:
        """Whether mixed precision is used on ``self.device`` (warn and return False where unsupported)."""

    def _join_world(self) -> World:
        """The workers of this run (the framework's process group joined); one process unless overridden."""
        return World()

    @abstractmethod
    def _setup(self, total_steps: int) -> None:
        """Move model and loss to the device; build optimiser (model + loss parameters), schedule, scaler."""

    @abstractmethod
    def train_step(self, batch: Any) -> float:
        """Forward, loss, backward, clip, optimiser and scheduler step on one ``Batch``; return the loss."""

    @abstractmethod
    def _embed_batch(self, contents: Any) -> np.ndarray:
        """(B, D) float32 embeddings of one batch's contents, in eval mode without gradients."""

    @abstractmethod
    def get_weights(self) -> dict[str, np.ndarray]:
        """A copy of the model's weights (parameters and buffers) as numpy arrays."""

    @abstractmethod
    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load what :meth:`get_weights` returned into the model."""

    @abstractmethod
    def backend_state_dict(self) -> dict[str, Any]:
        """Model, optimiser, scheduler, loss parameters (and scaler) as numpy arrays, tensors and plain Python
        (what :func:`finetuner.safe_io.write_tree` stores)."""

    @abstractmethod
    def load_backend_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`backend_state_dict` returned (after :meth:`_setup`)."""

    @abstractmethod
    def get_rng_state(self) -> Any:
        """The framework's random state (CPU and device generators)."""

    @abstractmethod
    def set_rng_state(self, state: Any) -> None:
        """Restore what :meth:`get_rng_state` returned."""

    @abstractmethod
    def _seed_framework(self, seed: int) -> None:
        """Seed the framework's random generators."""

    @abstractmethod
    def save_model(self, path: str) -> None:
        """Write the model's weights to ``path`` in the framework's own format."""

    # ---- public API ------------------------------------------------------------------------------------------
    @property
    def history(self) -> dict[str, list[float]]:
        """Per-epoch loss and metrics of the last fit."""
        return self.state.history

    def fit(
        self,
        train_data: Any,
        eval_data: Any = None,
        epochs: int = 10,
        batch_size: int = 64,
        callbacks: Iterable[Callback] | None = None,
        resume_from: str | os.PathLike | None = None,
        eval_batch_size: int = 256,
        **loader_options: Any,
    ) -> TunerState:
        """Train for ``epochs`` over ``train_data``; evaluate on ``eval_data`` after each epoch.

        ``train_data``/``eval_data``: anything ``finetuner.data`` turns into batches (a DocumentArray,
        ``(X, y)`` arrays) or a ready loader. ``loader_options`` (e.g. ``num_items_per_class``, ``collate_fn``)
        go to the loader. ``resume_from``: a directory holding a :class:`TrainingCheckpoint` (or the file);
        training continues exactly where that checkpoint was written. Returns the final :class:`TunerState`.

        Under a distributed launcher ``batch_size`` is each worker's: the workers share global batches of
        ``batch_size`` x workers (see :mod:`finetuner.tuner.distributed`), in-batch losses see the whole global
        batch, and only rank 0 runs the callbacks that write files or print progress.
        """
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
        self.world = self._join_world()
        loader = make_loader(train_data, batch_size * self.world.size, shuffle=True, seed=self.seed, **loader_options)
        loader = shard_loader(loader, self.world)
        if len(loader) == 0:
            raise ValueError("train_data gives no batch: pass more data or a smaller batch_size")
        self.train_loader = loader
        eval_options = {k: v for k, v in loader_options.items() if k in EVAL_DATA_OPTIONS}
        extra = (
            [] if eval_data is None
            else [EvaluationCallback(eval_data, batch_size=eval_batch_size, data_options=eval_options)]
        )
        self.callbacks = sorted(
            [cb for cb in [*(callbacks or []), *extra] if self.world.is_main or not cb.main_rank_only],
            key=lambda cb: cb.order,
        )
        self.state = TunerState(num_epochs=epochs, num_batches=len(loader))
        self._position = (0, 0)
        self._setup(total_steps=epochs * len(loader))
        if resume_from is None:
            self._seed_all(self.seed)
        try:
            self._call("on_fit_begin")
            if resume_from is not None:
                self.load_checkpoint(resume_from)
            self._train()
            self._call("on_fit_end")
        except BaseException as exc:
            for callback in self.callbacks:
                callback.on_exception(self, exc)
            raise
        return self.state

    def embed(self, contents: Any, batch_size: int = 256) -> np.ndarray:
        """(N, D) float32 embeddings of an array (or dict of arrays) of inputs, in eval mode, in batches."""
        n = len(next(iter(contents.values()))) if isinstance(contents, dict) else len(contents)
        if n == 0:
            raise ValueError("nothing to embed: contents is empty")
        parts = []
        for start in range(0, n, batch_size):
            chunk = (
                {k: v[start : start + batch_size] for k, v in contents.items()}
                if isinstance(contents, dict)
                else contents[start : start + batch_size]
            )
            parts.append(self._embed_batch(chunk))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write everything needed to resume exactly (atomically: temp file + ``os.replace``)."""
        loader = self.train_loader
        payload = {
            "format": CHECKPOINT_FORMAT,
            "framework": self.framework,
            "position": list(self._position),
            "tuner": self.state.to_dict(),
            "backend": self.backend_state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "framework": self.get_rng_state(),
            },
            "loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
            "callbacks": {self._callback_key(i, cb): cb.state_dict() for i, cb in enumerate(self.callbacks)},
        }
        return atomic_write(path, lambda tmp: write_tree(payload, tmp))

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a :meth:`save_checkpoint` file (or the one in directory ``path``) into this fit."""
        path = Path(path)
        if path.is_dir():
            legacy = [path / f"{CHECKPOINT_STEM}{suffix}" for suffix in LEGACY_CHECKPOINT_SUFFIXES]
            path = path / f"{CHECKPOINT_STEM}{self.checkpoint_suffix}"
            if not path.is_file() and any(old.is_file() for old in legacy):
                raise ValueError(
                    f"{path.parent} holds a training checkpoint of an older finetuner, a pickle; it is not "
                    "loaded because unpickling can run code: start the fit again without resume_from"
                )
        if not path.is_file():
            raise FileNotFoundError(
                f"no training checkpoint at {path}: pass the directory TrainingCheckpoint wrote"
            )
        payload = read_tree(path)
        if not isinstance(payload, dict):
            raise ValueError(f"{path} is not a training checkpoint")
        if payload.get("format") != CHECKPOINT_FORMAT or payload.get("framework") != self.framework:
            raise ValueError(
                f"{path} is not a {self.framework} training checkpoint of format {CHECKPOINT_FORMAT}: "
                "resume with the tuner class that wrote it"
            )
        saved = TunerState.from_dict(payload["tuner"])
        if (saved.num_epochs, saved.num_batches) != (self.state.num_epochs, self.state.num_batches):
            raise ValueError(
                f"{path} was written by a run of {saved.num_epochs} epochs x {saved.num_batches} batches, but this "
                f"fit has {self.state.num_epochs} x {self.state.num_batches}: resume with the same data, "
                "batch_size and epochs"
            )
        self.load_backend_state_dict(payload["backend"])
        if payload["loader"] is not None and hasattr(self.train_loader, "load_state_dict"):
            self.train_loader.load_state_dict(payload["loader"])
        for i, callback in enumerate(self.callbacks):
            state = payload["callbacks"].get(self._callback_key(i, callback))
            if state is not None:
                callback.load_state_dict(state)
        random.setstate(payload["rng"]["python"])
        np.random.set_state(payload["rng"]["numpy"])
        self.set_rng_state(payload["rng"]["framework"])
        self.state = saved
        self._position = tuple(payload["position"])

    # ---- the loop --------------------------------------------------------------------------------------------
    def _train(self) -> None:
        state = self.state
        start_epoch, start_batch = self._position
        for epoch in range(start_epoch, state.num_epochs):
            state.epoch = epoch
            if start_batch == 0:
                state.epoch_loss_sum, state.epoch_batches = 0.0, 0
            self._call("on_epoch_begin")
            for batch_index, batch in _epoch_iterator(self.train_loader, epoch, start_batch):
                state.batch_index = batch_index
                self._call("on_train_batch_begin")
                loss = float(self.train_step(batch))
                if not np.isfinite(loss):
                    raise FloatingPointError(
                        f"the loss became {loss} at epoch {epoch}, batch {batch_index}: lower learning_rate, "
                        "set max_grad_norm, or check the inputs for NaN"
                    )
                state.last_loss = loss
                state.epoch_loss_sum += loss
                state.epoch_batches += 1
                state.global_step += 1
                self._position = (epoch, batch_index + 1)
                self._call("on_train_batch_end")
            start_batch = 0
            self._validate()
            state.records.append({"epoch": epoch + 1, "loss": state.epoch_loss, **state.metrics})
            self._position = (epoch + 1, 0)
            self._call("on_epoch_end")
            if state.stop_training:
                break

    def _validate(self) -> None:
        evaluators = [cb for cb in self.callbacks if isinstance(cb, EvaluationCallback)]
        self.state.metrics = {}
        if not evaluators:
            return
        self._call("on_val_begin")
        for evaluator in evaluators:
            self.state.metrics.update(evaluator.evaluate(self))
        self._call("on_val_end")

    def _call(self, hook: str) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self)

    def _seed_all(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        self._seed_framework(seed)

    def _resolve_loss(self, loss: str | Any) -> Any:
        if isinstance(loss, str):
            if loss not in LOSS_NAMES:
                raise ValueError(f"loss must be one of {LOSS_NAMES} or a loss object, got {loss!r}")
            if loss in ("ArcFaceLoss", "CosFaceLoss"):
                raise ValueError(
                    f"{loss} needs num_classes and embedding_dim: pass loss={loss}(num_classes=..., embedding_dim=...)"
                )
            return self._loss_class(loss)()
        if not callable(loss):
            raise TypeError(
                f"loss must be a loss name or a callable (embeddings, labels) -> scalar, got {loss!r}"
            )
        return loss

    @staticmethod
    def _callback_key(index: int, callback: Callback) -> str:
        return f"{index}:{type(callback).__name__}"
