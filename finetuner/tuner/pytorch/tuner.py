"""The PyTorch backend of :class:`~finetuner.tuner.base.BaseTuner`."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from finetuner.tuner import chunked, optim
from finetuner.tuner.base import BaseTuner
from finetuner.tuner.distributed import World
from finetuner.tuner.pytorch import distributed
from finetuner.tuner.pytorch import losses as torch_losses

__all__ = ["PytorchTuner"]


def _to_tensor(value: Any, device: str) -> Any:
    """numpy/lists -> tensors on ``device`` (floating arrays as float32); dicts, tuples and lists recursively."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_tensor(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)) and value and not np.isscalar(value[0]):
        return type(value)(_to_tensor(v, device) for v in value)
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32, copy=False)
    return torch.as_tensor(array, device=device)


def _first_output(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


class PytorchTuner(BaseTuner):
    """Fine-tunes a ``torch.nn.Module`` that maps a batch's contents to (B, D) embeddings.

    Contents that are a dict are passed as keyword arguments, a tuple/list as positional arguments.
    See :class:`~finetuner.tuner.base.BaseTuner` for the arguments.
    """

    framework = "torch"
    model_suffix = ".pt"

    # ---- construction ----------------------------------------------------------------------------------------
    def _loss_class(self, name: str) -> type:
        return getattr(torch_losses, name)

    def _check_device(self, device: str) -> str:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} but torch sees no CUDA device: use device='cpu'")
        if resolved.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}")
        return str(resolved)

    def _check_mixed_precision(self, mixed_precision: bool) -> bool:
        if mixed_precision and not self.device.startswith("cuda"):
            warnings.warn(
                "mixed_precision=True needs device='cuda'; training in float32 on CPU", stacklevel=3
            )
            return False
        return bool(mixed_precision)

    def _parameters(self) -> list[torch.nn.Parameter]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if isinstance(self.loss, torch.nn.Module):
            params += [p for p in self.loss.parameters() if p.requires_grad]
        return params

    def _join_world(self) -> World:
        world = distributed.init(self.device)
        self.device = distributed.device_for(world, self.device)
        return world

    def _setup(self, total_steps: int) -> None:
        self.model.to(self.device)
        self._train_model = (
            distributed.wrap(self.model, self.world, self.device) if self.world.distributed else self.model
        )
        if isinstance(self.loss, torch.nn.Module):
            self.loss.to(self.device)
        params = self._parameters()
        if not params:
            raise ValueError("the model has no trainable parameter: unfreeze some layers before fitting")
        if callable(self.optimizer_name):
            self.optimizer = self.optimizer_name(params, self.learning_rate)
        else:
            options = dict(optim.OPTIMIZERS[self.optimizer_name])
            if self.weight_decay is not None:
                options["weight_decay"] = self.weight_decay
            cls = {
                "adam": torch.optim.Adam,
                "adamw": torch.optim.AdamW,
                "sgd": torch.optim.SGD,
                "rmsprop": torch.optim.RMSprop,
            }[self.optimizer_name]
            self.optimizer = cls(params, lr=self.learning_rate, **options)
        name, warmup = self.scheduler_name, self.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: optim.lr_multiplier(name, step, warmup, total_steps)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.mixed_precision)
        self._params = params

    # ---- steps -----------------------------------------------------------------------------------------------
    def _autocast(self) -> Any:
        device_type = torch.device(self.device).type
        return torch.autocast(device_type, dtype=torch.float16, enabled=self.mixed_precision)

    def _forward(self, contents: Any, model: torch.nn.Module | None = None) -> torch.Tensor:
        model = self.model if model is None else model

        def forward(inputs: Any) -> torch.Tensor:
            if isinstance(inputs, dict):
                return _first_output(model(**inputs))
            if isinstance(inputs, (tuple, list)):
                return _first_output(model(*inputs))
            return _first_output(model(inputs))

        device = self.device
        inputs = chunked.to_backend(
            contents, lambda c: _to_tensor(c, device), lambda i: torch.as_tensor(i, device=device)
        )
        return chunked.run(inputs, forward, torch.cat, lambda rows, restore: rows[restore])

    def train_step(self, batch: Any) -> float:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            embeddings = self._forward(batch.contents, self._train_model).float()
        labels = np.asarray(batch.labels)
        if self.world.distributed:  # the loss sees the global batch (see finetuner.tuner.pytorch.distributed)
            embeddings, labels = distributed.gather_rows(embeddings), distributed.gather_labels(labels, self.device)
        loss = self.loss(embeddings, labels)
        self.scaler.scale(loss).backward()
        if self.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self._params, self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    @torch.no_grad()
    def _embed_batch(self, contents: Any) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        try:
            with self._autocast():
                embeddings = self._forward(contents)
            return embeddings.float().cpu().numpy()
        finally:
            self.model.train(was_training)

    # ---- state -----------------------------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        current = self.model.state_dict()
        self.model.load_state_dict(
            {k: torch.as_tensor(v, dtype=current[k].dtype) for k, v in weights.items()}
        )

    def backend_state_dict(self) -> dict[str, Any]:
        loss = self.loss.state_dict() if isinstance(self.loss, torch.nn.Module) else {}
        return {
            "model": self.model.state_dict(),
            "loss": loss,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_backend_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if isinstance(self.loss, torch.nn.Module):
            self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])

    def get_rng_state(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["cpu"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def _seed_framework(self, seed: int) -> None:
        torch.manual_seed(seed)

    def save_model(self, path: str) -> None:
        torch.save(self.model.state_dict(), path)
