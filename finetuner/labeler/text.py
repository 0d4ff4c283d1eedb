"""Tokenisers for labelling text: which one a text model needs, found from a name or from the model itself.

The Labeler embeds and trains text models through ``finetuner.data.tokenizer_collate(tokenizer)`` (see
:mod:`finetuner.labeler.inputs`). ``finetuner label`` finds the tokenizer from ``--tokenizer`` (a folder saved
by ``save_pretrained``, a ``tokenizer.json`` file, or ``package.module:factory``) or, for a Hugging Face model
loaded from a local folder, from that folder. Loading never runs code from the files (``tokenizers`` JSON, or
a ``transformers`` fast tokenizer offline).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["load_tokenizer", "tokenizer_of_model"]


def load_tokenizer(spec: str) -> Any:
    """The tokenizer named by ``spec``: a folder with a saved tokenizer, a ``tokenizer.json``, or
    ``package.module:factory`` (called without arguments)."""
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".json":
            raise ValueError(f"tokenizer file {path} is not a tokenizer.json; give its folder or the JSON file")
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path))
    if path.is_dir():
        return _pretrained(path)
    if ":" in spec:
        from finetuner.factories import from_factory

        return from_factory(spec, "tokenizer", lambda obj: hasattr(obj, "encode"))
    raise ValueError(f"tokenizer {spec!r} is neither a folder, a tokenizer.json nor package.module:factory")


def tokenizer_of_model(model: Any) -> Any:
    """The tokenizer saved beside a Hugging Face model loaded from a local folder, or None."""
    folder = getattr(getattr(model, "config", None), "_name_or_path", None) or getattr(model, "name_or_path", None)
    if folder and Path(folder).is_dir() and any(Path(folder).glob("tokenizer*")):
        return _pretrained(Path(folder))
    return None


def _pretrained(folder: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        if (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            return Tokenizer.from_file(str(folder / "tokenizer.json"))
        raise
    return AutoTokenizer.from_pretrained(str(folder))
