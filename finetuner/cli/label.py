"""``finetuner label``: open the Labeler on a pool of documents (by default sklearn's digits with a small MLP).

``--data`` also takes a folder of images, a text file or a table column, and ``--model`` any model
``finetuner fit`` takes, tailored by ``--output-dim``/``--layer-name``/``--freeze`` (see ``_label_inputs``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from finetuner.cli import _label_inputs

NAME = "label"
HELP = "Label a pool interactively in the browser while the model learns (active learning)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("--data", default="digits",
                        help="'digits' (sklearn's 8x8 digits), a folder of images (recursive), a .txt (one text "
                             "a line), a .csv/.tsv/.jsonl (see --column) or a DocumentArray file in docarray's "
                             "protobuf format (finetuner.data.save_documents, or "
                             "save_binary(protocol='protobuf-array'))")
    parser.add_argument("--model", default=None,
                        help="a model saved with finetuner.save (.onnx; torch, keras or paddle), "
                             "package.module:factory (e.g. torchvision.models:resnet18), zoo:FRAMEWORK:NAME, a "
                             "Hugging Face model's folder (config.json + safetensors), or, "
                             "with --trust-pickle only, a whole torch model saved with torch.save (.pt); default: "
                             "a small torch MLP for the digits")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="also load pickled files (a save_binary DocumentArray, a torch.save model). WARNING: "
                             "unpickling runs any code the file holds; use it only for files you fully trust")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N documents")
    parser.add_argument("--output-dim", type=int, default=None,
                        help="embedding size: tailors --model with a new head of this size (default MLP: 32)")
    parser.add_argument("--workdir", default="finetuner-labeler", help="where labels and checkpoints are kept")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=None, help="port of the page and API (default: a free one)")
    parser.add_argument("--open-browser", action="store_true", help="open the page in the default browser")
    parser.add_argument("--top-k", type=int, default=None, help="matches shown per query")
    parser.add_argument("--questions", type=int, default=None, help="queries per round")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fit (default: 2 for a pool of texts, 5 otherwise)")
    parser.add_argument("--strategy", choices=("uncertainty", "diversity", "random"), default=None,
                        help="how the next queries are chosen (default: diversity for a pool of texts, uncertainty "
                             "otherwise: benchmarks/results/labeler_text.md and labeler.md)")
    parser.add_argument("--save", default=None,
                        help="also write the tuned model here at the end (finetuner.save: an .onnx file that "
                             "finetuner.load reads back; a text model's tokenizer goes beside it)")
    _label_inputs.add_arguments(parser)


def digits_pool(limit: int | None = None) -> Any:
    """sklearn's digits as a DocumentArray: 64-value float tensors scaled to [0, 1], ids ``digit-<i>``."""
    import numpy as np
    from docarray import Document, DocumentArray
    from sklearn.datasets import load_digits

    images = load_digits().data.astype(np.float32) / 16.0
    if limit:
        images = images[:limit]
    return DocumentArray(Document(id=f"digit-{i}", tensor=x) for i, x in enumerate(images))


def default_model(output_dim: int) -> Any:
    """The package's demo MLP (:class:`finetuner.demo_model.MLP`) for digits, with ``output_dim`` outputs."""
    from finetuner.demo_model import MLP, torch

    torch.manual_seed(0)
    return MLP(in_features=64, hidden=(128,), num_classes=output_dim)


def load_model(path: str, trust_pickle: bool = False) -> Any:
    """A model file: ``finetuner.save``'s ONNX Graph (any framework), ``package.module:factory`` or
    ``zoo:FRAMEWORK:NAME``, or, for ``.pt``/``.pth`` and only with ``trust_pickle``, a whole torch model (a
    pickle: loading it runs whatever code it holds)."""
    if Path(path).suffix in (".pt", ".pth"):
        if not trust_pickle:
            raise ValueError(
                f"{path} is a torch.save pickle, and loading it would run any code it holds: save the model "
                "with finetuner.save(model, 'model.onnx') and pass that, or pass --trust-pickle if you made "
                "the file yourself"
            )
        from tailor_ir.imports import import_torch

        return import_torch().load(path, weights_only=False)
    if Path(path).suffix != ".onnx":
        return _label_inputs.load_user_model(path)
    from finetuner.persistence import load

    return load(path)


def prepare(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The pool, the model (tailored when asked) and the data options that make its input."""
    from finetuner.data import load_documents

    _label_inputs.require_model(args)
    if args.data == "digits":
        docs = digits_pool(args.limit)
    elif _label_inputs.is_user_data(args.data):
        from finetuner.labeler.sources import load_pool

        docs = load_pool(args.data, args.column)
        if args.limit:
            docs = docs[: args.limit]
    else:
        docs = load_documents(args.data, trust_pickle=args.trust_pickle)
        if args.limit:
            docs = docs[: args.limit]
    if not args.model:
        return docs, default_model(args.output_dim or 32), {}
    loaded = load_model(args.model, args.trust_pickle)
    options = _label_inputs.data_options(args, docs, loaded)
    return docs, _label_inputs.tailor(args, loaded, docs, options), options


def run(args: argparse.Namespace) -> int:
    """Serve the Labeler until Finish / Ctrl-C / SIGTERM; returns 0 (1, with the reason, when the data, the model
    or the port cannot be used)."""
    from finetuner.labeler import run as run_labeler
    from finetuner.labeler.inputs import ModelInputs
    from finetuner.labeler.training import save_model, stack_contents
    from finetuner.ports import PortInUseError

    try:
        docs, model, options = prepare(args)
    except (ValueError, TypeError, OSError) as exc:  # DataError is a ValueError
        print(f"finetuner label: {exc}", file=sys.stderr)
        return 1
    try:
        tuned = run_labeler(
            model, docs, workdir=args.workdir, port=args.port, host=args.host, open_browser=args.open_browser,
            top_k=args.top_k, questions=args.questions, epochs=args.epochs, strategy=args.strategy, **options,
        )
    except PortInUseError as exc:
        print(f"finetuner label: {exc}", file=sys.stderr)
        return 1
    if args.save:
        inputs = ModelInputs.for_model(tuned, **options)
        path = save_model(tuned, args.save, stack_contents(docs[:2], inputs), tokenizer=inputs.tokenizer)
        print(f"tuned model saved to {path}")
    return 0
