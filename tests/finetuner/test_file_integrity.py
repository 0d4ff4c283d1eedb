"""Files finetuner writes: stale temps are cleaned, one file mode, a checksum that catches a flipped byte."""

from __future__ import annotations

import os
import time

import onnx
import pytest
import torch

import finetuner
from finetuner.serving.model import ModelFileError, check_model_file
from tailor_ir.errors import InvalidGraphError
from tailor_ir.files import file_mode


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


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
