"""``finetuner label``'s pools and models from what users have (see :mod:`finetuner.labeler.sources`).

The pool's kind says how the model gets its input: images are read from disk and resized by ``--image-size``
(normalised by ``--image-mean``/``--image-std`` when given), texts are tokenised by ``--tokenizer`` (or the
tokenizer saved beside a Hugging Face model). ``--output-dim``, ``--layer-name`` and ``--freeze`` tailor the model
into an embedding model first (``finetuner.tailor.to_embedding``), traced on two items of the pool.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from finetuner.labeler.sources import TABLE_SUFFIXES

DEFAULT_IMAGE_SIDE = 224


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options for user data and user models."""
    parser.add_argument("--column", default=None, help="the text column of a .csv/.tsv/.jsonl pool")
    parser.add_argument("--image-size", default=None,
                        help=f"H,W (or one side) the images of a folder are resized to (default {DEFAULT_IMAGE_SIDE})")
    parser.add_argument("--image-mean", default=None, help="R,G,B to subtract from [0, 1] pixels, e.g. 0.485,0.456,0.406")
    parser.add_argument("--image-std", default=None, help="R,G,B to divide by after the mean, e.g. 0.229,0.224,0.225")
    parser.add_argument("--tokenizer", default=None,
                        help="for text: a saved tokenizer folder, a tokenizer.json or package.module:factory "
                             "(default: MODEL.tokenizer/ beside an exported .onnx, or a Hugging Face model's own)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text at most (default 128)")
    parser.add_argument("--layer-name", default=None, help="tailor: the layer whose output is the embedding")
    parser.add_argument("--freeze", action="store_true", help="tailor: freeze the weights before the new head")


def is_user_data(spec: str) -> bool:
    """Whether ``spec`` names a folder, a text file or a table (the other kinds are handled by the caller)."""
    path = Path(spec).expanduser()
    return path.is_dir() or path.suffix.lower() in (".txt", *TABLE_SUFFIXES)


def _floats(text: str | None, option: str, count: int | None = None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{option} {text!r}: write numbers separated by commas") from None
    if count is not None and len(values) != count:
        raise ValueError(f"{option} {text!r}: give {count} numbers")
    return values


def _image_size(text: str | None) -> tuple[int, int]:
    if text is None:
        return DEFAULT_IMAGE_SIDE, DEFAULT_IMAGE_SIDE
    values = _floats(text, "--image-size") or ()
    if len(values) not in (1, 2) or any(v != int(v) or v < 1 for v in values):
        raise ValueError(f"--image-size {text!r}: write H,W or one side in pixels, e.g. 224")
    return (int(values[0]), int(values[-1]))


def _is_image_pool(docs: Any) -> bool:
    first = docs[0]
    return bool(first.uri) and first.tensor is None and not first.text


def _is_text_pool(docs: Any) -> bool:
    first = docs[0]
    return bool(first.text) and first.tensor is None and not first.blob and not first.uri


def require_model(args: argparse.Namespace) -> None:
    """Images and texts need a model that takes them: the default digits MLP does not."""
    if args.model is None and is_user_data(args.data):
        raise ValueError(f"--data {args.data} needs --model, e.g. torchvision.models:resnet18 --output-dim 64 for "
                         "images or a Hugging Face model folder --output-dim 64 for text")


def data_options(args: argparse.Namespace, docs: Any, model: Any) -> dict[str, Any]:
    """``preprocess_fn``/``collate_fn`` for the pool (empty for tensor pools). ``model``: as loaded, before any
    tailoring (a Hugging Face model knows its tokenizer's folder)."""
    from finetuner.labeler.text import load_tokenizer, tokenizer_of_model

    if _is_image_pool(docs):
        from finetuner.labeler.sources import ImagePreprocess

        mean = _floats(args.image_mean, "--image-mean", 3)
        std = _floats(args.image_std, "--image-std", 3)
        return {"preprocess_fn": ImagePreprocess(_image_size(args.image_size), mean, std)}
    if _is_text_pool(docs):
        from finetuner.data import tokenizer_collate

        tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else _sidecar_tokenizer(args.model)
        tokenizer = tokenizer if tokenizer is not None else tokenizer_of_model(model)
        if tokenizer is None:
            raise ValueError("a text pool needs a tokenizer: pass --tokenizer (a saved tokenizer folder, a "
                             "tokenizer.json or package.module:factory)")
        return {"collate_fn": tokenizer_collate(tokenizer, max_length=args.max_length)}
    return {}


def _sidecar_tokenizer(model_spec: str | None) -> Any:
    """The tokenizer that ``finetuner.export`` wrote beside an ``.onnx`` model (``<stem>.tokenizer/``), or None."""
    from finetuner.labeler.text import load_tokenizer
    from finetuner.onnx_meta import tokenizer_dir

    if not model_spec or not model_spec.endswith(".onnx") or not tokenizer_dir(model_spec).is_dir():
        return None
    return load_tokenizer(str(tokenizer_dir(model_spec)))


def load_user_model(spec: str) -> Any:
    """``--model``: a ``finetuner.save`` file, ``package.module:factory`` or ``zoo:FRAMEWORK:NAME``."""
    from finetuner.cli._specs import load_model

    return load_model(spec)


def tailor(args: argparse.Namespace, model: Any, docs: Any, options: dict[str, Any]) -> Any:
    """``model`` tailored by ``--output-dim``/``--layer-name``/``--freeze`` (unchanged when none is given)."""
    wanted = {"output_dim": args.output_dim, "layer_name": args.layer_name, "freeze": args.freeze or None}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    if not wanted:
        return model
    from finetuner.labeler.inputs import ModelInputs
    from finetuner.tailor import to_embedding

    inputs = ModelInputs(options.get("preprocess_fn"), options.get("collate_fn"))
    return to_embedding(model, sample_input=inputs.batch(docs[:2]), **wanted)
