"""Benchmark: data-parallel training throughput, 1 process against 2 workers, on the same global batch.

Runs ``models/distributed_digits.py`` (an MLP of ``--width`` hidden units on scikit-learn's digits, TripletLoss
with semihard mining, the m-per-class sampler) for ``--epochs`` epochs: once as one process with every core's
threads and a global batch of 2B, once as 2 workers (``torchrun`` / ``paddle.distributed.launch``, gloo on CPU)
with one thread and batch B each. Samples/s and the scaling efficiency (2-worker throughput / 1-process
throughput) are written to ``results/distributed.{json,md}``.

On a 2-core CPU both runs share the same two cores, so the best possible efficiency is about 1.0x (no extra
compute, only the same compute split in two plus the all-gather and gradient all-reduce). On GPUs each worker
brings its own device; there the expected gain is near-linear in the number of GPUs for models whose step is
compute-bound, which this CPU benchmark cannot show.

    python benchmarks/distributed.py [--frameworks torch,paddle] [--width 2048] [--epochs 10]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile

import numpy as np
from _common import ROOT, write_results

WORKER = ROOT / "models" / "distributed_digits.py"
LOSS = "TripletLoss"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], threads: int, cwd: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-3000:]}")


def measure(framework: str, width: int, epochs: int, batch: int) -> list[dict]:
    cores = os.cpu_count() or 1
    common = ["--framework", framework, "--losses", LOSS, "--steps", "0", "--epochs", str(epochs), "--width", str(width),
              "--per-class", "8"]
    with tempfile.TemporaryDirectory() as tmp:
        _run([sys.executable, str(WORKER), f"{tmp}/one.npz", *common, "--batch-size", str(2 * batch)], cores, tmp)
        if framework == "torch":
            launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
                        "--master-addr=127.0.0.1", f"--master-port={_port()}"]
        else:
            launcher = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                        "--log_dir", f"{tmp}/log"]
        _run([*launcher, str(WORKER), f"{tmp}/two.npz", *common, "--batch-size", str(batch)],
             max(1, cores // 2), tmp)
        one, two = np.load(f"{tmp}/one.npz"), np.load(f"{tmp}/two.npz")
        rows = []
        for workers, result, threads in ((1, one, cores), (2, two, max(1, cores // 2))):
            samples, seconds = float(result[f"{LOSS}.samples"]), float(result[f"{LOSS}.seconds"])
            rows.append({"framework": framework, "workers": workers, "threads_per_worker": threads,
                         "global_batch": 2 * batch, "samples": int(samples), "seconds": seconds,
                         "samples_per_s": samples / seconds, "mAP@R": float(result[f"{LOSS}.map_at_r"])})
        rows[1]["scaling_efficiency"] = rows[1]["samples_per_s"] / rows[0]["samples_per_s"]
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", default="torch,paddle")
    parser.add_argument("--width", type=int, default=2048, help="hidden units of the MLP (compute per step)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32, help="per worker; the single process uses twice it")
    args = parser.parse_args()
    rows = []
    for framework in args.frameworks.split(","):
        rows += measure(framework, args.width, args.epochs, args.batch_size)
        print(rows[-2:], flush=True)
    notes = [f"gloo on loopback. Both runs use all cores (1 x {os.cpu_count()} "
             "threads against 2 workers x half the threads), so ~1.0x is the ceiling here; GPUs were not available."]
    print(write_results("distributed", rows, ["framework", "workers", "threads_per_worker", "global_batch", "samples",
                                              "seconds", "samples_per_s", "scaling_efficiency", "mAP@R"], notes))


if __name__ == "__main__":
    main()
