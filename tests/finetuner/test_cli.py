"""The ``finetuner`` command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from finetuner.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def finetuner_cli(*args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "finetuner", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_help_lists_every_command() -> None:
    done = finetuner_cli("--help")
    assert done.returncode == 0
    for command in COMMANDS:
        assert command.replace("_", "-") in done.stdout


@pytest.mark.parametrize("command", [c.replace("_", "-") for c in COMMANDS])
def test_every_command_has_help(command: str) -> None:
    done = finetuner_cli(command, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: finetuner " + command in done.stdout


def test_display_prints_the_layer_table_of_a_zoo_model() -> None:
    done = finetuner_cli("display", "zoo:torch:mlp", "--input-shape", "64")
    assert done.returncode == 0, done.stderr
    assert "body.3" in done.stdout and "default" in done.stdout


def test_display_of_a_missing_file_is_one_clear_line() -> None:
    done = finetuner_cli("display", "nowhere.onnx")
    assert done.returncode == 1
    assert "nowhere.onnx" in done.stderr and "Traceback" not in done.stderr


def test_fit_from_a_config_then_export(tmp_path: Path) -> None:
    config = {
        "model": "zoo:torch:mlp",
        "train_data": "digits:0-4",
        "fit": {"output_dim": 16, "input_shape": [64], "epochs": 2, "validation": "none", "progress": False},
        "save": str(tmp_path / "tuned.onnx"),
        "export": str(tmp_path / "embedding.onnx"),
    }
    (tmp_path / "fit.json").write_text(json.dumps(config))
    done = finetuner_cli("fit", str(tmp_path / "fit.json"))
    assert done.returncode == 0, done.stderr
    session = ort.InferenceSession(str(tmp_path / "embedding.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((2, 64), np.float32)})[0]
    assert out.shape == (2, 16)

    done = finetuner_cli("export", str(tmp_path / "tuned.onnx"), str(tmp_path / "again.onnx"))
    assert done.returncode == 0, done.stderr
    again = ort.InferenceSession(str(tmp_path / "again.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((3, 64), dtype=np.float32)
    np.testing.assert_allclose(
        again.run(None, {again.get_inputs()[0].name: x})[0], session.run(None, {session.get_inputs()[0].name: x})[0],
        atol=1e-5,
    )


def test_fit_config_with_an_unknown_key_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("model: zoo:torch:mlp\ntrain_data: digits\nepoch: 3\n")
    done = finetuner_cli("fit", str(tmp_path / "bad.yml"))
    assert done.returncode == 1
    assert "unknown key(s) ['epoch']" in done.stderr


def test_fit_config_that_does_not_parse_is_named_without_a_traceback(tmp_path: Path) -> None:
    """A YAML syntax error used to end in yaml's raw ScannerError traceback."""
    from finetuner.cli.fit import read_config

    (tmp_path / "broken.yml").write_text("model: [zoo:torch:mlp\ntrain_data: digits\n")
    (tmp_path / "broken.json").write_text('{"model": "zoo:torch:mlp",')
    for name, what in (("broken.yml", "not valid YAML"), ("broken.json", "not valid JSON")):
        with pytest.raises(ValueError, match=what):
            read_config(tmp_path / name)
    done = finetuner_cli("fit", str(tmp_path / "broken.yml"))
    assert done.returncode == 1 and "broken.yml is not valid YAML" in done.stderr and "Traceback" not in done.stderr


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    done = finetuner_cli("demo", "--out", str(tmp_path), "--epochs", "4", "--no-progress", timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "fine-tuned" in done.stdout and "nearest digits" in done.stdout
    assert (tmp_path / "training.png").stat().st_size > 1000
    assert (tmp_path / "digits-embedding.onnx").is_file()
