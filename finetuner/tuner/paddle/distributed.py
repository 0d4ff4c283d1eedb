"""``paddle.distributed`` for the Paddle tuner: the collective group, ``DataParallel``, the global batch.

Launched by ``python -m paddle.distributed.launch --nproc_per_node N script.py`` (gloo on CPU, NCCL on GPUs).
As in the PyTorch tuner (:mod:`finetuner.tuner.pytorch.distributed`), in-batch losses see every worker's rows:
:class:`_AllGather` concatenates the embeddings of all workers and sends each worker the summed gradient of its
own rows back; ``DataParallel`` averages the parameter gradients, which gives one process's gradient on the
global batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from finetuner.tuner.distributed import World, world_from_env
from tailor_ir.imports import import_paddle

paddle = import_paddle()
dist = paddle.distributed


def init() -> World:
    """Join the launcher's collective group; a single process joins nothing."""
    world = world_from_env()
    if world.distributed and not dist.is_initialized():
        dist.init_parallel_env()
    return world


class _AllGather(paddle.autograd.PyLayer):
    """All-gather equal-sized rows; backward: the sum over workers of the gradient of this worker's rows."""

    @staticmethod
    def forward(ctx: Any, rows: Any) -> Any:
        parts: list[Any] = []
        dist.all_gather(parts, rows)
        ctx.rank, ctx.size = dist.get_rank(), dist.get_world_size()
        return paddle.concat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        grad = grad.clone()
        dist.all_reduce(grad)
        return paddle.split(grad, ctx.size)[ctx.rank]


def _sizes(count: int) -> list[int]:
    counts: list[Any] = []
    dist.all_gather(counts, paddle.to_tensor([count], dtype="int64"))
    return [int(c.numpy()[0]) for c in counts]


def _pad(rows: Any, longest: int) -> Any:
    if rows.shape[0] == longest:
        return rows
    padding = paddle.zeros([longest - rows.shape[0], *rows.shape[1:]], dtype=rows.dtype)
    return paddle.concat([rows, padding])


def gather_rows(embeddings: Any) -> Any:
    """Every worker's embeddings, in rank order, with gradients flowing back to their owner."""
    sizes = _sizes(embeddings.shape[0])
    gathered = _AllGather.apply(_pad(embeddings, max(sizes)))
    parts = paddle.split(gathered, len(sizes))
    return paddle.concat([part[:size] for part, size in zip(parts, sizes)])


def gather_labels(labels: Any) -> np.ndarray:
    """Every worker's labels (int64 class ids, session rows or item ids), in rank order."""
    array = np.asarray(labels, dtype=np.int64)
    sizes = _sizes(len(array))
    padded = np.zeros((max(sizes), *array.shape[1:]), dtype=np.int64)
    padded[: len(array)] = array
    parts: list[Any] = []
    dist.all_gather(parts, paddle.to_tensor(padded))
    return np.concatenate([part.numpy()[:size] for part, size in zip(parts, sizes)])


def wrap(model: Any) -> Any:
    """``paddle.DataParallel`` over ``model`` (gradients averaged across workers)."""
    return paddle.DataParallel(model)
