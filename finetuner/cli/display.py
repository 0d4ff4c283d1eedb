"""``finetuner display MODEL``: print a model's layer table (where it can be cut into an embedding model)."""

from __future__ import annotations

import argparse
import sys

NAME = "display"
HELP = "Print the layer table of a model: names, ops, output shapes, parameters and the cut candidates."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", help="PATH.onnx, package.module:factory (e.g. torchvision.models:resnet18) or zoo:FRAMEWORK:NAME"
    )
    parser.add_argument("--framework", choices=["torch", "keras", "paddle"], help="for ONNX files from elsewhere")
    parser.add_argument("--input-shape", help="one input's shape without the batch axis, e.g. 3,224,224")
    parser.add_argument("--input-dtype", default="float32", help="the input's dtype (default float32)")


def run(args: argparse.Namespace) -> int:
    from finetuner import tailor
    from finetuner.cli._specs import SpecError, load_model, shape

    try:
        if args.model.endswith(".onnx") and not args.framework:
            rows = tailor.display(args.model)
        else:
            model = load_model(args.model, args.framework)
            rows = tailor.display(model, input_shape=shape(args.input_shape), input_dtype=args.input_dtype)
    except (SpecError, ValueError, TypeError) as exc:
        print(f"finetuner display: {exc}", file=sys.stderr)
        return 1
    return 0 if rows else 1
