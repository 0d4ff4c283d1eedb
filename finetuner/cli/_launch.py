"""Data-parallel ``finetuner fit``: start the framework's own launcher, which runs the command once per worker.

``finetuner fit CONFIG --nproc-per-node N`` becomes ``torchrun --nproc-per-node N -m finetuner fit CONFIG`` for
a PyTorch model and ``python -m paddle.distributed.launch --nproc_per_node N .../finetuner/__main__.py fit CONFIG``
for a Paddle one; each worker then trains its shard (see :mod:`finetuner.tuner.distributed`) and rank 0 saves.
Keras has no launcher: each worker runs ``finetuner fit CONFIG`` with its ``TF_CONFIG``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

LAUNCHER_VARIABLES = ("WORLD_SIZE", "PADDLE_TRAINERS_NUM", "TF_CONFIG")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data-parallel training (several processes, GPUs or machines)")
    group.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                       help="worker processes on this machine (one per GPU); each trains batch_size items a step")
    group.add_argument("--nnodes", type=int, default=1, help="machines taking part (run the command on each)")
    group.add_argument("--node-rank", type=int, default=0, help="this machine's index, 0 .. nnodes-1")
    group.add_argument("--master-addr", default="127.0.0.1", help="address of the machine with node rank 0")
    group.add_argument("--master-port", type=int, default=29500, help="a free port on that machine")


def wanted(args: argparse.Namespace) -> bool:
    """Whether this invocation must start workers (several asked for, and not already inside a launcher)."""
    several = args.nproc_per_node > 1 or args.nnodes > 1
    return several and not any(name in os.environ for name in LAUNCHER_VARIABLES)


def command(framework: str, args: argparse.Namespace, rest: list[str]) -> list[str]:
    """The launcher command line that runs ``finetuner <rest>`` in every worker."""
    if args.nproc_per_node < 1 or args.nnodes < 1 or not 0 <= args.node_rank < args.nnodes:
        raise ValueError("need --nproc-per-node >= 1, --nnodes >= 1 and 0 <= --node-rank < --nnodes")
    if framework == "torch":
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={args.nproc_per_node}",
                f"--nnodes={args.nnodes}", f"--node-rank={args.node_rank}", f"--master-addr={args.master_addr}",
                f"--master-port={args.master_port}", "-m", "finetuner", *rest]
    if framework == "paddle":
        import finetuner

        script = Path(finetuner.__file__).with_name("__main__.py")
        return [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(args.nproc_per_node),
                "--nnodes", str(args.nnodes), "--rank", str(args.node_rank),
                "--master", f"{args.master_addr}:{args.master_port}", str(script), *rest]
    if framework == "keras":
        raise ValueError(
            "Keras models train on several workers through tf.distribute, configured by TF_CONFIG: set TF_CONFIG "
            "in each worker's environment and run `finetuner fit CONFIG` there (without --nproc-per-node)"
        )
    raise ValueError(f"data-parallel training is not available for {framework} models")


@contextlib.contextmanager
def keras_worker_scope() -> Iterator[None]:
    """Under ``TF_CONFIG``, create the ``MultiWorkerMirroredStrategy`` before any model exists and build and
    tune inside its scope (TensorFlow's rule); elsewhere nothing."""
    if not os.environ.get("TF_CONFIG"):
        yield
        return
    from tailor_ir.imports import import_tensorflow

    strategy = import_tensorflow().distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        yield
