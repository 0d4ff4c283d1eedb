"""The PaddlePaddle backend of :class:`~finetuner.tuner.base.BaseTuner`.

Same arguments, defaults and behaviour as :class:`~finetuner.tuner.pytorch.PytorchTuner`; the differences are
paddle's own:

- ``device``: ``'cpu'``, ``'gpu'`` / ``'gpu:N'`` (``'cuda'`` / ``'cuda:N'`` are accepted as aliases);
- the optimisers map to ``paddle.optimizer`` (``sgd`` is ``Momentum(0.9)``, as torch's SGD with momentum;
  ``rmsprop`` uses ``rho=0.99, epsilon=1e-8`` like torch's defaults, but paddle adds epsilon inside the square
  root); a callable optimiser receives ``(params, learning_rate)`` where ``learning_rate`` is the paddle
  ``LRScheduler`` of the chosen schedule, which every paddle optimiser takes as its learning rate;
- ``max_grad_norm`` becomes the optimiser's ``ClipGradByGlobalNorm``;
- checkpoints are data-only ``.npz`` files of numpy arrays (:mod:`finetuner.safe_io`); optimiser accumulators are stored per parameter
  position, not under paddle's global parameter names, so a fresh process (or model object) resumes exactly.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from finetuner.tuner import chunked, optim
from finetuner.tuner.base import BaseTuner
from finetuner.tuner.distributed import World
from finetuner.tuner.paddle import distributed
from finetuner.tuner.paddle import losses as paddle_losses
from tailor_ir.imports import import_paddle

paddle = import_paddle()

__all__ = ["PaddleTuner"]


def _first_output(output: Any) -> Any:
    return output[0] if isinstance(output, (tuple, list)) else output


def _numpy(value: Any) -> Any:
    """Tensors -> numpy arrays, recursively through dicts, lists and tuples."""
    if isinstance(value, paddle.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {k: _numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_numpy(v) for v in value)
    return value


class PaddleTuner(BaseTuner):
    """Fine-tunes a ``paddle.nn.Layer`` that maps a batch's contents to (B, D) embeddings.

    Contents that are a dict are passed as keyword arguments, a tuple/list as positional arguments.
    See :class:`~finetuner.tuner.base.BaseTuner` for the arguments and this module's docstring for the
    paddle specifics.
    """

    framework = "paddle"
    model_suffix = ".pdparams"

    # ---- construction ----------------------------------------------------------------------------------------
    def _loss_class(self, name: str) -> type:
        return getattr(paddle_losses, name)

    def _check_device(self, device: str) -> str:
        if not isinstance(device, str):
            raise ValueError(f"device must be 'cpu' or 'gpu' (or 'gpu:N', 'cuda:N'), got {device!r}")
        if device == "auto":
            cuda = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
            device = "gpu" if cuda else "cpu"
        kind, _, index = device.lower().partition(":")
        if kind not in ("cpu", "gpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
            raise ValueError(f"device must be 'cpu' or 'gpu' (or 'gpu:N', 'cuda:N'), got {device!r}")
        if kind == "cpu":
            self._place = paddle.CPUPlace()
            return "cpu"
        count = paddle.device.cuda.device_count() if paddle.device.is_compiled_with_cuda() else 0
        number = int(index or 0)
        if number >= count:
            raise RuntimeError(
                f"device={device!r} but paddle sees {count} GPU(s) (CUDA build: "
                f"{paddle.device.is_compiled_with_cuda()}): use device='cpu'"
            )
        self._place = paddle.CUDAPlace(number)
        return f"gpu:{number}"

    def _check_mixed_precision(self, mixed_precision: bool) -> bool:
        if mixed_precision and not self.device.startswith("gpu"):
            warnings.warn(
                "mixed_precision=True needs device='gpu' (or 'cuda'); training in float32 on CPU", stacklevel=3
            )
            return False
        return bool(mixed_precision)

    def _parameters(self) -> list[Any]:
        params = [p for p in self.model.parameters() if not p.stop_gradient]
        if isinstance(self.loss, paddle.nn.Layer):
            params += [p for p in self.loss.parameters() if not p.stop_gradient]
        return params

    def _join_world(self) -> World:
        return distributed.init()

    def _setup(self, total_steps: int) -> None:
        self.model.to(device=self._place)
        self._train_model = distributed.wrap(self.model) if self.world.distributed else self.model
        if isinstance(self.loss, paddle.nn.Layer):
            self.loss.to(device=self._place)
        params = self._parameters()
        if not params:
            raise ValueError("the model has no trainable parameter: unfreeze some layers before fitting")
        name, warmup = self.scheduler_name, self.warmup_steps
        self.scheduler = paddle.optimizer.lr.LambdaDecay(
            self.learning_rate, lambda step: optim.lr_multiplier(name, step, warmup, total_steps)
        )
        if callable(self.optimizer_name):
            self.optimizer = self.optimizer_name(params, self.scheduler)
        else:
            self.optimizer = self._build_optimizer(params)
        self.scaler = paddle.amp.GradScaler(enable=self.mixed_precision, init_loss_scaling=2.0**16)
        self._params = params

    def _build_optimizer(self, params: list[Any]) -> Any:
        options = dict(optim.OPTIMIZERS[self.optimizer_name])
        if self.weight_decay is not None:
            options["weight_decay"] = self.weight_decay
        decay = float(options.pop("weight_decay"))
        common: dict[str, Any] = {"learning_rate": self.scheduler, "parameters": params}
        if self.max_grad_norm is not None:
            common["grad_clip"] = paddle.nn.ClipGradByGlobalNorm(float(self.max_grad_norm))
        # torch's Adam/SGD/RMSprop weight decay is L2 added to the gradient (paddle's float weight_decay);
        # AdamW's is decoupled in both
        l2 = decay if decay else None
        if self.optimizer_name == "adam":
            return paddle.optimizer.Adam(beta1=0.9, beta2=0.999, epsilon=1e-8, weight_decay=l2, **common)
        if self.optimizer_name == "adamw":
            return paddle.optimizer.AdamW(beta1=0.9, beta2=0.999, epsilon=1e-8, weight_decay=decay, **common)
        if self.optimizer_name == "sgd":
            return paddle.optimizer.Momentum(momentum=options["momentum"], weight_decay=l2, **common)
        return paddle.optimizer.RMSProp(rho=0.99, epsilon=1e-8, weight_decay=l2, **common)

    # ---- steps -----------------------------------------------------------------------------------------------
    def _to_tensor(self, value: Any) -> Any:
        """numpy/lists -> tensors on the device (floating arrays as float32); dicts, tuples, lists recursively."""
        if isinstance(value, paddle.Tensor):
            return value if value.place._equals(self._place) else value._copy_to(self._place, False)
        if isinstance(value, dict):
            return {k: self._to_tensor(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)) and value and not np.isscalar(value[0]):
            return type(value)(self._to_tensor(v) for v in value)
        array = np.asarray(value)
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32, copy=False)
        return paddle.to_tensor(np.ascontiguousarray(array), place=self._place)

    def _forward(self, contents: Any, model: Any = None) -> Any:
        model = self.model if model is None else model

        def forward(inputs: Any) -> Any:
            if isinstance(inputs, dict):
                return _first_output(model(**inputs))
            if isinstance(inputs, (tuple, list)):
                return _first_output(model(*inputs))
            return _first_output(model(inputs))

        inputs = chunked.to_backend(contents, self._to_tensor, self._to_tensor)
        return chunked.run(inputs, forward, lambda parts: paddle.concat(parts, axis=0), paddle.gather)

    def _autocast(self) -> Any:
        return paddle.amp.auto_cast(enable=self.mixed_precision, level="O1", dtype="float16")

    def train_step(self, batch: Any) -> float:
        self.model.train()
        self.optimizer.clear_grad(set_to_zero=False)
        with self._autocast():
            embeddings = self._forward(batch.contents, self._train_model).astype("float32")
        labels = np.asarray(batch.labels)
        if self.world.distributed:  # the loss sees the global batch (see finetuner.tuner.paddle.distributed)
            embeddings, labels = distributed.gather_rows(embeddings), distributed.gather_labels(labels)
        loss = self.loss(embeddings, labels)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)  # unscales, then the optimiser clips (grad_clip) and steps
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach().numpy())

    def _embed_batch(self, contents: Any) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        try:
            with paddle.no_grad(), self._autocast():
                embeddings = self._forward(contents)
            return embeddings.astype("float32").numpy()
        finally:
            self.model.train() if was_training else self.model.eval()

    # ---- state -----------------------------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: np.array(v.numpy(), copy=True) for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        current = self.model.state_dict()
        unknown = sorted(set(weights) - set(current))
        if unknown:
            raise KeyError(f"weights {unknown[:5]} are not in the model; it has {list(current)[:10]}...")
        for name, value in weights.items():
            target = current[name]
            target.set_value(np.asarray(value, dtype=str(target.numpy().dtype)))

    def _optimizer_state(self) -> dict[str, Any]:
        """The optimiser's accumulators by kind and parameter position (paddle's parameter names are global
        counters, different for every model object), plus the schedule's position."""
        by_name = {p.name: i for i, p in enumerate(self._params)}
        accumulators: dict[str, dict[int, np.ndarray]] = {}
        for kind, per_param in getattr(self.optimizer, "_accumulators", {}).items():
            for pname, var in per_param.items():
                if pname in by_name:
                    accumulators.setdefault(kind, {})[by_name[pname]] = np.array(var.numpy(), copy=True)
        return {"accumulators": accumulators, "scheduler": self.scheduler.state_dict()}

    def _load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.scheduler.set_state_dict(state["scheduler"])
        accumulators = state["accumulators"]
        if not accumulators:
            return
        trainable = [p for p in self._params if not p.stop_gradient]
        block = paddle.static.default_main_program().global_block()
        self.optimizer._create_accumulators(block, trainable)  # what the first step would do
        for kind, values in accumulators.items():
            current = self.optimizer._accumulators.get(kind, {})
            for index, value in values.items():
                var = current.get(self._params[int(index)].name)
                if var is None:
                    raise ValueError(
                        f"the checkpoint's optimiser state {kind!r} for parameter {index} does not fit this "
                        "optimiser: resume with the same model, optimizer and frozen layers"
                    )
                var.set_value(np.asarray(value, dtype=str(var.numpy().dtype)))

    def backend_state_dict(self) -> dict[str, Any]:
        loss = _numpy(self.loss.state_dict()) if isinstance(self.loss, paddle.nn.Layer) else {}
        scaler = _numpy(self.scaler.state_dict()) if self.mixed_precision else {}
        return {
            "model": self.get_weights(),
            "loss": loss,
            "optimizer": self._optimizer_state(),
            "scaler": scaler,
        }

    def load_backend_state_dict(self, state: dict[str, Any]) -> None:
        self.set_weights(state["model"])
        if isinstance(self.loss, paddle.nn.Layer) and state["loss"]:
            current = self.loss.state_dict()
            for name, value in state["loss"].items():
                current[name].set_value(value)
        self._load_optimizer_state(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])

    def get_rng_state(self) -> dict[str, Any]:
        """Paddle's ``GeneratorState`` objects as their plain ``__getstate__`` tuples (data-only checkpoints)."""
        cuda = paddle.get_cuda_rng_state() if paddle.device.is_compiled_with_cuda() else []
        return {
            "cpu": [s.__getstate__() for s in paddle.get_rng_state(device="cpu")],
            "cuda": [s.__getstate__() for s in cuda],
        }

    def set_rng_state(self, state: dict[str, Any]) -> None:
        paddle.set_rng_state(_generator_states(state["cpu"]), device="cpu")
        if state["cuda"] and paddle.device.is_compiled_with_cuda():
            paddle.set_cuda_rng_state(_generator_states(state["cuda"]))

    def _seed_framework(self, seed: int) -> None:
        paddle.seed(seed)

    def save_model(self, path: str) -> None:
        paddle.save(self.model.state_dict(), path)


def _generator_states(values: list[Any]) -> list[Any]:
    """``GeneratorState`` objects back from the tuples :meth:`PaddleTuner.get_rng_state` stored."""
    cls = type(paddle.get_rng_state(device="cpu")[0])
    states = []
    for value in values:
        state = cls.__new__(cls)
        state.__setstate__(tuple(value))
        states.append(state)
    return states
