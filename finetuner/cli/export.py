"""``finetuner export SAVED.onnx OUT.onnx``: a saved (tuned) model -> an ONNX embedding model for serving."""

from __future__ import annotations

import argparse
import sys

NAME = "export"
HELP = "Export a model saved by finetuner.save (or `finetuner fit`) as an ONNX embedding model ready to serve."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the model: PATH.onnx from finetuner.save, or package.module:factory")
    parser.add_argument("output", help="the .onnx file to write (atomically)")
    parser.add_argument("--framework", choices=["torch", "keras", "paddle"], help="for ONNX files from elsewhere")
    parser.add_argument("--tokenizer", help="a Hugging Face tokenizer folder, for text models")
    parser.add_argument(
        "--quantize", nargs="?", const=True, default=False, choices=[True, "auto"], metavar="auto",
        help="quantize weights to int8; '--quantize auto': only where, measured on this CPU, int8 is faster and "
        "loses at most one point of recall@10 (text models: on --calibration-texts, else a held-out sample)",
    )
    parser.add_argument(
        "--calibration-texts", metavar="FILE",
        help="with --quantize auto: a text file, one text per line, to measure recall@10 on (text models)",
    )
    parser.add_argument("--no-optimize", action="store_true", help="skip the transformer fusion")
    parser.add_argument("--input-shape", help="one input's shape without the batch axis (factory models)")


def run(args: argparse.Namespace) -> int:
    from finetuner.cli._specs import SpecError, load_model, shape
    from finetuner.exporting import export
    from tailor_ir.errors import TailorError

    try:
        model = load_model(args.model, args.framework)
        tokenizer = None
        if args.tokenizer:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        calibration = None
        if args.calibration_texts:
            if args.quantize != "auto":
                raise ValueError("--calibration-texts is used only with --quantize auto.")
            with open(args.calibration_texts, encoding="utf-8") as lines:
                calibration = [line.strip() for line in lines if line.strip()]
        path = export(
            model, args.output, tokenizer=tokenizer, quantize=args.quantize, optimize=not args.no_optimize,
            input_shape=shape(args.input_shape), calibration_data=calibration,
        )
    except (SpecError, TailorError, ValueError, TypeError, OSError) as exc:
        print(f"finetuner export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
