"""The Keras (TensorFlow) backend of :class:`~finetuner.tuner.base.BaseTuner`."""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np

from finetuner.data.content import Chunks
from finetuner.safe_io import write_tree
from finetuner.tuner import chunked, optim
from finetuner.tuner.base import BaseTuner
from finetuner.tuner.distributed import World
from finetuner.tuner.keras import distributed
from finetuner.tuner.keras import losses as keras_losses
from tailor_ir.imports import import_keras, import_tensorflow

tf = import_tensorflow()
keras = import_keras()

__all__ = ["KerasTuner"]

_DEVICE = re.compile(r"(cpu|cuda|gpu)(?::(\d+))?")


def _to_tensor(value: Any) -> Any:
    """numpy/lists -> tensors (floating arrays as float32); dicts, tuples and lists recursively."""
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value
    if isinstance(value, dict):
        return {k: _to_tensor(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)) and value and not np.isscalar(value[0]):
        return [_to_tensor(v) for v in value]
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32, copy=False)
    return tf.convert_to_tensor(array)


def _backend_inputs(contents: Any) -> Any:
    """A batch's contents as tensors (a ``chunked.ChunkedInput`` for length-chunked text batches)."""
    return chunked.to_backend(contents, _to_tensor, lambda restore: tf.constant(restore, dtype=tf.int64))


def _first_output(output: Any) -> Any:
    if isinstance(output, dict):
        return next(iter(output.values()))
    return output[0] if isinstance(output, (tuple, list)) else output


def _unique_keys(variables: list[Any]) -> list[str]:
    keys: list[str] = []
    seen: set[str] = set()
    for var in variables:
        base = str(getattr(var, "path", None) or var.name)
        key, k = base, 1
        while key in seen:
            key, k = f"{base}_{k}", k + 1
        seen.add(key)
        keys.append(key)
    return keys


