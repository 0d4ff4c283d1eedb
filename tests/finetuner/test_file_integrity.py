"""Files finetuner writes: stale temps are cleaned, one file mode, a checksum that catches a flipped byte."""

from __future__ import annotations

import os
import time

import numpy as np
import onnx
import pytest
import torch

import finetuner
import tailor_ir.files
from finetuner.serving.model import EmbeddingRuntime, ModelFileError, check_model_file
from tailor_ir.errors import InvalidGraphError
from tailor_ir.files import DATA_CHECKSUM_KEY, file_mode


def small_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def wide_model(seed: int = 0) -> torch.nn.Module:
    """Weights of 1 KiB and more: what goes to the data file of a model over 2 GB."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))


def flip_a_weight_byte(path) -> None:
    """Flip one byte in the middle of the largest initializer, where the ONNX parser cannot notice."""
    model = onnx.load(str(path))
    raw = max((t for t in model.graph.initializer), key=lambda t: len(t.raw_data)).raw_data
    data = bytearray(path.read_bytes())
    at = data.find(raw) + len(raw) // 2
    assert at > len(raw) // 2
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_saved_model_with_a_flipped_byte_is_refused_on_load(tmp_path):
    path = finetuner.save(small_model(), tmp_path / "model.onnx", input_shape=(8,))
    finetuner.load(path)  # intact: loads
    flip_a_weight_byte(path)
    with pytest.raises(InvalidGraphError, match="checksum"):
        finetuner.load(path)


def test_an_exported_model_with_a_flipped_byte_is_refused_by_serving(tmp_path):
    path = finetuner.export(small_model(), tmp_path / "embedding.onnx", input_shape=(8,))
    check_model_file(path)
    flip_a_weight_byte(path)
    with pytest.raises(ModelFileError, match="checksum"):
        check_model_file(path)


def test_save_and_export_write_the_same_file_mode(tmp_path):
    saved = finetuner.save(small_model(), tmp_path / "saved.onnx", input_shape=(8,))
    exported = finetuner.export(small_model(), tmp_path / "exported.onnx", input_shape=(8,))
    modes = {oct(p.stat().st_mode & 0o777) for p in (saved, exported)}
    assert modes == {oct(file_mode())}


def test_temp_files_left_by_a_killed_save_are_removed_by_the_next_one(tmp_path):
    stale = tmp_path / ".model.onnx.abc123.tmp"
    stale.write_bytes(b"x" * 1000)  # what a save killed mid-write leaves
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    in_progress = tmp_path / ".model.onnx.def456.tmp"  # another writer's, just now: kept
    in_progress.write_bytes(b"y")
    finetuner.save(small_model(), tmp_path / "model.onnx", input_shape=(8,))
    assert not stale.exists() and in_progress.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.onnx.def456.tmp", "model.onnx"]


@pytest.fixture
def external_data(monkeypatch):
    """Every model written in the test keeps its weights in a data file, as models over 2 GB do."""
    monkeypatch.setattr(tailor_ir.files, "EXTERNAL_DATA_BYTES", 0)


def _data_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".data"))


def _embed(path, x: np.ndarray) -> np.ndarray:
    runtime = EmbeddingRuntime(path, threads=1, providers=["CPUExecutionProvider"])
    return runtime.run({runtime.inputs[0].name: x})


def flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


X = np.random.default_rng(0).random((3, 8), dtype=np.float32)


def test_an_exported_model_with_external_data_is_served_and_its_weights_are_checked(tmp_path, monkeypatch):
    """The data file used to be outside the checksum: a flipped weight byte was served silently."""
    inline = finetuner.export(wide_model(), tmp_path / "inline" / "embedding.onnx", input_shape=(8,))
    monkeypatch.setattr(tailor_ir.files, "EXTERNAL_DATA_BYTES", 0)  # as for a model over 2 GB
    path = finetuner.export(wide_model(), tmp_path / "embedding.onnx", input_shape=(8,))
    (data,) = _data_files(tmp_path)
    assert data.startswith("embedding.onnx.") and len(data) == len("embedding.onnx.") + 16 + len(".data")
    model = onnx.load(str(path), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert DATA_CHECKSUM_KEY in {p.key for p in model.metadata_props}
    np.testing.assert_allclose(_embed(path, X), _embed(inline, X), atol=1e-6)
    flip_a_byte(tmp_path / data)
    with pytest.raises(ModelFileError, match="weights do not match"):
        check_model_file(path)


def test_a_saved_model_with_external_data_loads_and_a_corrupt_data_file_is_refused(tmp_path, external_data):
    model = wide_model()
    path = finetuner.save(model, tmp_path / "model.onnx", input_shape=(8,))
    (data,) = _data_files(tmp_path)
    loaded = finetuner.load(path)
    np.testing.assert_allclose(finetuner.embed(X, loaded), finetuner.embed(X, model), atol=1e-5)
    flip_a_byte(tmp_path / data)
    with pytest.raises(InvalidGraphError, match="weights do not match"):
        finetuner.load(path)


def test_a_crash_between_data_file_and_model_leaves_the_old_pair_and_the_next_write_cleans_up(
    tmp_path, external_data, monkeypatch
):
    """The data file used to be a second rename over ``<name>.data``: a crash between the two renames left the
    old model reading the new weights. Now the new data file gets a new name and the .onnx switches last."""
    path = tmp_path / "embedding.onnx"
    finetuner.export(wide_model(seed=0), path, input_shape=(8,))
    old = _embed(path, X)
    (old_data,) = _data_files(tmp_path)
    real_replace = os.replace

    def crash_before_the_switch(src, dst):
        if os.fspath(dst) == os.fspath(path):
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", crash_before_the_switch)
        with pytest.raises(KeyboardInterrupt):
            finetuner.export(wide_model(seed=1), path, input_shape=(8,))
    assert len(_data_files(tmp_path)) == 2  # the new data file, under its own name, beside the old pair
    check_model_file(path)
    np.testing.assert_array_equal(_embed(path, X), old)  # the old model, with its own weights
    (tmp_path / "embedding.onnx.data").write_bytes(b"left by an older finetuner")
    finetuner.export(wide_model(seed=1), path, input_shape=(8,))
    (new_data,) = _data_files(tmp_path)
    assert new_data != old_data and not np.allclose(_embed(path, X), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embedding.onnx", new_data]
