"""``finetuner fit CONFIG --nproc-per-node 2`` starts torchrun, trains on two workers and saves once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetuner.cli import _launch, build_parser
from tests.processes import free_port


def test_fit_with_two_workers_saves_the_tuned_model_once(tmp_path: Path) -> None:
    config = tmp_path / "fit.yml"
    saved = tmp_path / "out" / "model.onnx"
    config.write_text(
        "model: zoo:torch:mlp\ntrain_data: digits:0-6\n"
        f"fit:\n  output_dim: 16\n  epochs: 1\n  input_shape: [64]\nsave: {saved}\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "finetuner", "fit", str(config), "--nproc-per-node", "2",
           "--master-port", str(free_port())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("saved the tuned model") == 1
    assert saved.is_file() and saved.stat().st_size > 0


def test_the_launcher_command_per_framework() -> None:
    args = build_parser().parse_args(["fit", "c.yml", "--nproc-per-node", "4", "--nnodes", "2", "--node-rank", "1",
                                      "--master-addr", "10.0.0.1", "--master-port", "1234"])
    torch_cmd = _launch.command("torch", args, ["fit", "c.yml"])
    assert torch_cmd[1:3] == ["-m", "torch.distributed.run"]
    assert {"--nproc-per-node=4", "--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.1", "--master-port=1234"} <= set(
        torch_cmd
    )
    assert torch_cmd[-4:] == ["-m", "finetuner", "fit", "c.yml"]
    paddle_cmd = _launch.command("paddle", args, ["fit", "c.yml"])
    assert paddle_cmd[1:3] == ["-m", "paddle.distributed.launch"] and "10.0.0.1:1234" in paddle_cmd
    with pytest.raises(ValueError, match="TF_CONFIG"):
        _launch.command("keras", args, ["fit", "c.yml"])
    bad = build_parser().parse_args(["fit", "c.yml", "--nnodes", "2", "--node-rank", "2"])
    with pytest.raises(ValueError, match="node-rank"):
        _launch.command("torch", bad, ["fit", "c.yml"])
