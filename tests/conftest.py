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
