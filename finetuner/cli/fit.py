"""``finetuner fit CONFIG.yml``: fine-tune a model described by a YAML/JSON config, then save (and export) it.

The config::

    model: zoo:torch:mlp        # PATH.onnx | package.module:factory | zoo:FRAMEWORK:NAME
    framework: torch            # only for ONNX files from elsewhere
    train_data: digits:0-6      # digits[:CLASSES] | PATH.npz (X, y) | PATH.bin (protobuf DocumentArray)
    eval_data: digits:7-9       # optional
    fit:                        # keyword arguments of finetuner.fit
      output_dim: 32
      epochs: 10
      logdir: runs/digits
    save: runs/digits/model.onnx        # the tuned model (finetuner.load reads it back)
    export: runs/digits/embedding.onnx  # optional: the ONNX embedding model for serving
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from finetuner.cli import _launch

NAME = "fit"
HELP = "Fine-tune a model from a YAML/JSON config (model, data, fit arguments), then save and export it."
KEYS = {"model", "framework", "train_data", "eval_data", "fit", "save", "export"}
DEFAULT_SAVE = "finetuner-model.onnx"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("The config::", 1)[1]
    parser.add_argument("config", help="a .yml/.yaml/.json file (see below)")
    _launch.add_arguments(parser)
    parser.add_argument("--trust-pickle", action="store_true",
                        help="also load pickled DocumentArray files (save_binary's default). WARNING: unpickling "
                             "runs any code the file holds; use it only for files you fully trust")


def read_config(path: str | Path) -> dict[str, Any]:
    """The config as a dict, checked for unknown and missing keys."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config {path} does not exist")
    text = path.read_text()
    if path.suffix in (".yml", ".yaml"):
        import yaml

        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:  # not a ValueError: it used to end in a traceback
            raise ValueError(f"{path} is not valid YAML: {exc}") from None
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); a .yml/.yaml config is read as YAML") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the config must be a mapping of keys {sorted(KEYS)}")
    unknown = sorted(set(config) - KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; the keys are {sorted(KEYS)}")
    missing = sorted({"model", "train_data"} - set(config))
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    if not isinstance(config.get("fit", {}), dict):
        raise ValueError(f"{path}: 'fit' must be a mapping of finetuner.fit keyword arguments")
    return config


def run(args: argparse.Namespace) -> int:
    from finetuner.api import fit
    from finetuner.cli._specs import SpecError, load_data, load_model
    from finetuner.exporting import export
    from finetuner.persistence import save

    try:
        config = read_config(args.config)
        with _launch.keras_worker_scope():  # a TF_CONFIG worker builds and tunes under its strategy
            model = load_model(str(config["model"]), config.get("framework"))
            if _launch.wanted(args):
                import subprocess

                from tailor_ir import compiler

                cmd = _launch.command(compiler.require_framework(model), args, ["fit", str(args.config)])
                return subprocess.run(cmd).returncode
            tuned = fit(
                model, load_data(str(config["train_data"]), args.trust_pickle),
                load_data(config.get("eval_data") and str(config["eval_data"]), args.trust_pickle),
                **config.get("fit", {}),
            )
        from finetuner.tuner.distributed import world_from_env

        if not world_from_env().is_main:  # every worker holds the same model; rank 0 writes it
            return 0
        saved = save(tuned, config.get("save", DEFAULT_SAVE))
        print(f"saved the tuned model to {saved}")
        if config.get("export"):
            print(f"exported the embedding model to {export(tuned, config['export'])}")
    except (SpecError, ValueError, TypeError, OSError) as exc:
        print(f"finetuner fit: {exc}", file=sys.stderr)
        return 1
    return 0
