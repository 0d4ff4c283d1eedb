"""``torch.distributed`` for the PyTorch tuner: the process group, DDP, and a loss over the global batch.

In-batch losses (MultipleNegativesRanking, NT-Xent, triplet and pair miners) must see every worker's rows,
or N workers with batch B would train like N separate runs with batch B. :func:`gather_rows` all-gathers the
embeddings with autograd (``torch.distributed.nn.functional.all_gather``: its backward sums each rank's gradient
back to the rows' owner), every worker computes the same loss on the global batch, and DDP averages the
parameter gradients; the result is the gradient of one process on the global batch.
"""

from __future__ import annotations

import datetime
import warnings
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from finetuner.tuner.distributed import World, world_from_env

TIMEOUT = datetime.timedelta(seconds=60)  # a collective waiting on a dead worker fails instead of hanging


def init(device: str) -> World:
    """Join the launcher's process group (``nccl`` on CUDA, ``gloo`` on CPU); a single process joins nothing."""
    world = world_from_env()
    if world.distributed and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    return world


def device_for(world: World, device: str) -> str:
    """Each worker on its own GPU: ``cuda`` becomes ``cuda:<local rank>`` under a launcher."""
    if world.distributed and device == "cuda":
        return f"cuda:{world.local_rank}"
    return device


def _padded_gather(rows: torch.Tensor, differentiable: bool) -> torch.Tensor:
    """Concatenate every rank's ``rows`` in rank order; ranks may hold different numbers of rows."""
    counts = [torch.zeros(1, dtype=torch.long, device=rows.device) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, torch.tensor([len(rows)], dtype=torch.long, device=rows.device))
    sizes = [int(c.item()) for c in counts]
    longest = max(sizes)
    padded = rows
    if len(rows) < longest:
        padding = rows.new_zeros((longest - len(rows), *rows.shape[1:]))
        padded = torch.cat([rows, padding])
    if differentiable:
        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():  # deprecated for a private successor; the public one still works
            warnings.simplefilter("ignore", FutureWarning)
            parts = all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


def gather_rows(embeddings: torch.Tensor) -> torch.Tensor:
    """Every worker's embeddings, in rank order, with gradients flowing back to their owner."""
    return _padded_gather(embeddings, differentiable=True)


def gather_labels(labels: Any, device: str) -> np.ndarray:
    """Every worker's labels (int64 class ids, session rows or item ids), in rank order."""
    array = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    return _padded_gather(array, differentiable=False).cpu().numpy()


def wrap(model: torch.nn.Module, world: World, device: str) -> torch.nn.Module:
    """``DistributedDataParallel`` over ``model`` (gradients averaged across workers; weights start equal)."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=device_ids)
