"""No file a user hands finetuner runs code: crafted pickles as checkpoints, data files and --model files.

Each payload, when unpickled, creates a marker file; the tests assert the marker never appears and a clear
error is raised instead (and, once, that the payload is live, so that a refusal is not an accident).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from finetuner.cli import main
from finetuner.safe_io import UnsafeFileError, read_tree, write_tree
from finetuner.tuner import tuner_class

X = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
Y = np.repeat(np.arange(8), 8)


class Payload:
    """Unpickling this creates ``marker``: what a malicious file would do, made visible."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def payload_bytes(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker), protocol=pickle.HIGHEST_PROTOCOL)


def test_the_payload_is_live(tmp_path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(payload_bytes(marker))
    assert marker.exists()


def tiny_model(framework: str):
    if framework == "torch":
        import torch

        return torch.nn.Sequential(torch.nn.Linear(8, 4))
    if framework == "keras":
        from tailor_ir.imports import import_keras

        keras = import_keras()
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    from tailor_ir.imports import import_paddle

    return import_paddle().nn.Sequential(import_paddle().nn.Linear(8, 4))


def resume(framework: str, directory: Path) -> None:
    tuner_class(framework)(tiny_model(framework)).fit((X, Y), epochs=1, batch_size=16, resume_from=directory)


LEGACY_NAMES = {"torch": "training_checkpoint.pt", "keras": "training_checkpoint.pkl",
                "paddle": "training_checkpoint.pdckpt"}


@pytest.mark.parametrize("framework", ["torch", "keras", "paddle"])
def test_resume_from_a_pickled_checkpoint_runs_no_code(tmp_path, framework: str) -> None:
    marker = tmp_path / "ran"
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / LEGACY_NAMES[framework]).write_bytes(payload_bytes(marker))
    with pytest.raises(ValueError, match="pickle"):
        resume(framework, legacy)
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    (renamed / "training_checkpoint.npz").write_bytes(payload_bytes(marker))
    with pytest.raises(UnsafeFileError, match="pickle"):
        resume(framework, renamed)
    assert not marker.exists()


def test_a_pickled_array_inside_an_npz_checkpoint_runs_no_code(tmp_path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "training_checkpoint.npz"
    write_tree({"w": np.ones(3)}, path)
    with np.load(path) as data:
        arrays = dict(data)
    arrays["a0"] = np.array([Payload(marker)], dtype=object)  # "w"; np.savez pickles object arrays
    np.savez(path, **arrays)
    with pytest.raises(UnsafeFileError, match="not a valid data-only"):
        read_tree(path)
    assert not marker.exists()


def test_checkpoints_round_trip_every_kind_of_value(tmp_path) -> None:
    import torch

    value = {0: {"step": torch.tensor(3.0), "m": torch.ones(2, dtype=torch.bfloat16)}, "betas": (0.9, 0.999),
             "nan": float("nan"), "scalar": np.float32(2.5), "zero_d": np.array(7), "names": ["a", None, True]}
    write_tree(value, tmp_path / "c.npz")
    back = read_tree(tmp_path / "c.npz")
    assert back[0]["step"].item() == 3.0 and back[0]["m"].dtype == torch.bfloat16
    assert back["betas"] == (0.9, 0.999) and np.isnan(back["nan"]) and back["zero_d"].shape == ()
    assert back["scalar"] == np.float32(2.5) and back["names"] == ["a", None, True]


def test_label_data_that_is_a_pickle_runs_no_code(tmp_path, capsys) -> None:
    marker = tmp_path / "ran"
    data = tmp_path / "pool.bin"
    data.write_bytes(payload_bytes(marker))
    assert main(["label", "--data", str(data), "--workdir", str(tmp_path / "w")]) == 1
    assert not marker.exists()
    assert "--trust-pickle" in capsys.readouterr().err


def test_fit_config_data_that_is_a_pickle_runs_no_code(tmp_path, capsys) -> None:
    marker = tmp_path / "ran"
    data = tmp_path / "train.bin"
    data.write_bytes(payload_bytes(marker))
    config = tmp_path / "fit.json"
    config.write_text(json.dumps({"model": "torch.nn:Identity", "train_data": str(data)}))
    assert main(["fit", str(config)]) == 1
    assert not marker.exists()
    assert "trust_pickle" in capsys.readouterr().err


def test_trust_pickle_is_the_only_way_to_load_a_pickled_documentarray(tmp_path) -> None:
    from finetuner.cli._specs import load_data

    marker = tmp_path / "ran"
    data = tmp_path / "train.bin"
    data.write_bytes(payload_bytes(marker))
    with pytest.warns(UserWarning, match="runs any code"):
        load_data(str(data), trust_pickle=True)
    assert marker.exists()


def test_label_model_that_is_a_torch_pickle_runs_no_code(tmp_path, capsys) -> None:
    import torch

    marker = tmp_path / "ran"
    model = tmp_path / "model.pt"
    torch.save(Payload(marker), model)
    assert main(["label", "--model", str(model), "--workdir", str(tmp_path / "w")]) == 1
    assert not marker.exists()
    assert "--trust-pickle" in capsys.readouterr().err


def test_trust_pickle_is_documented_with_a_warning_in_help(capsys) -> None:
    for command in ("label", "fit"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert "--trust-pickle" in help_text and "runs any code" in help_text