class KerasTuner(BaseTuner):
    """Fine-tunes a ``keras.Model`` that maps a batch's contents to (B, D) embeddings.

    Contents are passed to the model as they come (an array, or a dict of arrays keyed by input name; a
    tuple/list becomes the list of inputs). The step runs under ``tf.GradientTape``, compiled with
    ``tf.function`` when the loss is one of :mod:`finetuner.tuner.keras.losses` (a custom loss callable runs
    eagerly, so it may use numpy). Optimisers follow the PyTorch defaults (Adam/AdamW ``epsilon=1e-8``, RMSprop
    ``rho=0.99``, SGD ``momentum=0.9``); ``weight_decay`` is decoupled for ``adamw`` and an L2 term added to
    the (clipped) gradient for the others, as in PyTorch. Checkpoints and ``save_model`` files are data-only
    ``.npz`` files of numpy arrays (:mod:`finetuner.safe_io`). See :class:`~finetuner.tuner.base.BaseTuner` for the arguments; ``device`` is
    ``'cpu'`` or ``'gpu'``/``'cuda'`` (``':N'``) when TensorFlow sees a GPU.
    """

    framework = "keras"
    _strategy: Any = None  # the tf.distribute strategy the model was built under (see _join_world)

    # ---- construction ----------------------------------------------------------------------------------------
    def _loss_class(self, name: str) -> type:
        return getattr(keras_losses, name)

    def _check_device(self, device: str) -> str:
        if device == "auto":
            device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
        match = _DEVICE.fullmatch(str(device).strip().lower())
        if match is None:
            raise ValueError(f"device must be 'cpu' or 'gpu'/'cuda' (or 'gpu:N'), got {device!r}")
        if match.group(1) == "cpu":
            return "cpu"
        index = int(match.group(2) or 0)
        gpus = tf.config.list_physical_devices("GPU")
        if index >= len(gpus):
            raise RuntimeError(
                f"device={device!r} but TensorFlow sees {len(gpus)} GPU(s): use device='cpu'"
            )
        return f"gpu:{index}"

    def _check_mixed_precision(self, mixed_precision: bool) -> bool:
        if mixed_precision and not self.device.startswith("gpu"):
            warnings.warn(
                "mixed_precision=True needs a GPU device; training in float32 on CPU", stacklevel=3
            )
            return False
        return bool(mixed_precision)

    @property
    def _tf_device(self) -> str:
        return "/CPU:0" if self.device == "cpu" else f"/GPU:{self.device.split(':')[1]}"

    def _loss_variables(self) -> list[Any]:
        return list(self.loss.trainable_variables) if isinstance(self.loss, keras.layers.Layer) else []

    def _make_optimizer(self, params: list[Any]) -> Any:
        if callable(self.optimizer_name):
            return self.optimizer_name(params, self.learning_rate)
        options = dict(optim.OPTIMIZERS[self.optimizer_name])
        decay = options.pop("weight_decay") if self.weight_decay is None else self.weight_decay
        self._l2 = 0.0
        lr = self.learning_rate
        if self.optimizer_name == "adamw":
            return keras.optimizers.AdamW(learning_rate=lr, weight_decay=decay, epsilon=1e-8)
        self._l2 = float(decay or 0.0)  # PyTorch's coupled weight decay: grad += wd * param
        if self.optimizer_name == "adam":
            return keras.optimizers.Adam(learning_rate=lr, epsilon=1e-8)
        if self.optimizer_name == "sgd":
            return keras.optimizers.SGD(learning_rate=lr, momentum=options["momentum"])
        return keras.optimizers.RMSprop(learning_rate=lr, rho=0.99, epsilon=1e-8)

    def _apply_mixed_policy(self) -> None:
        from tailor_ir.backends.keras import OnnxGraphLayer

        graph_layers = []
        for layer in self.model._flatten_layers(include_self=True):
            if isinstance(layer, OnnxGraphLayer):
                graph_layers.append(layer.name)
            elif not isinstance(layer, keras.Model):
                layer.dtype_policy = keras.DTypePolicy("mixed_float16")
        if graph_layers:
            warnings.warn(
                f"mixed precision does not apply to the rehydrated ONNX graph layer(s) {graph_layers}: they "
                "compute in float32", stacklevel=4
            )

    def _join_world(self) -> World:
        self._strategy = distributed.strategy_of(self.model)
        return distributed.world_of(self._strategy)

    def _setup(self, total_steps: int) -> None:
        if self._strategy is not None:
            if self.mixed_precision:
                raise ValueError("mixed_precision=True is not supported with a tf.distribute strategy yet")
            with self._strategy.scope():
                return self._setup_here(total_steps)
        return self._setup_here(total_steps)

    def _setup_here(self, total_steps: int) -> None:
        self._l2 = 0.0
        self._total_steps = int(total_steps)
        self._sched_step = 0
        params = list(self.model.trainable_variables) + self._loss_variables()
        if not params:
            raise ValueError("the model has no trainable parameter: unfreeze some layers before fitting")
        with tf.device(self._tf_device):
            optimizer = self._make_optimizer(params)
            if self.mixed_precision:
                self._apply_mixed_policy()
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(params)
        self.optimizer = optimizer
        self._params = params
        self._set_learning_rate()
        self._compiled = isinstance(self.loss, keras_losses.KerasLoss)
        self._step_fn = tf.function(self._step, reduce_retracing=True) if self._compiled else self._step
        self._replica_fn = (
            tf.function(self._replica_step, reduce_retracing=True) if self._compiled else self._replica_step
        )

    def _set_learning_rate(self) -> None:
        factor = optim.lr_multiplier(self.scheduler_name, self._sched_step, self.warmup_steps, self._total_steps)
        try:
            self.optimizer.learning_rate = self.learning_rate * factor
        except (TypeError, ValueError, AttributeError):  # a user optimiser with its own schedule
            pass

    @property
    def current_learning_rate(self) -> float:
        """The learning rate the next step uses."""
        return float(np.asarray(self.optimizer.learning_rate))

    # ---- steps -----------------------------------------------------------------------------------------------
    def _forward(self, inputs: Any, training: bool) -> Any:
        forward = lambda x: _first_output(self.model(x, training=training))  # noqa: E731
        return chunked.run(inputs, forward, lambda parts: tf.concat(parts, axis=0), tf.gather)

    def _step(self, inputs: Any, labels: Any) -> Any:
        params = self._params
        with tf.GradientTape() as tape:
            embeddings = tf.cast(self._forward(inputs, training=True), tf.float32)
            loss = tf.cast(self.loss(embeddings, labels), tf.float32)
            scaled = self.optimizer.scale_loss(loss) if self.mixed_precision else loss
        grads = tape.gradient(scaled, params)
        pairs = [(g, v) for g, v in zip(grads, params) if g is not None]
        grads, variables = [g for g, _ in pairs], [v for _, v in pairs]
        if self.max_grad_norm is not None and not self.mixed_precision:
            grads, _ = tf.clip_by_global_norm(grads, self.max_grad_norm)
        if self._l2:
            grads = [g + self._l2 * tf.convert_to_tensor(v) for g, v in zip(grads, variables)]
        self.optimizer.apply(grads, variables)
        return loss

    def _replica_step(self, inputs: Any, labels: Any) -> Any:
        """One replica's share of a step under a ``tf.distribute`` strategy: the loss of the gathered global
        batch; the summed gradient is clipped and decayed whole, then handed to the optimiser (which sums it
        over the replicas again) divided by the number of replicas."""
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        params = self._params
        with tf.GradientTape() as tape:
            embeddings = tf.cast(self._forward(inputs, training=True), tf.float32)
            everyone = distributed.gather_rows(context, embeddings)
            loss = tf.cast(self.loss(everyone, distributed.gather_rows(context, labels)), tf.float32)
            share = loss / replicas  # the all-gather's gradient comes back to every replica's copy
        grads = tape.gradient(share, params)
        pairs = [(g, v) for g, v in zip(grads, params) if g is not None]
        grads = context.all_reduce(tf.distribute.ReduceOp.SUM, [g for g, _ in pairs])
        variables = [v for _, v in pairs]
        if self.max_grad_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.max_grad_norm)
        if self._l2:
            grads = [g + self._l2 * tf.convert_to_tensor(v) for g, v in zip(grads, variables)]
        self.optimizer.apply([g / replicas for g in grads], variables)
        return loss

    def train_step(self, batch: Any) -> float:
        labels = np.asarray(batch.labels)
        if isinstance(self.loss, keras_losses.KerasLoss):
            self.loss.validate_labels(labels)
        if self._strategy is not None:
            contents = batch.contents.merged() if isinstance(batch.contents, Chunks) else batch.contents
            loss = distributed.run_step(self._strategy, self.world, self._replica_fn, contents, labels)
            self._sched_step += 1
            self._set_learning_rate()
            return float(loss)
        with tf.device(self._tf_device):
            inputs = _backend_inputs(batch.contents)
            loss = self._step_fn(inputs, tf.constant(labels) if self._compiled else labels)
        self._sched_step += 1
        self._set_learning_rate()  # as PyTorch's scheduler.step(): the rate of the next step
        return float(loss)

    def _embed_batch(self, contents: Any) -> np.ndarray:
        with tf.device(self._tf_device):
            embeddings = self._forward(_backend_inputs(contents), training=False)
        return np.asarray(tf.cast(embeddings, tf.float32))

    # ---- state -----------------------------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        variables = list(self.model.variables)
        return {k: np.array(v.numpy()) for k, v in zip(_unique_keys(variables), variables)}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load by variable path; when the paths differ only by Keras's auto-numbered names (another instance of
        the same architecture: ``dense_4`` vs ``dense_2``), load in order if every shape matches."""
        variables = list(self.model.variables)
        keys = _unique_keys(variables)
        if set(keys) == set(weights):
            values = [weights[key] for key in keys]
        else:
            values = list(weights.values())
            if len(values) != len(variables) or any(
                tuple(np.shape(a)) != tuple(v.shape) for a, v in zip(values, variables)
            ):
                missing = sorted(set(keys) - set(weights))[:5]
                raise ValueError(
                    f"the weights do not fit this model ({len(values)} arrays for {len(variables)} variables; "
                    f"e.g. no value for {missing}): load weights saved from the same architecture"
                )
        for var, value in zip(variables, values):
            var.assign(np.asarray(value, dtype=var.dtype))

    def backend_state_dict(self) -> dict[str, Any]:
        loss = [np.array(v.numpy()) for v in self.loss.variables] if isinstance(self.loss, keras.layers.Layer) else []
        return {
            "model": self.get_weights(),
            "loss": loss,
            "optimizer": [np.array(v.numpy()) for v in self.optimizer.variables],
            "scheduler": {"step": self._sched_step, "total_steps": self._total_steps},
        }

    def load_backend_state_dict(self, state: dict[str, Any]) -> None:
        self.set_weights(state["model"])
        if isinstance(self.loss, keras.layers.Layer):
            for var, value in zip(self.loss.variables, state["loss"], strict=True):
                var.assign(value)
        variables = list(self.optimizer.variables)
        if len(variables) != len(state["optimizer"]):
            raise ValueError(
                f"the checkpoint holds {len(state['optimizer'])} optimiser variables but this optimiser has "
                f"{len(variables)}: resume with the same optimizer and model"
            )
        for var, value in zip(variables, state["optimizer"]):
            var.assign(value)
        self._sched_step = int(state["scheduler"]["step"])
        self._set_learning_rate()

    def get_rng_state(self) -> dict[str, Any]:
        from keras.src.random.seed_generator import global_seed_generator

        return {
            "keras": np.array(global_seed_generator().state.numpy()),
            "tf": np.array(tf.random.get_global_generator().state.numpy()),
        }

    def set_rng_state(self, state: dict[str, Any]) -> None:
        from keras.src.random.seed_generator import global_seed_generator

        global_seed_generator().state.assign(state["keras"])
        tf.random.get_global_generator().state.assign(state["tf"])

    def _seed_framework(self, seed: int) -> None:
        keras.utils.set_random_seed(seed)  # Python, numpy, tf.random and Keras's global seed generator
        tf.random.get_global_generator().reset_from_seed(seed)

    def save_model(self, path: str) -> None:
        write_tree(self.get_weights(), path)
