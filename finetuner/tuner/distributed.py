"""Data-parallel training, framework-neutral part: which worker this is, and each worker's shard of a batch.

Training past one process runs on each framework's own engine (``torch.distributed`` launched by ``torchrun``);
this module holds what does not depend on the framework:

- :class:`World`: this process's rank among ``size`` workers (from the launcher's environment);
- :class:`ShardedSampler`: every worker plans the same *global* batches (same seed, same epoch) and takes its
  contiguous slice of each. Concatenated in rank order the slices are exactly the global batch, so a loss over
  embeddings gathered across workers sees what one process with the global batch would see. A class sampler's
  batch is groups of ``m`` items per class, so with a per-worker batch that is a multiple of ``m`` every worker
  still holds ``m`` items per class. An epoch covers the data once in total, not once per worker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class World:
    """This process's place among the workers of one training run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """The worker that writes files, prints progress and returns what is saved (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env(environ: Any = None) -> World:
    """The world the launcher describes: ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``),
    ``paddle.distributed.launch`` (``PADDLE_TRAINER_ID``/``PADDLE_TRAINERS_NUM``/``PADDLE_LOCAL_RANK``) or a
    ``tf.distribute`` cluster (``TF_CONFIG``: chief first, then the workers)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env and env.get("TF_CONFIG"):
        return _tf_config_world(env["TF_CONFIG"])
    keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    if "WORLD_SIZE" not in env and "PADDLE_TRAINERS_NUM" in env:
        keys = ("PADDLE_TRAINER_ID", "PADDLE_TRAINERS_NUM", "PADDLE_LOCAL_RANK")
    try:
        rank, size = int(env.get(keys[0], "0")), int(env.get(keys[1], "1"))
        local_rank = int(env.get(keys[2], str(rank)))
    except ValueError as exc:
        raise ValueError(f"{'/'.join(keys)} must be integers: {exc}") from exc
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"{keys[0]}={rank} is not within {keys[1]}={size}")
    return World(rank=rank, size=size, local_rank=local_rank)


def _tf_config_world(text: str) -> World:
    try:
        config = json.loads(text)
        cluster, task = config.get("cluster", {}), config.get("task", {})
        tasks = [(kind, i) for kind in ("chief", "worker") for i in range(len(cluster.get(kind, [])))]
        rank = tasks.index((task.get("type"), int(task.get("index", 0))))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"TF_CONFIG does not name this task among the cluster's chief/workers: {exc}") from exc
    return World(rank=rank, size=len(tasks), local_rank=0)


class ShardedSampler:
    """This worker's slice of every global batch another sampler plans (see the module docstring).

    Everything but ``plan`` is the wrapped sampler's: epoch, position, seed and the state that checkpoints
    hold, so a run resumed on a different number of workers (with the same global batch) continues exactly.
    """

    def __init__(self, sampler: Any, world: World):
        if getattr(sampler, "batch_size", world.size) < world.size:
            raise ValueError(
                f"a global batch of {sampler.batch_size} cannot be shared by {world.size} workers: raise batch_size"
            )
        object.__setattr__(self, "inner", sampler)
        object.__setattr__(self, "world", world)

    def plan(self, epoch: int | None = None) -> list[np.ndarray]:
        return [np.array_split(batch, self.world.size)[self.world.rank] for batch in self.inner.plan(epoch)]

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[np.ndarray]:
        """The remaining slices of the current epoch, as :meth:`Sampler.__iter__` walks its batches."""
        batches = self.plan()
        for index in range(self.inner.position, len(batches)):
            self.inner.position = index + 1
            yield batches[index]
        self.inner.set_epoch(self.inner.epoch + 1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)


def shard_loader(loader: Any, world: World) -> Any:
    """Make ``loader`` (a ``finetuner.data`` loader over global batches) yield only this worker's slices."""
    if not world.distributed:
        return loader
    sampler = getattr(loader, "sampler", None)
    if sampler is None or not hasattr(sampler, "plan"):
        raise TypeError(
            f"{type(loader).__name__} has no finetuner sampler to shard across {world.size} workers: pass the data "
            "(a DocumentArray or arrays) instead of a ready loader, or shard it yourself"
        )
    if not isinstance(sampler, ShardedSampler):
        loader.sampler = ShardedSampler(sampler, world)
    return loader
